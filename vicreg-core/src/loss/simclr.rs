//! The SimCLR / InfoNCE loss (NT-Xent; Chen et al., ICML 2020).

use std::sync::Arc;

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use super::input::{check_batch_at_least, check_embedding_pair};
use super::{JointLoss, LossOutput};
use crate::collective::{gather_with_grad, Collective, SingleProcess};
use crate::{Error, Result};

/// Options of the NT-Xent loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimClrConfig {
    /// Softmax temperature (0.1: the value used by VICReg's SimCLR baseline and the SimCLR paper's large-batch setting).
    pub temperature: f64,
}

impl Default for SimClrConfig {
    fn default() -> Self {
        Self { temperature: 0.1 }
    }
}

impl SimClrConfig {
    fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature <= 0.0 {
            return Err(Error::config(format!(
                "simclr: temperature must be finite and > 0, got {}",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// Each row scaled to unit L2 norm (`+1e-12` under the square root). `z`: `(batch, dim)`.
pub fn l2_normalize(z: &Tensor) -> Result<Tensor> {
    let n = (z.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    Ok(z.broadcast_div(&n)?)
}

/// NT-Xent on `(batch, dim)` embeddings of two views.
///
/// Embeddings are L2-normalised; every one of the `2N` embeddings of the
/// (gathered) batch is an anchor whose positive is the other view of the
/// same sample and whose negatives are the other `2N - 2` embeddings:
/// `l_i = -log( exp(s_ip / t) / sum_{k != i} exp(s_ik / t) )` with `s` the
/// cosine similarity, and the loss is the mean of `l_i` over anchors.
///
/// With several ranks each rank computes the mean over its own `2n` anchors
/// against the `2N` gathered keys (through [`gather_with_grad`]); averaging
/// the ranks' gradients then gives exactly the gradient of the full-batch loss,
/// and the mean of the ranks' losses equals the full-batch loss.
///
/// Terms: `nt_xent` (the loss) and `pos_cosine` (mean cosine similarity of
/// the positive pairs, detached, for monitoring).
#[derive(Clone, Debug)]
pub struct SimClrLoss {
    cfg: SimClrConfig,
}

impl SimClrLoss {
    /// A loss with the given (checked) configuration.
    pub fn new(cfg: SimClrConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &SimClrConfig {
        &self.cfg
    }

    /// The loss on a single process.
    pub fn loss(&self, za: &Tensor, zb: &Tensor) -> Result<Tensor> {
        let single: Arc<dyn Collective> = Arc::new(SingleProcess);
        Ok(self.compute(za, zb, &single)?.total)
    }
}

impl JointLoss for SimClrLoss {
    fn name(&self) -> &'static str {
        "simclr"
    }

    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        check_embedding_pair("simclr", za, zb)?;
        let n_local = za.dim(0)?;
        let na = l2_normalize(za)?;
        let nb = l2_normalize(zb)?;
        let ga = gather_with_grad(collective, &na)?;
        let gb = gather_with_grad(collective, &nb)?;
        let n = ga.dim(0)?;
        check_batch_at_least("simclr", n, 2, "a negative pair")?;
        let off = collective.rank() * n_local;
        // Anchors: this rank's 2n embeddings; keys: the 2N gathered ones.
        let anchors = Tensor::cat(&[&na, &nb], 0)?;
        let keys = Tensor::cat(&[&ga, &gb], 0)?;
        let logits = (anchors.matmul(&keys.t()?)? / self.cfg.temperature)?;
        // Masks: self-similarity excluded, positive = other view of the same sample.
        let rows = 2 * n_local;
        let cols = 2 * n;
        let mut self_mask = vec![0f64; rows * cols];
        let mut pos = vec![0f64; rows * cols];
        for i in 0..n_local {
            let g = off + i;
            self_mask[i * cols + g] = 1.0;
            pos[i * cols + n + g] = 1.0;
            self_mask[(n_local + i) * cols + n + g] = 1.0;
            pos[(n_local + i) * cols + g] = 1.0;
        }
        let dev = za.device();
        let dt = logits.dtype();
        let self_mask = Tensor::from_vec(self_mask, (rows, cols), dev)?.to_dtype(dt)?;
        let pos = Tensor::from_vec(pos, (rows, cols), dev)?.to_dtype(dt)?;
        // exp(-1e4) underflows to 0 in every float type: the self pair leaves the softmax.
        let masked = (&logits - (&self_mask * 1e4)?)?;
        let max = masked.max_keepdim(1)?.detach();
        let shifted = masked.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
        let log_prob = shifted.broadcast_sub(&lse)?;
        let total = (log_prob.mul(&pos)?.sum_all()? / -(rows as f64))?;
        let pos_cos =
            ((logits.detach().mul(&pos)?.sum_all()? * self.cfg.temperature)? / rows as f64)?;
        Ok(LossOutput {
            total: total.clone(),
            terms: vec![("nt_xent".into(), total), ("pos_cosine".into(), pos_cos)],
        })
    }
}

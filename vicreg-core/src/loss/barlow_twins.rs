//! The Barlow Twins loss (Zbontar et al., ICML 2021) with the conventions of
//! the official code (`facebookresearch/barlowtwins`, `main.py`).

use std::sync::Arc;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::input::{check_batch_at_least, check_coeff, check_embedding_pair};
use super::{JointLoss, LossOutput};
use crate::collective::{gather_with_grad, Collective, SingleProcess};
use crate::{Error, Result};

/// Coefficients of the Barlow Twins loss.
///
/// Defaults are the official code's: `lambda = 0.0051` (`--lambd`),
/// BatchNorm `eps = 1e-5`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BarlowTwinsConfig {
    /// Weight of the redundancy-reduction (off-diagonal) term.
    pub lambda: f64,
    /// Added to the biased batch variance under the square root (torch BatchNorm's `eps`).
    pub eps: f64,
}

impl Default for BarlowTwinsConfig {
    fn default() -> Self {
        Self::official()
    }
}

impl BarlowTwinsConfig {
    /// The official code's values (the default).
    pub fn official() -> Self {
        Self {
            lambda: 0.0051,
            eps: 1e-5,
        }
    }

    fn validate(&self) -> Result<()> {
        check_coeff("barlow-twins", "lambda", self.lambda)?;
        check_coeff("barlow-twins", "eps", self.eps)?;
        if self.eps == 0.0 {
            return Err(Error::config(
                "barlow-twins: eps must be > 0 (a constant dimension would divide by 0)",
            ));
        }
        Ok(())
    }
}

/// Per-dimension standardisation over the batch as torch `BatchNorm1d(affine=False)`
/// in train mode: `(z - mean) / sqrt(var + eps)` with the biased (1/N) variance.
/// `z`: `(batch, dim)`.
pub fn batch_standardize(z: &Tensor, eps: f64) -> Result<Tensor> {
    let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = zc.sqr()?.mean_keepdim(0)?;
    Ok(zc.broadcast_div(&(var + eps)?.sqrt()?)?)
}

/// The Barlow Twins loss on `(batch, dim)` embeddings.
///
/// Each branch is standardised per dimension over the batch gathered from
/// every rank (the official code uses SyncBatchNorm), `C = za_n^T zb_n / N`
/// with `N` the gathered batch size, and
/// `loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`.
///
/// Terms (unweighted): `on_diag = sum_i (1 - C_ii)^2`, `off_diag = sum_{i != j} C_ij^2`.
///
/// Distributed gradients: the official code all-reduces `C` without a gradient
/// (each rank differentiates only its own contribution, then DDP averages),
/// which scales the gradient by `1/world`. Here the batch goes through
/// [`gather_with_grad`] as VICReg's statistics do, so with rank-averaged
/// gradients `k` ranks give exactly the gradient of the full-batch loss.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vicreg_core::loss::{BarlowTwinsConfig, BarlowTwinsLoss};
/// let za = Tensor::randn(0f32, 1.0, (16, 8), &Device::Cpu).unwrap();
/// let loss = BarlowTwinsLoss::new(BarlowTwinsConfig::default()).unwrap();
/// // Identical branches: C has a unit diagonal, so on_diag is ~0.
/// let (on, _off, _total) = loss.terms(&za, &za).unwrap();
/// assert!(on.to_scalar::<f32>().unwrap() < 1e-3);
/// ```
#[derive(Clone, Debug)]
pub struct BarlowTwinsLoss {
    cfg: BarlowTwinsConfig,
}

impl BarlowTwinsLoss {
    /// A loss with the given (checked) configuration.
    pub fn new(cfg: BarlowTwinsConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &BarlowTwinsConfig {
        &self.cfg
    }

    /// `(on_diag, off_diag, total)` on a single process.
    pub fn terms(&self, za: &Tensor, zb: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let single: Arc<dyn Collective> = Arc::new(SingleProcess);
        self.terms_distributed(za, zb, &single)
    }

    /// `(on_diag, off_diag, total)` with the batch gathered from every rank of `collective`.
    pub fn terms_distributed(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        check_embedding_pair("barlow-twins", za, zb)?;
        let ga = gather_with_grad(collective, za)?;
        let gb = gather_with_grad(collective, zb)?;
        let (n, d) = ga.dims2()?;
        check_batch_at_least("barlow-twins", n, 2, "batch standardisation")?;
        let na = batch_standardize(&ga, self.cfg.eps)?;
        let nb = batch_standardize(&gb, self.cfg.eps)?;
        // diag(C)_i = sum_n na_ni nb_ni / N
        let diag = (na.mul(&nb)?.sum(0)? / n as f64)?;
        let on_diag = diag.affine(1.0, -1.0)?.sqr()?.sum_all()?;
        // ||C||_F^2 = ||na^T nb||_F^2 / N^2; when N < D use <na na^T, nb nb^T>_F (O(N^2 D)).
        let full_sq = if n < d {
            let ka = na.matmul(&na.t()?)?;
            let kb = nb.matmul(&nb.t()?)?;
            ka.mul(&kb)?.sum_all()?
        } else {
            na.t()?.matmul(&nb)?.sqr()?.sum_all()?
        };
        let off_diag = ((full_sq / (n as f64 * n as f64))? - diag.sqr()?.sum_all()?)?;
        let total = (&on_diag + (&off_diag * self.cfg.lambda)?)?;
        Ok((on_diag, off_diag, total))
    }
}

impl JointLoss for BarlowTwinsLoss {
    fn name(&self) -> &'static str {
        "barlow-twins"
    }

    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        let (on, off, total) = self.terms_distributed(za, zb, collective)?;
        Ok(LossOutput {
            total,
            terms: vec![("on_diag".into(), on), ("off_diag".into(), off)],
        })
    }
}

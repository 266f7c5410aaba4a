//! The negative-cosine loss of BYOL (Grill et al., 2020) and SimSiam (Chen &
//! He, 2021), with VICReg's variance and covariance terms as an option
//! (VICReg paper, appendix D.8).

use std::sync::Arc;

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use super::input::{check_batch_at_least, check_coeff, check_embedding_pair};
use super::{covariance, variance, CovarianceForm, JointLoss, LossOutput};
use crate::collective::{gather_with_grad, Collective, SingleProcess};
use crate::model::BranchOutput;
use crate::{Error, Result};

/// How each branch's `(batch, width)` embedding tensor given to
/// [`JointLoss::compute`] is laid out (the tensor API). The trainer calls
/// [`JointLoss::compute_outputs`] with each view's named prediction,
/// projection and target instead, and the layout does not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CosineLayout {
    /// `[p | z | t]`, three `(batch, dim)` blocks concatenated along dim 1: the
    /// prediction `p` (predictor output), the online projection `z` (what the
    /// variance / covariance terms see) and the target projection `t` (what the
    /// other view's prediction must match; the momentum encoder's output, or `z`).
    #[default]
    Packed,
    /// A plain `(batch, dim)` embedding used as prediction, projection and
    /// target at once (a plain siamese model without predictor).
    Plain,
}

/// Options of the negative-cosine loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NegativeCosineConfig {
    /// Layout of the embeddings the loss receives.
    pub layout: CosineLayout,
    /// Detach the targets (BYOL / SimSiam: `true`; `false` is the collapsing control).
    pub stop_gradient: bool,
    /// Weight of the cosine term.
    pub cosine_coeff: f64,
    /// Weight of VICReg's variance hinge on each branch's projection (0: off; D.8 uses VICReg's 25 scaled to the loss).
    pub std_coeff: f64,
    /// Weight of VICReg's covariance term on each branch's projection (0: off).
    pub cov_coeff: f64,
    /// Target std of the variance hinge.
    pub gamma: f64,
    /// Added to the variance under the square root.
    pub eps: f64,
}

impl Default for NegativeCosineConfig {
    fn default() -> Self {
        Self::byol()
    }
}

impl NegativeCosineConfig {
    /// BYOL / SimSiam: packed predictor / projection / target blocks, stop-gradient, no regularisation.
    pub fn byol() -> Self {
        Self {
            layout: CosineLayout::Packed,
            stop_gradient: true,
            cosine_coeff: 1.0,
            std_coeff: 0.0,
            cov_coeff: 0.0,
            gamma: 1.0,
            eps: 1e-4,
        }
    }

    /// BYOL / SimSiam plus VICReg's variance and covariance terms (D.8) with the given weights.
    pub fn with_vicreg_terms(std_coeff: f64, cov_coeff: f64) -> Self {
        Self {
            std_coeff,
            cov_coeff,
            ..Self::byol()
        }
    }

    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("cosine_coeff", self.cosine_coeff),
            ("std_coeff", self.std_coeff),
            ("cov_coeff", self.cov_coeff),
            ("gamma", self.gamma),
            ("eps", self.eps),
        ] {
            check_coeff("negative-cosine", name, v)?;
        }
        Ok(())
    }
}

/// `2 - 2 mean_i cos(p_i, t_i)` over the rows of two `(batch, dim)` tensors.
pub fn negative_cosine(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    let dot = p.mul(t)?.sum(D::Minus1)?;
    let np = (p.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
    let nt = (t.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
    let cos = dot.div(&np.mul(&nt)?)?;
    Ok(cos.mean_all()?.affine(-2.0, 2.0)?)
}

/// The symmetrised negative-cosine loss of BYOL / SimSiam:
/// `cosine = (D(p_a, t_b) + D(p_b, t_a)) / 2` with `D(p, t) = 2 - 2 cos(p, sg(t))`
/// averaged over the local batch (SimSiam's averaging of the two directions;
/// the official BYOL code sums them, i.e. twice this value). With
/// `std_coeff` / `cov_coeff` > 0, VICReg's variance and covariance terms of each
/// branch's projection `z` (batch gathered from every rank, as in VICReg) are added:
/// `total = cosine_coeff * cosine + std_coeff * (v(z_a) + v(z_b)) / 2 + cov_coeff * (c(z_a) + c(z_b))`.
///
/// Terms: `cosine`, and `variance_a`, `variance_b`, `covariance_a`, `covariance_b` when enabled.
#[derive(Clone, Debug)]
pub struct NegativeCosineLoss {
    cfg: NegativeCosineConfig,
    name: &'static str,
}

/// The blocks of one branch: prediction, projection, target.
struct Blocks {
    p: Tensor,
    z: Tensor,
    t: Tensor,
}

impl NegativeCosineLoss {
    /// A loss with the given (checked) configuration, named `"byol"`.
    pub fn new(cfg: NegativeCosineConfig) -> Result<Self> {
        Self::named(cfg, "byol")
    }

    /// A loss with the given (checked) configuration and log name (`"byol"`, `"simsiam"`, ...).
    pub fn named(cfg: NegativeCosineConfig, name: &'static str) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg, name })
    }

    /// The configuration.
    pub fn config(&self) -> &NegativeCosineConfig {
        &self.cfg
    }

    /// The total on a single process.
    pub fn loss(&self, za: &Tensor, zb: &Tensor) -> Result<Tensor> {
        let single: Arc<dyn Collective> = Arc::new(SingleProcess);
        Ok(self.compute(za, zb, &single)?.total)
    }

    fn target_of(&self, t: &Tensor) -> Tensor {
        if self.cfg.stop_gradient {
            t.detach()
        } else {
            t.clone()
        }
    }

    fn typed(&self, o: &BranchOutput) -> Blocks {
        Blocks {
            p: o.prediction().clone(),
            z: o.emb.clone(),
            t: self.target_of(o.target()),
        }
    }

    /// The loss of two views' prediction / projection / target blocks.
    fn of_blocks(
        &self,
        a: &Blocks,
        b: &Blocks,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        let cos = ((negative_cosine(&a.p, &b.t)? + negative_cosine(&b.p, &a.t)?)? * 0.5)?;
        let mut total = (&cos * self.cfg.cosine_coeff)?;
        let mut terms = vec![("cosine".to_string(), cos)];
        if self.cfg.std_coeff > 0.0 || self.cfg.cov_coeff > 0.0 {
            let ga = gather_with_grad(collective, &a.z)?;
            let gb = gather_with_grad(collective, &b.z)?;
            check_batch_at_least(
                self.name,
                ga.dim(0)?,
                2,
                "the variance and covariance terms",
            )?;
            let va = variance(&ga, self.cfg.gamma, self.cfg.eps)?;
            let vb = variance(&gb, self.cfg.gamma, self.cfg.eps)?;
            let ca = covariance(&ga, CovarianceForm::Auto)?;
            let cb = covariance(&gb, CovarianceForm::Auto)?;
            total = (total
                + ((&va + &vb)? * (0.5 * self.cfg.std_coeff))?
                + ((&ca + &cb)? * self.cfg.cov_coeff)?)?;
            terms.push(("variance_a".into(), va));
            terms.push(("variance_b".into(), vb));
            terms.push(("covariance_a".into(), ca));
            terms.push(("covariance_b".into(), cb));
        }
        Ok(LossOutput { total, terms })
    }

    fn blocks(&self, e: &Tensor) -> Result<Blocks> {
        Ok(match self.cfg.layout {
            CosineLayout::Plain => Blocks {
                p: e.clone(),
                z: e.clone(),
                t: self.target_of(e),
            },
            CosineLayout::Packed => {
                let w = e.dim(1)?;
                if w % 3 != 0 {
                    return Err(Error::invalid(format!(
                        "{}: packed [prediction | projection | target] embeddings need a width divisible by 3, got {w}",
                        self.name
                    )));
                }
                let d = w / 3;
                Blocks {
                    p: e.narrow(1, 0, d)?,
                    z: e.narrow(1, d, d)?,
                    t: self.target_of(&e.narrow(1, 2 * d, d)?),
                }
            }
        })
    }
}

impl JointLoss for NegativeCosineLoss {
    fn name(&self) -> &'static str {
        self.name
    }

    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        check_embedding_pair(self.name, za, zb)?;
        self.of_blocks(&self.blocks(za)?, &self.blocks(zb)?, collective)
    }

    /// Reads each view's `prediction` and `target` (the projection `emb`
    /// where absent) whatever [`CosineLayout`] says.
    fn compute_outputs(
        &self,
        a: &BranchOutput,
        b: &BranchOutput,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        check_embedding_pair(self.name, &a.emb, &b.emb)?;
        check_embedding_pair(self.name, a.prediction(), b.target())?;
        check_embedding_pair(self.name, b.prediction(), a.target())?;
        self.of_blocks(&self.typed(a), &self.typed(b), collective)
    }
}

//! The VICReg loss (Bardes, Ponce & LeCun, ICLR 2022) with the conventions of
//! the official code by default and the paper's as options.

use std::sync::Arc;

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use super::{JointLoss, LossOutput};
use crate::collective::{gather_with_grad, Collective, SingleProcess};
use crate::{Error, Result};

/// How the two branches' variance terms are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum VarianceReduction {
    /// Official code: `(v(Z) + v(Z')) / 2` (effective coefficient halved).
    #[default]
    Mean,
    /// Paper: `v(Z) + v(Z')`.
    Sum,
}

/// Normalisation applied to embeddings before the loss (paper appendix D.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum EmbeddingNorm {
    /// No normalisation (the paper's best setting).
    #[default]
    None,
    /// Per-dimension standardisation over the (gathered) batch: `(z - mean) / std`.
    Standardize,
    /// Each embedding scaled to unit L2 norm; the variance target gamma becomes `1/sqrt(dim)`.
    L2,
}

/// Which formula computes the covariance term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CovarianceForm {
    /// `Gram` when batch < dim, `Dxd` otherwise.
    #[default]
    Auto,
    /// The `(dim, dim)` covariance matrix: O(B D^2).
    Dxd,
    /// The `(batch, batch)` Gram matrix of centred embeddings: O(B^2 D), same value and gradient.
    Gram,
}

/// Coefficients and conventions of the VICReg loss.
///
/// Defaults are the official code's: `sim_coeff = 25`, `std_coeff = 25`,
/// `cov_coeff = 1`, `gamma = 1`, `eps = 1e-4`, variance averaged over the two
/// branches, covariance summed, unbiased (N - 1) statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VicRegConfig {
    /// Invariance coefficient (lambda).
    pub sim_coeff: f64,
    /// Variance coefficient (mu) of branch A.
    pub std_coeff: f64,
    /// Covariance coefficient (nu) of branch A.
    pub cov_coeff: f64,
    /// Variance coefficient of branch B (`None`: same as `std_coeff`).
    pub std_coeff_b: Option<f64>,
    /// Covariance coefficient of branch B (`None`: same as `cov_coeff`).
    pub cov_coeff_b: Option<f64>,
    /// Target standard deviation of the variance hinge (`None`: 1, or `1/sqrt(dim)` with L2 normalisation).
    pub gamma: Option<f64>,
    /// Added to the variance under the square root.
    pub eps: f64,
    /// Mean (official) or sum (paper) of the two variance terms.
    pub variance_reduction: VarianceReduction,
    /// Embedding normalisation before the loss.
    pub normalization: EmbeddingNorm,
    /// Covariance formula.
    pub covariance_form: CovarianceForm,
}

impl Default for VicRegConfig {
    fn default() -> Self {
        Self::official()
    }
}

impl VicRegConfig {
    /// The official code's conventions (the default).
    pub fn official() -> Self {
        Self {
            sim_coeff: 25.0,
            std_coeff: 25.0,
            cov_coeff: 1.0,
            std_coeff_b: None,
            cov_coeff_b: None,
            gamma: None,
            eps: 1e-4,
            variance_reduction: VarianceReduction::Mean,
            normalization: EmbeddingNorm::None,
            covariance_form: CovarianceForm::Auto,
        }
    }

    /// The paper's equation: the two variance terms are summed.
    pub fn paper() -> Self {
        Self {
            variance_reduction: VarianceReduction::Sum,
            ..Self::official()
        }
    }

    fn validate(&self) -> Result<()> {
        let coeffs = [
            ("sim_coeff", self.sim_coeff),
            ("std_coeff", self.std_coeff),
            ("cov_coeff", self.cov_coeff),
            ("std_coeff_b", self.std_coeff_b.unwrap_or(0.0)),
            ("cov_coeff_b", self.cov_coeff_b.unwrap_or(0.0)),
            ("eps", self.eps),
            ("gamma", self.gamma.unwrap_or(1.0)),
        ];
        for (name, v) in coeffs {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::config(format!(
                    "{name} must be finite and >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Every term of one VICReg evaluation, as scalar tensors (still in the graph).
#[derive(Clone, Debug)]
pub struct VicRegTerms {
    /// Mean squared error between the branches (local batch).
    pub invariance: Tensor,
    /// Variance hinge of branch A and of branch B (gathered batch), unweighted.
    pub variance: [Tensor; 2],
    /// Covariance penalty of branch A and of branch B (gathered batch), unweighted.
    pub covariance: [Tensor; 2],
    /// The weighted total.
    pub total: Tensor,
}

/// The VICReg loss.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vicreg_core::loss::{VicRegConfig, VicRegLoss};
/// let za = Tensor::randn(0f32, 1.0, (16, 8), &Device::Cpu).unwrap();
/// let zb = Tensor::randn(0f32, 1.0, (16, 8), &Device::Cpu).unwrap();
/// let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
/// let terms = loss.terms(&za, &zb).unwrap();
/// assert!(terms.total.to_scalar::<f32>().unwrap() > 0.0);
/// ```
#[derive(Clone, Debug)]
pub struct VicRegLoss {
    cfg: VicRegConfig,
}

fn check_pair(za: &Tensor, zb: &Tensor) -> Result<()> {
    if za.rank() != 2 || zb.rank() != 2 {
        return Err(Error::invalid(format!(
            "VICReg expects (batch, dim) embeddings, got shapes {:?} and {:?}",
            za.dims(),
            zb.dims()
        )));
    }
    if za.dims() != zb.dims() {
        return Err(Error::invalid(format!(
            "the two branches' embeddings differ in shape: {:?} vs {:?}",
            za.dims(),
            zb.dims()
        )));
    }
    Ok(())
}

fn check_batch(z: &Tensor, what: &str) -> Result<()> {
    if z.rank() != 2 {
        return Err(Error::invalid(format!(
            "{what}: expected (batch, dim), got {:?}",
            z.dims()
        )));
    }
    let (b, d) = z.dims2()?;
    if b < 2 {
        return Err(Error::invalid(format!(
            "{what}: batch of {b}; variance and covariance need at least 2 samples"
        )));
    }
    if d < 1 {
        return Err(Error::invalid(format!("{what}: embedding dimension is 0")));
    }
    Ok(())
}

fn check_finite(z: &Tensor, what: &str) -> Result<()> {
    let s = z
        .abs()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    if !s.is_finite() {
        return Err(Error::NonFinite(format!(
            "{what} embeddings contain NaN or infinite values"
        )));
    }
    Ok(())
}

/// Invariance term: mean over all `batch * dim` elements of `(za - zb)^2`.
pub fn invariance(za: &Tensor, zb: &Tensor) -> Result<Tensor> {
    check_pair(za, zb)?;
    Ok(za.sub(zb)?.sqr()?.mean_all()?)
}

/// Variance term of one branch: `mean_d relu(gamma - sqrt(var_b(z[:, d]) + eps))`,
/// with the unbiased (N - 1) variance. `z`: `(batch, dim)`.
pub fn variance(z: &Tensor, gamma: f64, eps: f64) -> Result<Tensor> {
    check_batch(z, "variance")?;
    let (b, _) = z.dims2()?;
    let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = (zc.sqr()?.sum(0)? / (b as f64 - 1.0))?;
    let std = (var + eps)?.sqrt()?;
    Ok(std.affine(-1.0, gamma)?.relu()?.mean_all()?)
}

/// Covariance term of one branch: `sum_{i != j} C_ij^2 / dim` with
/// `C = zc^T zc / (N - 1)`. `z`: `(batch, dim)`. `form` picks the formula.
pub fn covariance(z: &Tensor, form: CovarianceForm) -> Result<Tensor> {
    check_batch(z, "covariance")?;
    let (b, d) = z.dims2()?;
    let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let norm = (b as f64 - 1.0).powi(2) * d as f64;
    let use_gram = match form {
        CovarianceForm::Auto => b < d,
        CovarianceForm::Gram => true,
        CovarianceForm::Dxd => false,
    };
    // diag(zc^T zc)_j = sum_i zc_ij^2
    let diag = zc.sqr()?.sum(0)?;
    let diag_sq = diag.sqr()?.sum_all()?;
    let full_sq = if use_gram {
        // ||zc^T zc||_F^2 == ||zc zc^T||_F^2
        zc.matmul(&zc.t()?)?.sqr()?.sum_all()?
    } else {
        zc.t()?.matmul(&zc)?.sqr()?.sum_all()?
    };
    Ok((full_sq.sub(&diag_sq)? / norm)?)
}

fn normalize(z: &Tensor, norm: EmbeddingNorm) -> Result<Tensor> {
    Ok(match norm {
        EmbeddingNorm::None => z.clone(),
        EmbeddingNorm::Standardize => {
            let (b, _) = z.dims2()?;
            let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?;
            let std = ((zc.sqr()?.sum_keepdim(0)? / (b as f64 - 1.0))? + 1e-8)?.sqrt()?;
            zc.broadcast_div(&std)?
        }
        EmbeddingNorm::L2 => {
            let n = (z.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
            z.broadcast_div(&n)?
        }
    })
}

impl VicRegLoss {
    /// A loss with the given configuration (checked).
    pub fn new(cfg: VicRegConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &VicRegConfig {
        &self.cfg
    }

    /// All terms on a single process: `za`, `zb` are the full `(batch, dim)` embeddings.
    pub fn terms(&self, za: &Tensor, zb: &Tensor) -> Result<VicRegTerms> {
        let single: Arc<dyn Collective> = Arc::new(SingleProcess);
        self.terms_distributed(za, zb, &single)
    }

    /// All terms with the official distributed semantics: invariance on the local
    /// batch, variance and covariance on the batch gathered from every rank
    /// (whose gradient is summed across ranks; each rank keeps its own slice).
    pub fn terms_distributed(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<VicRegTerms> {
        check_pair(za, zb)?;
        check_finite(za, "branch A")?;
        check_finite(zb, "branch B")?;
        let ga = gather_with_grad(collective, za)?;
        let gb = gather_with_grad(collective, zb)?;
        check_batch(&ga, "branch A")?;
        let cfg = &self.cfg;
        let d = za.dim(1)?;
        let gamma = cfg.gamma.unwrap_or(match cfg.normalization {
            EmbeddingNorm::L2 => 1.0 / (d as f64).sqrt(),
            _ => 1.0,
        });
        // Invariance on the local batch; L2 normalisation is per sample so it is
        // local too, standardisation uses the gathered batch statistics.
        let (la, lb, ga, gb) = match cfg.normalization {
            EmbeddingNorm::None => (za.clone(), zb.clone(), ga, gb),
            EmbeddingNorm::L2 => (
                normalize(za, EmbeddingNorm::L2)?,
                normalize(zb, EmbeddingNorm::L2)?,
                normalize(&ga, EmbeddingNorm::L2)?,
                normalize(&gb, EmbeddingNorm::L2)?,
            ),
            EmbeddingNorm::Standardize => {
                let na = normalize(&ga, EmbeddingNorm::Standardize)?;
                let nb = normalize(&gb, EmbeddingNorm::Standardize)?;
                let b = za.dim(0)?;
                let off = collective.rank() * b;
                (na.narrow(0, off, b)?, nb.narrow(0, off, b)?, na, nb)
            }
        };
        let inv = invariance(&la, &lb)?;
        let va = variance(&ga, gamma, cfg.eps)?;
        let vb = variance(&gb, gamma, cfg.eps)?;
        let ca = covariance(&ga, cfg.covariance_form)?;
        let cb = covariance(&gb, cfg.covariance_form)?;
        let half = match cfg.variance_reduction {
            VarianceReduction::Mean => 0.5,
            VarianceReduction::Sum => 1.0,
        };
        let std_b = cfg.std_coeff_b.unwrap_or(cfg.std_coeff);
        let cov_b = cfg.cov_coeff_b.unwrap_or(cfg.cov_coeff);
        let total = ((&inv * cfg.sim_coeff)?
            + (&va * (half * cfg.std_coeff))?
            + (&vb * (half * std_b))?
            + (&ca * cfg.cov_coeff)?
            + (&cb * cov_b)?)?;
        Ok(VicRegTerms {
            invariance: inv,
            variance: [va, vb],
            covariance: [ca, cb],
            total,
        })
    }
}

impl VicRegTerms {
    /// Converts to the generic [`LossOutput`].
    pub fn into_output(self) -> LossOutput {
        LossOutput {
            total: self.total,
            terms: vec![
                ("invariance".into(), self.invariance),
                ("variance_a".into(), self.variance[0].clone()),
                ("variance_b".into(), self.variance[1].clone()),
                ("covariance_a".into(), self.covariance[0].clone()),
                ("covariance_b".into(), self.covariance[1].clone()),
            ],
        }
    }
}

impl JointLoss for VicRegLoss {
    fn name(&self) -> &'static str {
        "vicreg"
    }

    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        Ok(self.terms_distributed(za, zb, collective)?.into_output())
    }
}

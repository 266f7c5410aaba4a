//! Joint-embedding losses. Every loss sees two `(batch, dim)` embedding tensors
//! (or the two branches' [`BranchOutput`]s, for losses that also use
//! predictions and momentum targets) and a [`Collective`], and returns its
//! total plus named terms for logging.

mod barlow_twins;
mod input;
mod negative_cosine;
mod select;
mod simclr;
mod vicreg;
mod vicregl;

pub use barlow_twins::{batch_standardize, BarlowTwinsConfig, BarlowTwinsLoss};
pub use negative_cosine::{
    negative_cosine, CosineLayout, NegativeCosineConfig, NegativeCosineLoss,
};
pub use select::{build_loss, LossConfig, LossKind};
pub use simclr::{l2_normalize, SimClrConfig, SimClrLoss};

pub use vicreg::{
    covariance, invariance, variance, CovarianceForm, EmbeddingNorm, VarianceReduction,
    VicRegConfig, VicRegLoss, VicRegTerms,
};
pub use vicregl::{
    global_terms, local_pair_terms, local_terms, location_grid, matched_vicreg_terms,
    nearest_neighbor_matches, vicregl_loss, vicregl_loss_distributed, ScaledTerms, VicRegLConfig,
    VicRegLLoss, VicRegLTerms,
};

use std::sync::Arc;

use candle_core::Tensor;

use crate::collective::Collective;
use crate::model::{BranchOutput, JointOutput};
use crate::Result;

/// The output of a joint-embedding loss: the scalar to differentiate and the
/// named scalar terms that make it up (for logging and NaN diagnosis).
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// Scalar total loss (rank-0 tensor).
    pub total: Tensor,
    /// Named scalar terms, in a stable order (e.g. `invariance`, `variance_a`, ...).
    pub terms: Vec<(String, Tensor)>,
}

impl LossOutput {
    /// The terms and the total as `f64` values, total last.
    pub fn scalars(&self) -> Result<Vec<(String, f64)>> {
        let mut v = Vec::with_capacity(self.terms.len() + 1);
        for (n, t) in &self.terms {
            v.push((
                n.clone(),
                t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
            ));
        }
        v.push((
            "total".to_string(),
            self.total
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?,
        ));
        Ok(v)
    }
}

/// A loss between the embeddings of the two branches.
pub trait JointLoss: Send + Sync {
    /// Short name (`"vicreg"`, ...), used in logs and configs.
    fn name(&self) -> &'static str;

    /// `za`, `zb`: `(local_batch, dim)` embeddings of branch A and B on this rank.
    /// Terms that need batch statistics gather the batch from every rank of `collective`.
    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput>;

    /// The loss of the two branches' outputs, each part named (what the
    /// trainer calls). Default: [`compute`](Self::compute) on the two
    /// `emb`s; a loss that uses predictions or momentum targets (BYOL,
    /// SimSiam) reads those fields.
    fn compute_outputs(
        &self,
        a: &BranchOutput,
        b: &BranchOutput,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        self.compute(&a.emb, &b.emb, collective)
    }

    /// The loss of a whole model output (what the trainer calls). Default:
    /// [`compute_outputs`](Self::compute_outputs) on the two branches; a
    /// multi-crop loss (VICRegL) reads every view from `out.views`.
    fn compute_joint(
        &self,
        out: &JointOutput,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        self.compute_outputs(&out.a, &out.b, collective)
    }
}

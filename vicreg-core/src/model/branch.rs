//! One branch: encoder followed by its expander.

use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

use super::{Encoder, Expander, ExpanderConfig};
use crate::Result;

/// What one branch computes for one view, each part named.
#[derive(Clone, Debug)]
pub struct BranchOutput {
    /// `(batch, repr_dim)` encoder output (what downstream tasks use).
    pub repr: Tensor,
    /// `(batch, dim)` expander output (for an asymmetric model the online
    /// projection `z`): what the VICReg terms and the embedding diagnostics
    /// (per-dimension std, correlation, effective rank) see.
    pub emb: Tensor,
    /// `(batch, dim)` predictor output `p` on `emb` (BYOL / SimSiam with a
    /// predictor); `None`: no predictor.
    pub prediction: Option<Tensor>,
    /// `(batch, dim)` projection of the momentum target branch `t`, detached
    /// (BYOL); `None`: no momentum target.
    pub target: Option<Tensor>,
}

impl BranchOutput {
    /// A branch without predictor or momentum target.
    pub fn new(repr: Tensor, emb: Tensor) -> Self {
        Self {
            repr,
            emb,
            prediction: None,
            target: None,
        }
    }

    /// What this view predicts with: the predictor's output, else `emb`.
    pub fn prediction(&self) -> &Tensor {
        self.prediction.as_ref().unwrap_or(&self.emb)
    }

    /// What the other view's prediction must match: the momentum target's
    /// projection, else `emb` (the loss applies stop-gradient).
    pub fn target(&self) -> &Tensor {
        self.target.as_ref().unwrap_or(&self.emb)
    }
}

/// An encoder and its expander.
pub struct Branch<E: Encoder> {
    /// The encoder.
    pub encoder: E,
    /// The expander.
    pub expander: Expander,
}

impl<E: Encoder> Branch<E> {
    /// Wraps `encoder` and builds an expander under `vb` (conventionally `vb.pp("projector")`).
    pub fn new(encoder: E, cfg: &ExpanderConfig, vb: VarBuilder) -> Result<Self> {
        let expander = Expander::new(encoder.repr_dim(), cfg, vb)?;
        Ok(Self { encoder, expander })
    }

    /// Runs encoder and expander.
    pub fn forward_t(&self, input: &E::Input, train: bool) -> Result<BranchOutput> {
        let repr = self.encoder.forward_t(input, train)?;
        let emb = self.expander.forward_t(&repr, train)?;
        Ok(BranchOutput::new(repr, emb))
    }
}

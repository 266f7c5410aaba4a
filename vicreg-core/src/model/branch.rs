//! One branch: encoder followed by its expander.

use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

use super::{Encoder, Expander, ExpanderConfig};
use crate::Result;

/// Representation and embedding of one branch.
#[derive(Clone, Debug)]
pub struct BranchOutput {
    /// `(batch, repr_dim)` encoder output (what downstream tasks use).
    pub repr: Tensor,
    /// `(batch, emb_dim)` expander output (what the loss sees).
    pub emb: Tensor,
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
        Ok(BranchOutput { repr, emb })
    }
}

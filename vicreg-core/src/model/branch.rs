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
    /// What the loss sees: the `(batch, emb_dim)` expander output, or for an
    /// asymmetric model the packed `(batch, 3 * dim)` `[p | z | t]` (see
    /// [`AsymmetricModel`](super::AsymmetricModel)).
    pub emb: Tensor,
    /// The `(batch, dim)` expander output alone where `emb` packs more than it
    /// (asymmetric models); `None` when `emb` is the expander output.
    pub projection: Option<Tensor>,
}

impl BranchOutput {
    /// The `(batch, dim)` expander output: what the embedding diagnostics
    /// (per-dimension std, correlation, effective rank) are computed on.
    pub fn projection(&self) -> &Tensor {
        self.projection.as_ref().unwrap_or(&self.emb)
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
        Ok(BranchOutput {
            repr,
            emb,
            projection: None,
        })
    }
}

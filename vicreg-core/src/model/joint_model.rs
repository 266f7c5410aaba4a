//! What the engine needs from a two-branch model.

use super::{Encoder, JointEmbedding, JointOutput};
use crate::Result;

/// A joint-embedding model: two inputs in, representations and embeddings of
/// both branches out. Implemented for [`JointEmbedding`]; implement it for
/// any other two-branch architecture to train it with the engine.
pub trait JointModel {
    /// One batch of branch A's input.
    type A;
    /// One batch of branch B's input.
    type B;

    /// Runs both branches. `train` selects BatchNorm batch statistics and active dropout.
    fn forward_t(&self, a: &Self::A, b: &Self::B, train: bool) -> Result<JointOutput>;

    /// Representation sizes of branch A and branch B.
    fn repr_dims(&self) -> (usize, usize);
}

impl<EA, EB> JointModel for JointEmbedding<EA, EB>
where
    EA: Encoder,
    EB: Encoder,
    EA::Input: Sized,
    EB::Input: Sized,
{
    type A = EA::Input;
    type B = EB::Input;

    fn forward_t(&self, a: &Self::A, b: &Self::B, train: bool) -> Result<JointOutput> {
        JointEmbedding::forward_t(self, a, b, train)
    }

    fn repr_dims(&self) -> (usize, usize) {
        (
            self.branch_a().encoder.repr_dim(),
            self.branch_b().encoder.repr_dim(),
        )
    }
}

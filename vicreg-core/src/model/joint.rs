//! Two branches whose embeddings meet in a loss.

use std::sync::Arc;

use super::{Branch, BranchOutput, Encoder};
use crate::Result;

/// Outputs of both branches for one pair of batches.
#[derive(Clone, Debug)]
pub struct JointOutput {
    /// Branch A (first view / first modality).
    pub a: BranchOutput,
    /// Branch B (second view / second modality).
    pub b: BranchOutput,
    /// Every view of a multi-crop model ([`super::MultiCropModel`]); `None`
    /// for two-branch models.
    pub views: Option<super::MultiViewOutput>,
}

/// A joint-embedding architecture: branch A and branch B, which either share
/// one set of weights (siamese, [`JointEmbedding::siamese`]) or not
/// ([`JointEmbedding::new`], possibly with different encoder types and inputs).
pub struct JointEmbedding<A: Encoder, B: Encoder = A> {
    a: Arc<Branch<A>>,
    b: Arc<Branch<B>>,
    shared: bool,
}

impl<E: Encoder> JointEmbedding<E, E> {
    /// Both views go through the same branch (one set of variables).
    pub fn siamese(branch: Branch<E>) -> Self {
        let a = Arc::new(branch);
        Self {
            b: a.clone(),
            a,
            shared: true,
        }
    }
}

impl<A: Encoder, B: Encoder> JointEmbedding<A, B> {
    /// Two branches with their own weights.
    pub fn new(a: Branch<A>, b: Branch<B>) -> Self {
        Self {
            a: Arc::new(a),
            b: Arc::new(b),
            shared: false,
        }
    }

    /// True when both branches are the same module.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Branch A.
    pub fn branch_a(&self) -> &Branch<A> {
        &self.a
    }

    /// Branch B (the same object as A when shared).
    pub fn branch_b(&self) -> &Branch<B> {
        &self.b
    }

    /// Runs both branches; each view is a separate forward pass (separate
    /// BatchNorm statistics), as in the official code.
    pub fn forward_t(&self, xa: &A::Input, xb: &B::Input, train: bool) -> Result<JointOutput> {
        Ok(JointOutput {
            a: self.a.forward_t(xa, train)?,
            b: self.b.forward_t(xb, train)?,
            views: None,
        })
    }
}

//! Asymmetric joint-embedding models (BYOL, SimSiam): an online branch with a
//! predictor, and a target that is the online branch itself (stop-gradient
//! applied by the loss) or a momentum (EMA) copy of it.

use candle_core::ModuleT;

use super::{Branch, BranchOutput, Encoder, JointModel, JointOutput, Predictor};
use crate::{Error, Result};

/// Online branch + optional predictor + optional momentum target branch, for
/// two views of the same modality.
///
/// For each view it returns a [`BranchOutput`] whose `emb` is the online
/// projection `z`, `prediction` the predictor's output on `z` (`None` without
/// predictor) and `target` the momentum branch's projection, detached (`None`
/// without one: the loss then uses `z` with stop-gradient).
/// Train it with [`NegativeCosineLoss`](crate::loss::NegativeCosineLoss); with a
/// momentum target, update the target after each optimizer step with
/// [`EmaOptimizer`](super::EmaOptimizer). Representations are the online encoder's.
pub struct AsymmetricModel<E: Encoder> {
    online: Branch<E>,
    predictor: Option<Predictor>,
    target: Option<Branch<E>>,
}

impl<E: Encoder> AsymmetricModel<E> {
    /// Checks that the predictor maps the embedding dimension to itself and
    /// that the target branch has the online branch's sizes. The target's
    /// variables must be paired with the online ones by an
    /// [`EmaTarget`](super::EmaTarget) (which also copies them).
    pub fn new(
        online: Branch<E>,
        predictor: Option<Predictor>,
        target: Option<Branch<E>>,
    ) -> Result<Self> {
        let d = online.expander.out_dim();
        if let Some(p) = &predictor {
            if p.in_dim() != d || p.out_dim() != d {
                return Err(Error::config(format!(
                    "predictor maps {} -> {} but the embedding dimension is {d} (its last width must be {d})",
                    p.in_dim(),
                    p.out_dim()
                )));
            }
        }
        if let Some(t) = &target {
            if t.expander.out_dim() != d || t.encoder.repr_dim() != online.encoder.repr_dim() {
                return Err(Error::config(format!(
                    "target branch ({} -> {}) differs from the online branch ({} -> {d})",
                    t.encoder.repr_dim(),
                    t.expander.out_dim(),
                    online.encoder.repr_dim()
                )));
            }
        }
        Ok(Self {
            online,
            predictor,
            target,
        })
    }

    /// The online branch.
    pub fn online(&self) -> &Branch<E> {
        &self.online
    }

    /// Whether a predictor is on the online branch.
    pub fn has_predictor(&self) -> bool {
        self.predictor.is_some()
    }

    /// Whether a momentum target branch is used.
    pub fn has_momentum_target(&self) -> bool {
        self.target.is_some()
    }

    /// Embedding dimension.
    pub fn emb_dim(&self) -> usize {
        self.online.expander.out_dim()
    }

    /// One view: online representation and projection, prediction, target.
    pub fn forward_view(&self, x: &E::Input, train: bool) -> Result<BranchOutput> {
        let o = self.online.forward_t(x, train)?;
        let prediction = match &self.predictor {
            Some(pred) => Some(pred.forward_t(&o.emb, train)?),
            None => None,
        };
        let target = match &self.target {
            Some(tb) => Some(tb.forward_t(x, train)?.emb.detach()),
            None => None,
        };
        Ok(BranchOutput {
            prediction,
            target,
            ..o
        })
    }
}

impl<E> JointModel for AsymmetricModel<E>
where
    E: Encoder,
    E::Input: Sized,
{
    type A = E::Input;
    type B = E::Input;

    fn forward_t(&self, a: &Self::A, b: &Self::B, train: bool) -> Result<JointOutput> {
        Ok(JointOutput {
            a: self.forward_view(a, train)?,
            b: self.forward_view(b, train)?,
            views: None,
        })
    }

    fn repr_dims(&self) -> (usize, usize) {
        let r = self.online.encoder.repr_dim();
        (r, r)
    }
}

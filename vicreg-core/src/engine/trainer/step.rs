//! One optimizer step: forward, loss and backward of each micro-batch
//! (gradients summed), then averaging over ranks, the NaN / Inf guard,
//! clipping and the optimizer.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::Trainer;
use crate::engine::guard::{check_loss_terms, grad_sq_norms, StepPos};
use crate::engine::metrics::EpochAccum;
use crate::engine::source::PairBatch;
use crate::model::{JointModel, JointOutput};
use crate::{Error, Result};

/// What one micro-batch produced: its loss terms, the model's outputs and
/// the online probe's accuracy on it (percent).
pub(super) struct MicroOut {
    pub(super) scalars: Vec<(String, f64)>,
    pub(super) out: JointOutput,
    pub(super) probe_acc: Option<f64>,
}

impl<'m, M: JointModel> Trainer<'m, M> {
    /// Forward, loss, backward of one micro-batch; gradients added to `grads`.
    pub(super) fn micro_step(
        &mut self,
        batch: &PairBatch<M::A, M::B>,
        at: StepPos,
        grads: &mut HashMap<String, Tensor>,
        accum: &mut EpochAccum,
    ) -> Result<MicroOut> {
        let out = self.model.forward_t(&batch.a, &batch.b, true)?;
        let loss = self.loss.compute_joint(&out, &self.collective)?;
        let scalars = loss.scalars()?;
        check_loss_terms(&scalars, at)?;
        let total = if self.cfg.accumulate > 1 {
            (&loss.total / self.cfg.accumulate as f64)?
        } else {
            loss.total.clone()
        };
        let g = total.backward()?;
        for (name, var) in &self.trainable {
            if let Some(gv) = g.get(var.as_tensor()) {
                let sum = match grads.remove(name) {
                    Some(prev) => (prev + gv)?,
                    None => gv.clone(),
                };
                grads.insert(name.clone(), sum);
            }
        }
        drop(g);
        let mut probe_acc = None;
        if let Some(probe) = self.probe.as_mut() {
            let labels = batch.labels.as_ref().ok_or_else(|| {
                Error::invalid(format!(
                    "{at}: the online probe is on but the batch carries no labels"
                ))
            })?;
            let s = probe.step(&out.a.repr, labels, &self.collective)?;
            accum.probe_correct += s.correct;
            accum.probe_total += s.total;
            probe_acc = Some(100.0 * s.correct as f64 / s.total.max(1) as f64);
        }
        Ok(MicroOut {
            scalars,
            out,
            probe_acc,
        })
    }

    /// Averages, checks, clips and applies the accumulated gradients; returns the global norm.
    pub(super) fn apply_step(
        &mut self,
        grads: HashMap<String, Tensor>,
        lr: f64,
        at: StepPos,
    ) -> Result<f64> {
        let world = self.collective.world_size();
        let mut named: Vec<(String, Var, Tensor)> = Vec::with_capacity(grads.len());
        for (name, var) in &self.trainable {
            if let Some(g) = grads.get(name) {
                let g = if world > 1 {
                    (self.collective.all_reduce_sum(g)? / world as f64)?
                } else {
                    g.clone()
                };
                named.push((name.clone(), var.clone(), g));
            }
        }
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, _, g)| (n.as_str(), g)).collect();
        let sq = grad_sq_norms(&refs, at)?;
        let norm = sq.iter().sum::<f64>().sqrt();
        let scale = match self.cfg.clip_grad {
            Some(max) if norm > max => Some(max / (norm + 1e-6)),
            _ => None,
        };
        let mut store = GradStore::default();
        for (_, var, g) in named {
            let g = match scale {
                Some(s) => (g * s)?,
                None => g,
            };
            store.insert(var.as_tensor(), g);
        }
        self.optimizer.step(&store, lr)?;
        Ok(norm)
    }
}

//! Online linear probe: a classifier trained alongside pretraining on the
//! detached representations, with its own optimizer, so that accuracy can be
//! watched while the encoder learns (as lightly and solo-learn offer).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use serde::{Deserialize, Serialize};

use super::linear_probe::{label_ranks, linear_classifier};
use crate::collective::Collective;
use crate::optim::{Optimizer, Sgd};
use crate::{Error, ParamStore, Result};

/// Settings of the online linear probe trained alongside pretraining on the
/// detached representations of branch A (as lightly and solo-learn offer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineProbeConfig {
    /// Number of classes of the labels carried by the batches.
    pub num_classes: usize,
    /// Learning rate of the probe's own SGD (momentum 0.9, constant rate).
    pub lr: f64,
    /// Weight decay of the probe.
    pub weight_decay: f64,
}

impl Default for OnlineProbeConfig {
    fn default() -> Self {
        Self {
            num_classes: 10,
            lr: 0.1,
            weight_decay: 0.0,
        }
    }
}

/// A linear classifier on `(batch, repr_dim)` representations, trained with
/// SGD (momentum 0.9, constant rate) on cross-entropy. No gradient reaches the
/// encoder: the input is detached.
pub struct OnlineProbe {
    store: ParamStore,
    linear: Linear,
    opt: Sgd,
    cfg: OnlineProbeConfig,
}

/// The outcome of one probe step on a batch, measured before the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeStep {
    /// Cross-entropy on the batch.
    pub loss: f64,
    /// Correct top-1 predictions (all ranks).
    pub correct: u64,
    /// Predictions (all ranks).
    pub total: u64,
}

impl OnlineProbe {
    /// A probe for `repr_dim` features; initialisation drawn from `seed`.
    pub fn new(
        repr_dim: usize,
        cfg: &OnlineProbeConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let store = ParamStore::new(seed);
        let linear = linear_classifier(
            repr_dim,
            cfg.num_classes,
            store.var_builder(DType::F32, device),
        )?;
        let opt = Sgd::over_store(&store, cfg.weight_decay)?;
        Ok(Self {
            store,
            linear,
            opt,
            cfg: cfg.clone(),
        })
    }

    /// One training step on `repr` (detached here) with `labels`; gradients are
    /// averaged over the ranks of `collective`.
    pub fn step(
        &mut self,
        repr: &Tensor,
        labels: &[usize],
        collective: &Arc<dyn Collective>,
    ) -> Result<ProbeStep> {
        let n = repr.dim(0)?;
        if n != labels.len() {
            return Err(Error::invalid(format!(
                "online probe: {n} representations but {} labels",
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&y| y >= self.cfg.num_classes) {
            return Err(Error::invalid(format!(
                "online probe: label {bad} is out of range for {} classes",
                self.cfg.num_classes
            )));
        }
        let x = repr.detach().to_dtype(DType::F32)?;
        let logits = self.linear.forward(&x)?;
        let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let y = Tensor::from_vec(y, n, x.device())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let correct = label_ranks(&logits.detach(), labels)?
            .iter()
            .filter(|&&r| r == 0)
            .count();
        let mut grads = loss.backward()?;
        let world = collective.world_size();
        let mut counts = [correct as f32, n as f32];
        if world > 1 {
            let mut avg = GradStore::default();
            for (_, var) in self.store.trainable_vars() {
                if let Some(g) = grads.get(var.as_tensor()) {
                    avg.insert(
                        var.as_tensor(),
                        (collective.all_reduce_sum(g)? / world as f64)?,
                    );
                }
            }
            grads = avg;
            let c = collective.all_reduce_sum(&Tensor::new(&counts, &Device::Cpu)?)?;
            counts.copy_from_slice(&c.to_vec1::<f32>()?);
        }
        self.opt.step(&grads, self.cfg.lr)?;
        Ok(ProbeStep {
            loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            correct: counts[0] as u64,
            total: counts[1] as u64,
        })
    }

    /// The probe's weights (`weight`, `bias`).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.store.tensors()
    }

    /// The probe optimizer's state.
    pub fn optimizer_state(&self) -> Result<HashMap<String, Tensor>> {
        self.opt.state()
    }

    /// Restores weights and optimizer state saved by [`OnlineProbe::tensors`] and
    /// [`OnlineProbe::optimizer_state`]; `source` names the file for errors.
    pub fn load(
        &mut self,
        weights: &HashMap<String, Tensor>,
        opt_state: &HashMap<String, Tensor>,
        source: &std::path::Path,
    ) -> Result<()> {
        self.store.load_tensors(weights, false, source)?;
        self.opt.load_state(opt_state)
    }
}

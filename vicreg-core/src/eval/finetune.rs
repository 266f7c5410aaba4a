//! End-to-end fine-tuning of an encoder with a linear head (the paper's
//! semi-supervised protocol): both trained with SGD, each with its own
//! learning rate, cosine-decayed per step.

use candle_core::{DType, Device, Module, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::linear_probe::{label_ranks, linear_classifier};
use crate::model::Encoder;
use crate::optim::{LrSchedule, Optimizer, ParamGroup, Sgd, SgdConfig};
use crate::{Error, ParamStore, Result};

/// Fine-tuning settings. Defaults: the paper's 10% protocol (20 epochs,
/// backbone lr 0.01, head lr 0.1, SGD momentum 0.9, no weight decay).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Passes over the training batches.
    pub epochs: usize,
    /// Peak learning rate of the encoder.
    pub lr_backbone: f64,
    /// Peak learning rate of the linear head.
    pub lr_head: f64,
    /// Weight decay (both groups).
    pub weight_decay: f64,
    /// Seed of the head's initialisation.
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self::paper_10_percent()
    }
}

impl FinetuneConfig {
    /// The paper's 1% setting: encoder lr 0.03, head lr 0.08, 20 epochs.
    pub fn paper_1_percent() -> Self {
        Self {
            epochs: 20,
            lr_backbone: 0.03,
            lr_head: 0.08,
            weight_decay: 0.0,
            seed: 0,
        }
    }
    /// The paper's 10% setting: encoder lr 0.01, head lr 0.1, 20 epochs.
    pub fn paper_10_percent() -> Self {
        Self {
            lr_backbone: 0.01,
            lr_head: 0.1,
            ..Self::paper_1_percent()
        }
    }
}

/// Top-1 / top-5 accuracy (%) after one epoch of fine-tuning.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochAccuracy {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training cross-entropy of the epoch.
    pub train_loss: f64,
    /// Top-1 accuracy on the evaluation batches (%).
    pub top1: f64,
    /// Top-5 accuracy on the evaluation batches (%).
    pub top5: f64,
}

/// A boxed iterator of labelled input batches.
pub type LabelledBatches<'a, I> = Box<dyn Iterator<Item = Result<(I, Vec<usize>)>> + 'a>;

/// Fine-tunes `encoder` (whose trainable variables are `encoder_vars`) with a
/// new linear head on `num_classes` classes. `train(epoch)` yields that
/// epoch's batches (augmented, shuffled), `eval()` the evaluation batches;
/// `steps_per_epoch` sizes the cosine schedule. After each epoch the encoder
/// runs in eval mode over `eval()` and `on_epoch` receives the accuracies.
#[allow(clippy::too_many_arguments)]
pub fn finetune<E: Encoder>(
    encoder: &E,
    encoder_vars: Vec<(String, Var)>,
    num_classes: usize,
    steps_per_epoch: usize,
    train: &mut dyn FnMut(usize) -> Result<LabelledBatches<'static, E::Input>>,
    eval: &mut dyn FnMut() -> Result<LabelledBatches<'static, E::Input>>,
    cfg: &FinetuneConfig,
    on_epoch: &mut dyn FnMut(&EpochAccuracy) -> Result<()>,
) -> Result<EpochAccuracy>
where
    E::Input: Sized,
{
    if cfg.epochs == 0 || steps_per_epoch == 0 {
        return Err(Error::config(
            "fine-tuning needs at least one epoch and one step per epoch",
        ));
    }
    if num_classes < 2 {
        return Err(Error::invalid("fine-tuning needs at least 2 classes"));
    }
    let device = encoder_vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    let head_store = ParamStore::new(cfg.seed);
    let head = linear_classifier(
        encoder.repr_dim(),
        num_classes,
        head_store.var_builder(DType::F32, &device).pp("head"),
    )?;
    let mut backbone = ParamGroup::new(encoder_vars);
    backbone.lr_scale = if cfg.lr_head > 0.0 {
        cfg.lr_backbone / cfg.lr_head
    } else {
        0.0
    };
    let groups = vec![backbone, ParamGroup::new(head_store.trainable_vars())];
    let mut opt = Sgd::new(
        groups,
        SgdConfig {
            momentum: 0.9,
            weight_decay: cfg.weight_decay,
            ..SgdConfig::default()
        },
    )?;
    let schedule = LrSchedule::cosine(cfg.lr_head, (cfg.epochs * steps_per_epoch) as u64);
    let mut step = 0u64;
    let mut last = None;
    for epoch in 0..cfg.epochs {
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        for b in train(epoch)? {
            let (x, labels) = b?;
            let y = Tensor::from_vec(
                labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
                labels.len(),
                &device,
            )?;
            let logits = head.forward(&encoder.forward_t(&x, true)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let l = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !l.is_finite() {
                return Err(Error::NonFinite(format!(
                    "fine-tuning loss at epoch {epoch}, step {step}"
                )));
            }
            opt.step(&loss.backward()?, schedule.lr_at(step))?;
            loss_sum += l;
            batches += 1;
            step += 1;
        }
        let (mut n, mut c1, mut c5) = (0usize, 0usize, 0usize);
        for b in eval()? {
            let (x, labels) = b?;
            let logits = head.forward(&encoder.forward_t(&x, false)?.detach())?;
            for r in label_ranks(&logits, &labels)? {
                n += 1;
                c1 += usize::from(r == 0);
                c5 += usize::from(r < 5);
            }
        }
        if n == 0 {
            return Err(Error::invalid("fine-tuning: the evaluation set is empty"));
        }
        let acc = EpochAccuracy {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            top1: 100.0 * c1 as f64 / n as f64,
            top5: 100.0 * c5 as f64 / n as f64,
        };
        on_epoch(&acc)?;
        last = Some(acc);
    }
    last.ok_or_else(|| Error::invalid("fine-tuning ran no epoch"))
}

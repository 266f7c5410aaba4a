//! Linear classifier trained on frozen features (the linear evaluation protocol).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::features::Features;
use crate::optim::{Lars, LarsConfig, LrSchedule, Optimizer, ParamGroup, Sgd};
use crate::{Error, ParamStore, Result, SeededRng};

/// Optimizer of the linear probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOptimizer {
    /// SGD with momentum 0.9 (the paper's protocol).
    #[default]
    Sgd,
    /// LARS (momentum 0.9, eta 0.001), as used for large-batch linear evaluation.
    /// Its trust ratio makes each step relative to the weight norm, so it needs
    /// a far larger `lr` than SGD (e.g. 10-20 instead of 0.02-0.2).
    Lars,
}

/// Linear evaluation settings. The default is the paper's protocol: SGD with
/// momentum 0.9, lr 0.02, weight decay 1e-6, batch 256, 100 epochs, cosine decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Peak learning rate (cosine-decayed to 0 per step).
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// SGD or LARS.
    pub optimizer: ProbeOptimizer,
    /// Seed of the classifier's initialisation and of the shuffling.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self::paper()
    }
}

impl LinearProbeConfig {
    /// The paper's protocol (100 epochs; meant for ImageNet-sized sets).
    pub fn paper() -> Self {
        Self {
            epochs: 100,
            lr: 0.02,
            weight_decay: 1e-6,
            batch_size: 256,
            optimizer: ProbeOptimizer::Sgd,
            seed: 0,
        }
    }

    /// A shorter schedule with a larger rate for small sets (CIFAR/ESC-50 sized):
    /// 30 epochs, lr 0.1, batch 256.
    pub fn quick() -> Self {
        Self {
            epochs: 30,
            lr: 0.1,
            ..Self::paper()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::config(
                "linear probe: epochs and batch_size must be at least 1",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(format!(
                "linear probe: lr must be > 0, got {}",
                self.lr
            )));
        }
        Ok(())
    }
}

/// Accuracies of a classifier, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Top-1 accuracy on the test features (%).
    pub top1: f64,
    /// Top-5 accuracy on the test features (%; 100 when there are at most 5 classes).
    pub top5: f64,
    /// Top-1 accuracy on the training features after training (%).
    pub train_top1: f64,
    /// Mean cross-entropy over the last epoch.
    pub final_loss: f64,
}

/// A linear layer `in_dim -> num_classes` initialised as the official
/// evaluation code does: weight ~ N(0, 0.01), bias 0. Tensors `weight`, `bias`.
pub fn linear_classifier(in_dim: usize, num_classes: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints(
        (num_classes, in_dim),
        "weight",
        Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        },
    )?;
    let b = vb.get_with_hints(num_classes, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// For each row of `(n, classes)` logits, the number of classes scored strictly
/// above the true label (0 = top-1 correct).
pub fn label_ranks(logits: &Tensor, labels: &[usize]) -> Result<Vec<usize>> {
    let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    if rows.len() != labels.len() {
        return Err(Error::invalid(format!(
            "{} rows of logits but {} labels",
            rows.len(),
            labels.len()
        )));
    }
    rows.iter()
        .zip(labels)
        .map(|(r, &y)| {
            let s = *r.get(y).ok_or_else(|| {
                Error::invalid(format!("label {y} out of range for {} classes", r.len()))
            })?;
            Ok(r.iter().filter(|&&v| v > s).count())
        })
        .collect()
}

fn check_labels(f: &Features, num_classes: usize, what: &str) -> Result<()> {
    if let Some(&bad) = f.labels.iter().find(|&&y| y >= num_classes) {
        return Err(Error::invalid(format!(
            "{what} label {bad} is out of range for {num_classes} classes"
        )));
    }
    Ok(())
}

fn labels_tensor(labels: &[usize], device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = labels.iter().map(|&y| y as u32).collect();
    Ok(Tensor::from_vec(v, labels.len(), device)?)
}

fn accuracy(model: &Linear, f: &Features, k: usize) -> Result<(f64, f64)> {
    let mut top1 = 0usize;
    let mut topk = 0usize;
    let chunk = 4096;
    let n = f.len();
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let logits = model.forward(&f.x.narrow(0, start, len)?)?.detach();
        for r in label_ranks(&logits, &f.labels[start..start + len])? {
            top1 += (r == 0) as usize;
            topk += (r < k) as usize;
        }
        start += len;
    }
    Ok((
        100.0 * top1 as f64 / n as f64,
        100.0 * topk as f64 / n as f64,
    ))
}

/// Trains a fresh linear classifier on `x` `(n, dim)` with `labels`: the
/// [`linear_classifier`] init from `cfg.seed`, the optimizer of `cfg`, a
/// cosine schedule over every step, a [`SeededRng`] shuffle per epoch,
/// cross-entropy. What [`linear_probe`] and
/// [`LinearHead::fit`](super::LinearHead::fit) share; returns the layer and
/// the mean loss of the last epoch. A non-finite loss is an error.
pub(crate) fn train_classifier(
    x: &Tensor,
    labels: &[usize],
    num_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<(Linear, f64)> {
    let device = x.device().clone();
    let store = ParamStore::new(cfg.seed);
    let model = linear_classifier(
        x.dim(1)?,
        num_classes,
        store.var_builder(DType::F32, &device),
    )?;
    let mut opt: Box<dyn Optimizer> = match cfg.optimizer {
        ProbeOptimizer::Sgd => Box::new(Sgd::over_store(&store, cfg.weight_decay)?),
        ProbeOptimizer::Lars => Box::new(Lars::new(
            vec![ParamGroup::new(store.trainable_vars())],
            LarsConfig {
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
    };
    let n = labels.len();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let schedule = LrSchedule::cosine(cfg.lr, (cfg.epochs * steps_per_epoch) as u64);
    let x = x.detach();
    let mut step = 0u64;
    let mut last_loss = 0.0;
    for epoch in 0..cfg.epochs {
        let perm = SeededRng::derive(cfg.seed, &[0x6c70_726f_6265, epoch as u64]).permutation(n);
        let mut loss_sum = 0.0;
        for idx in perm.chunks(cfg.batch_size) {
            let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
            let ids = Tensor::from_vec(ids, idx.len(), &device)?;
            let xb = x.index_select(&ids, 0)?;
            let yb: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
            let logits = model.forward(&xb)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels_tensor(&yb, &device)?)?;
            let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !lv.is_finite() {
                return Err(Error::NonFinite(format!(
                    "linear probe: loss is {lv} at epoch {epoch} step {step} (features contain NaN/Inf or lr too high)"
                )));
            }
            loss_sum += lv * idx.len() as f64;
            let grads = loss.backward()?;
            opt.step(&grads, schedule.lr_at(step))?;
            step += 1;
        }
        last_loss = loss_sum / n as f64;
    }
    Ok((model, last_loss))
}

/// Trains a linear classifier on frozen `train` features (deterministic
/// shuffling from [`SeededRng`], cross-entropy, cosine schedule) and reports
/// top-1/top-5 accuracy on `test`. Features are used as given (no normalisation).
pub fn linear_probe(
    train: &Features,
    test: &Features,
    num_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<ProbeResult> {
    cfg.validate()?;
    if num_classes < 2 {
        return Err(Error::invalid("linear probe needs at least 2 classes"));
    }
    if train.dim() != test.dim() {
        return Err(Error::invalid(format!(
            "train features have dim {}, test features {}",
            train.dim(),
            test.dim()
        )));
    }
    check_labels(train, num_classes, "train")?;
    check_labels(test, num_classes, "test")?;
    let test = test.to_device(train.x.device())?;
    let (model, last_loss) = train_classifier(&train.x, &train.labels, num_classes, cfg)?;
    let k = 5.min(num_classes);
    let (top1, top5) = accuracy(&model, &test, k)?;
    let (train_top1, _) = accuracy(&model, train, k)?;
    Ok(ProbeResult {
        top1,
        top5,
        train_top1,
        final_loss: last_loss,
    })
}

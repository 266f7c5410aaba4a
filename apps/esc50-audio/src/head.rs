//! The saved linear classifier that `classify` uses: per-dimension
//! standardisation of frozen features (training-set mean and std) followed by
//! a linear layer, stored per representation as
//! `classifier-<branch>.safetensors` (`mean`, `std`, `weight` `(classes, dim)`,
//! `bias`) with `classifier-<branch>.json` (branch, class names, the folds it
//! was trained on).
//!
//! Accuracies reported by `eval` come from `vicreg_core::eval::linear_probe`;
//! that function does not hand back its trained layer, so the head kept for
//! `classify` is trained here with the same recipe (the core's
//! `linear_classifier` init, SGD momentum 0.9, per-step cosine schedule, the
//! same seeded shuffles) on the same standardised features.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Module, Tensor, D};
use candle_nn::Linear;
use serde::{Deserialize, Serialize};
use vicreg_core::eval::{linear_classifier, Features, LinearProbeConfig};
use vicreg_core::optim::{LrSchedule, Optimizer, ParamGroup, Sgd, SgdConfig};
use vicreg_core::{ParamStore, SeededRng};

use crate::model::BranchSel;

/// Weights file of the head reading `branch`.
pub fn head_file(branch: BranchSel) -> String {
    format!("classifier-{}.safetensors", branch.name())
}

/// Description file of the head reading `branch`.
pub fn head_meta(branch: BranchSel) -> String {
    format!("classifier-{}.json", branch.name())
}

/// What the head was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadMeta {
    /// Which representation it reads.
    pub branch: BranchSel,
    /// Class names, indexed by target.
    pub classes: Vec<String>,
    /// Folds of its training clips.
    pub train_folds: Vec<u8>,
    /// Top-1 on its training features (%).
    pub train_top1: f64,
    /// The evaluation view its features came from (`classify` uses the same);
    /// heads saved before views existed were trained on centred crops.
    #[serde(default = "center_view")]
    pub view: datasets::audio::EvalView,
}

fn center_view() -> datasets::audio::EvalView {
    datasets::audio::EvalView::Center
}

/// Standardisation + linear layer.
pub struct Head {
    mean: Tensor,
    std: Tensor,
    linear: Linear,
}

/// Per-dimension mean and std (`(1, dim)` each, std floored by 1e-6 under the root) of `x` `(n, dim)`.
pub fn moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = x.mean_keepdim(0)?;
    let std = (x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-6)?.sqrt()?;
    Ok((mean, std))
}

/// Standardises train and test features with the training set's moments
/// (a BatchNorm without affine in front of the linear layer, as in the imagenet app).
pub fn standardize(train: &Features, test: &Features) -> Result<(Features, Features)> {
    let (mean, std) = moments(&train.x)?;
    let f = |x: &Features| -> Result<Features> {
        Ok(Features::new(
            x.x.broadcast_sub(&mean)?.broadcast_div(&std)?,
            x.labels.clone(),
        )?)
    };
    Ok((f(train)?, f(test)?))
}

impl Head {
    /// Trains the head on raw (unstandardised) `train` features.
    pub fn fit(train: &Features, num_classes: usize, cfg: &LinearProbeConfig) -> Result<Self> {
        let (mean, std) = moments(&train.x)?;
        let x = train.x.broadcast_sub(&mean)?.broadcast_div(&std)?.detach();
        let device = x.device().clone();
        let store = ParamStore::new(cfg.seed);
        let linear = linear_classifier(
            train.dim(),
            num_classes,
            store.var_builder(DType::F32, &device),
        )?;
        let mut opt = Sgd::new(
            vec![ParamGroup::new(store.trainable_vars())],
            SgdConfig {
                momentum: 0.9,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?;
        let n = train.len();
        let schedule = LrSchedule::cosine(cfg.lr, (cfg.epochs * n.div_ceil(cfg.batch_size)) as u64);
        let mut step = 0u64;
        for epoch in 0..cfg.epochs {
            let perm =
                SeededRng::derive(cfg.seed, &[0x6c70_726f_6265, epoch as u64]).permutation(n);
            for idx in perm.chunks(cfg.batch_size) {
                let ids = Tensor::from_vec(
                    idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    idx.len(),
                    &device,
                )?;
                let y: Vec<u32> = idx.iter().map(|&i| train.labels[i] as u32).collect();
                let y = Tensor::from_vec(y, idx.len(), &device)?;
                let loss = candle_nn::loss::cross_entropy(
                    &linear.forward(&x.index_select(&ids, 0)?)?,
                    &y,
                )?;
                opt.step(&loss.backward()?, schedule.lr_at(step))?;
                step += 1;
            }
        }
        Ok(Self { mean, std, linear })
    }

    /// `(n, classes)` class probabilities of raw features `(n, dim)`.
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        let z = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        Ok(candle_nn::ops::softmax(
            &self.linear.forward(&z)?,
            D::Minus1,
        )?)
    }

    /// Top-1 accuracy (%) on raw features.
    pub fn accuracy(&self, f: &Features) -> Result<f64> {
        let pred: Vec<u32> = self.probabilities(&f.x)?.argmax(D::Minus1)?.to_vec1()?;
        let ok = pred
            .iter()
            .zip(&f.labels)
            .filter(|(p, y)| **p as usize == **y)
            .count();
        Ok(100.0 * ok as f64 / f.len().max(1) as f64)
    }

    /// Writes `classifier-<branch>.safetensors` and `.json` into `dir`.
    pub fn save(&self, dir: &Path, meta: &HeadMeta) -> Result<()> {
        let mut t = HashMap::new();
        t.insert("mean".to_string(), self.mean.squeeze(0)?);
        t.insert("std".to_string(), self.std.squeeze(0)?);
        t.insert("weight".to_string(), self.linear.weight().clone());
        if let Some(b) = self.linear.bias() {
            t.insert("bias".to_string(), b.clone());
        }
        vicreg_core::io::save_safetensors_atomic(&t, &dir.join(head_file(meta.branch)))?;
        crate::data::write_json(&dir.join(head_meta(meta.branch)), meta)
    }

    /// Reads the head of run directory `dir` for `branch`, or (None) the
    /// first one present of both, wave, spec.
    pub fn load(dir: &Path, branch: Option<BranchSel>) -> Result<(Self, HeadMeta)> {
        let choices = match branch {
            Some(b) => vec![b],
            None => vec![BranchSel::Both, BranchSel::Wave, BranchSel::Spec],
        };
        let Some(&b) = choices
            .iter()
            .find(|&&b| dir.join(head_file(b)).is_file() && dir.join(head_meta(b)).is_file())
        else {
            bail!(
                "{}: no {}; run `esc50-audio eval` (or `supervised`) on this run directory first \
                 (for a 5-fold run, point --exp-dir at one of its fold-N directories)",
                dir.display(),
                choices
                    .iter()
                    .map(|&b| head_file(b))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        };
        let (file, meta_file) = (dir.join(head_file(b)), dir.join(head_meta(b)));
        let meta: HeadMeta = serde_json::from_slice(
            &std::fs::read(&meta_file)
                .with_context(|| format!("reading {}", meta_file.display()))?,
        )
        .with_context(|| format!("{}: invalid classifier description", meta_file.display()))?;
        let t = vicreg_core::io::load_safetensors(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let get = |k: &str| {
            t.get(k)
                .cloned()
                .with_context(|| format!("{}: no tensor {k:?}", file.display()))
        };
        let weight = get("weight")?;
        let (classes, dim) = weight.dims2()?;
        if classes != meta.classes.len() {
            bail!(
                "{}: {classes} classes in the weights but {} in {}",
                file.display(),
                meta.classes.len(),
                meta_file.display()
            );
        }
        let mean = get("mean")?.reshape((1, dim))?;
        let std = get("std")?.reshape((1, dim))?;
        Ok((
            Self {
                mean,
                std,
                linear: Linear::new(weight, Some(get("bias")?)),
            },
            meta,
        ))
    }
}

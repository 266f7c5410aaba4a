//! Configuration of the pretraining loop.

use serde::{Deserialize, Serialize};

use crate::eval::OnlineProbeConfig;
use crate::optim::OptimizerKind;
use crate::{Error, Result};

/// What to do when the run directory already holds a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ResumeMode {
    /// Resume when a checkpoint exists, start fresh otherwise (the official code's behaviour).
    #[default]
    Auto,
    /// `--resume`: a checkpoint must exist (an error otherwise).
    Require,
    /// Ignore any checkpoint and start over (files of the old run are overwritten).
    Fresh,
}

/// The pretraining loop's settings. Defaults follow the official VICReg
/// recipe (LARS, base lr 0.2 scaled by `batch_size / 256`, wd 1e-6, 10 warmup
/// epochs) except for the number of epochs and the batch size, which are
/// laptop-sized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Global batch size per optimizer step (all ranks and accumulated micro-batches
    /// together); the peak learning rate is `base_lr * batch_size / 256`.
    pub batch_size: usize,
    /// Base learning rate (official: 0.2 with LARS).
    pub base_lr: f64,
    /// Weight decay (official: 1e-6).
    pub weight_decay: f64,
    /// Optimizer of the model.
    pub optimizer: OptimizerKind,
    /// Epochs of linear warmup from 0 (official: 10).
    pub warmup_epochs: usize,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub clip_grad: Option<f64>,
    /// Micro-batches accumulated per optimizer step (1: none). The loss of each
    /// micro-batch is divided by this number, so gradients are averages.
    pub accumulate: usize,
    /// Write a `metrics.jsonl` step record every this many optimizer steps.
    pub log_every: usize,
    /// Write a checkpoint every this many optimizer steps (0: only at epoch ends).
    pub checkpoint_every_steps: usize,
    /// Compute the effective rank of the embeddings every this many steps (0: never).
    pub rank_every: usize,
    /// Seed of the engine's random stream (and, by convention, of the whole run).
    pub seed: u64,
    /// No progress bar and no per-epoch summary lines.
    pub quiet: bool,
    /// Behaviour when the run directory holds a checkpoint.
    pub resume: ResumeMode,
    /// Write SVG charts into the run directory at the end of the run.
    pub plot: bool,
    /// Online linear probe on branch A's representations (`None`: off).
    pub online_probe: Option<OnlineProbeConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 256,
            base_lr: 0.2,
            weight_decay: 1e-6,
            optimizer: OptimizerKind::Lars,
            warmup_epochs: 10,
            clip_grad: None,
            accumulate: 1,
            log_every: 10,
            checkpoint_every_steps: 0,
            rank_every: 100,
            seed: 0,
            quiet: false,
            resume: ResumeMode::Auto,
            plot: true,
            online_probe: None,
        }
    }
}

impl TrainConfig {
    /// A tiny configuration for smoke tests and examples: 2 epochs, SGD, no warmup, quiet.
    pub fn smoke() -> Self {
        Self {
            epochs: 2,
            batch_size: 16,
            base_lr: 0.5,
            optimizer: OptimizerKind::Sgd,
            warmup_epochs: 0,
            log_every: 1,
            rank_every: 5,
            quiet: true,
            plot: false,
            ..Self::default()
        }
    }

    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config("train.epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("train.batch_size must be at least 1"));
        }
        if !(self.base_lr.is_finite() && self.base_lr >= 0.0) {
            return Err(Error::config(format!(
                "train.base_lr must be >= 0, got {}",
                self.base_lr
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(format!(
                "train.weight_decay must be >= 0, got {}",
                self.weight_decay
            )));
        }
        if let Some(c) = self.clip_grad {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::config(format!(
                    "train.clip_grad must be > 0, got {c}"
                )));
            }
        }
        if self.accumulate == 0 {
            return Err(Error::config("train.accumulate must be at least 1"));
        }
        if self.log_every == 0 {
            return Err(Error::config("train.log_every must be at least 1"));
        }
        if let Some(p) = &self.online_probe {
            if p.num_classes < 2 {
                return Err(Error::config(
                    "train.online_probe.num_classes must be at least 2",
                ));
            }
            if !(p.lr.is_finite() && p.lr > 0.0) {
                return Err(Error::config(format!(
                    "train.online_probe.lr must be > 0, got {}",
                    p.lr
                )));
            }
        }
        Ok(())
    }
}

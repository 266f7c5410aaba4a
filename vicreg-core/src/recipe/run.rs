//! The `[run]` section every pretraining run has: schedule, optimizer,
//! VICReg coefficients, seed, logging, checkpoints, device and the
//! multi-process settings; as a config section ([`RunSettings`]) and, with
//! the `cli` feature, as command-line flags ([`RunFlags`]) with the same
//! kebab-case names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::{ResumeMode, TrainConfig};
use crate::limits::{
    check_float, check_int, FloatRange, BATCH_SIZE, CHECKPOINT_EVERY, COLLECTIVE_TIMEOUT, EPOCHS,
    LOG_EVERY, WARMUP_EPOCHS,
};
use crate::loss::VicRegConfig;
use crate::optim::OptimizerKind;
use crate::Result;

/// The settings common to every pretraining run (the official
/// `main_vicreg.py` names, kebab-case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunSettings {
    /// Run directory (checkpoint, metrics, plots, encoders).
    pub exp_dir: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Global batch size (pairs per optimizer step over all processes).
    pub batch_size: usize,
    /// Base learning rate; the peak is `base-lr * batch-size / 256`.
    pub base_lr: f64,
    /// Weight decay.
    pub wd: f64,
    /// lars, sgd or adamw.
    pub optimizer: OptimizerKind,
    /// Warmup epochs (linear from 0, then cosine).
    pub warmup_epochs: usize,
    /// Invariance coefficient.
    pub sim_coeff: f64,
    /// Variance coefficient.
    pub std_coeff: f64,
    /// Covariance coefficient.
    pub cov_coeff: f64,
    /// Seed of initialisation, data order and augmentation.
    pub seed: u64,
    /// A metrics record every this many steps.
    pub log_every: usize,
    /// Also checkpoint every this many steps (0: at epoch ends only).
    pub checkpoint_every: usize,
    /// Clip the global gradient norm (unset: no clipping).
    pub clip_grad: Option<f64>,
    /// No progress bars.
    pub quiet: bool,
    /// cpu, cuda or cuda:N.
    pub device: String,
    /// Synchronized BatchNorm over the processes (unset: on when several).
    pub sync_bn: Option<bool>,
    /// Seconds a collective may take before an `mpirun` job is aborted.
    pub collective_timeout: f64,
}

impl Default for RunSettings {
    /// The official recipe's optimizer and coefficients (LARS, base lr 0.2,
    /// wd 1e-6, 25 / 25 / 1) at a laptop's epochs and batch.
    fn default() -> Self {
        Self {
            exp_dir: PathBuf::from("runs/run"),
            epochs: 100,
            batch_size: 256,
            base_lr: 0.2,
            wd: 1e-6,
            optimizer: OptimizerKind::Lars,
            warmup_epochs: 10,
            sim_coeff: 25.0,
            std_coeff: 25.0,
            cov_coeff: 1.0,
            seed: 0,
            log_every: 10,
            checkpoint_every: 0,
            clip_grad: None,
            quiet: false,
            device: "cpu".into(),
            sync_bn: None,
            collective_timeout: 600.0,
        }
    }
}

impl RunSettings {
    /// Checks every key's range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        check_int("epochs", self.epochs, &EPOCHS)?;
        check_int("batch-size", self.batch_size, &BATCH_SIZE)?;
        check_float("base-lr", self.base_lr, FloatRange::NON_NEGATIVE)?;
        check_float("wd", self.wd, FloatRange::NON_NEGATIVE)?;
        check_int("warmup-epochs", self.warmup_epochs, &WARMUP_EPOCHS)?;
        for (k, v) in [
            ("sim-coeff", self.sim_coeff),
            ("std-coeff", self.std_coeff),
            ("cov-coeff", self.cov_coeff),
        ] {
            check_float(k, v, FloatRange::NON_NEGATIVE)?;
        }
        check_int("log-every", self.log_every, &LOG_EVERY)?;
        check_int("checkpoint-every", self.checkpoint_every, &CHECKPOINT_EVERY)?;
        if let Some(c) = self.clip_grad {
            check_float("clip-grad", c, FloatRange::POSITIVE)?;
        }
        check_float(
            "collective-timeout",
            self.collective_timeout,
            COLLECTIVE_TIMEOUT,
        )
    }

    /// The engine's loop settings (`resume`: what to do with a checkpoint).
    pub fn train_config(&self, resume: ResumeMode) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            base_lr: self.base_lr,
            weight_decay: self.wd,
            optimizer: self.optimizer,
            warmup_epochs: self.warmup_epochs,
            clip_grad: self.clip_grad,
            log_every: self.log_every,
            checkpoint_every_steps: self.checkpoint_every,
            seed: self.seed,
            quiet: self.quiet,
            resume,
            ..TrainConfig::default()
        }
    }

    /// The VICReg loss coefficients.
    pub fn vicreg(&self) -> VicRegConfig {
        VicRegConfig {
            sim_coeff: self.sim_coeff,
            std_coeff: self.std_coeff,
            cov_coeff: self.cov_coeff,
            ..VicRegConfig::default()
        }
    }
}

/// [`RunSettings`] as flags: every key of the section as `--key`, unset
/// flags leaving the config file's (or the default) value; plus `--resume`.
/// Add it to an app's command with `#[command(flatten)]` and apply it with
/// [`overlay`](super::overlay).
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunFlags {
    /// Run directory.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp_dir: Option<PathBuf>,
    /// Epochs. Range 1..=100000.
    #[arg(long, value_parser = crate::limits::int::<usize>(EPOCHS))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Global batch size. Range 1..=1048576.
    #[arg(long, value_parser = crate::limits::int::<usize>(BATCH_SIZE))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Base learning rate (peak: base-lr * batch-size / 256). Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_lr: Option<f64>,
    /// Weight decay. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wd: Option<f64>,
    /// lars, sgd or adamw.
    #[arg(long, value_parser = |s: &str| s.parse::<OptimizerKind>().map_err(|e| e.to_string()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    /// Warmup epochs. Range 0..=100000.
    #[arg(long, value_parser = crate::limits::int::<usize>(WARMUP_EPOCHS))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<usize>,
    /// Invariance coefficient. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_coeff: Option<f64>,
    /// Variance coefficient. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_coeff: Option<f64>,
    /// Covariance coefficient. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cov_coeff: Option<f64>,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A metrics record every this many steps. Range 1..=1000000000.
    #[arg(long, value_parser = crate::limits::int::<usize>(LOG_EVERY))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_every: Option<usize>,
    /// Also checkpoint every this many steps (0: epoch ends only). Range 0..=1000000000.
    #[arg(long, value_parser = crate::limits::int::<usize>(CHECKPOINT_EVERY))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Clip the global gradient norm. Finite, > 0.
    #[arg(long, value_parser = crate::limits::finite_positive)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad: Option<f64>,
    /// No progress bars.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet: Option<bool>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Synchronized BatchNorm over all processes (true|false; default: true when several).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_bn: Option<bool>,
    /// Seconds a collective may take before the MPI job is aborted. In (0, 604800].
    #[arg(long, value_parser = |s: &str| COLLECTIVE_TIMEOUT.parse(s))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collective_timeout: Option<f64>,
}

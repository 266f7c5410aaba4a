//! The keys of every pretraining run's schedule and bookkeeping, as a config
//! section ([`TrainSettings`], flattened into an app's flat config or under
//! `[run]`) and, with the `cli` feature, as flags ([`TrainFlags`]) with the
//! same kebab-case names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::{ResumeMode, TrainConfig};
use crate::limits::{
    check_float, check_int, FloatRange, BATCH_SIZE, CHECKPOINT_EVERY, COLLECTIVE_TIMEOUT, EPOCHS,
    LOG_EVERY, WARMUP_EPOCHS,
};
use crate::optim::OptimizerKind;
use crate::Result;

/// Schedule, optimizer, seed, logging, checkpoints, device and multi-process
/// keys (the official `main_vicreg.py` names, kebab-case). No
/// `deny_unknown_fields` here: it is meant to be `#[serde(flatten)]`ed into
/// a struct that has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TrainSettings {
    /// Run directory (checkpoint, metrics, plots, encoders).
    pub exp_dir: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Global batch size (pairs per optimizer step over all processes).
    pub batch_size: usize,
    /// Weight decay.
    pub wd: f64,
    /// lars, sgd or adamw.
    pub optimizer: OptimizerKind,
    /// Warmup epochs (linear from 0, then cosine).
    pub warmup_epochs: usize,
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
    /// Synchronized BatchNorm over the processes of an `mpirun` job (unset:
    /// on when there are several, as the official code).
    pub sync_bn: Option<bool>,
    /// Seconds a collective may take before an `mpirun` job is aborted.
    pub collective_timeout: f64,
}

impl Default for TrainSettings {
    /// The official optimizer (LARS, wd 1e-6, 10 warmup epochs) at a laptop's
    /// epochs and batch.
    fn default() -> Self {
        Self {
            exp_dir: PathBuf::from("runs/run"),
            epochs: 100,
            batch_size: 256,
            wd: 1e-6,
            optimizer: OptimizerKind::Lars,
            warmup_epochs: 10,
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

impl TrainSettings {
    /// A short demo run on top of `self` (an app's defaults): into `exp_dir`,
    /// `epochs` epochs of `batch_size` pairs with `optimizer`, one warmup epoch
    /// when there are two or more, seeded, a log line every 5 steps.
    pub fn demo(
        self,
        exp_dir: PathBuf,
        (epochs, batch_size): (usize, usize),
        optimizer: OptimizerKind,
        seed: u64,
    ) -> Self {
        Self {
            exp_dir,
            epochs,
            batch_size,
            optimizer,
            warmup_epochs: 1.min(epochs.saturating_sub(1)),
            seed,
            log_every: 5,
            ..self
        }
    }

    /// Checks every key's range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        check_int("epochs", self.epochs, &EPOCHS)?;
        check_int("batch-size", self.batch_size, &BATCH_SIZE)?;
        check_float("wd", self.wd, FloatRange::NON_NEGATIVE)?;
        check_int("warmup-epochs", self.warmup_epochs, &WARMUP_EPOCHS)?;
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

    /// The engine's loop settings: `base_lr` is the schedule's base (the
    /// engine scales it by `batch-size / 256`), `resume` what to do with a
    /// checkpoint found in the run directory. Online probe, accumulation and
    /// the rest keep the engine's defaults (set them on the result).
    pub fn train_config(&self, base_lr: f64, resume: ResumeMode) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            base_lr,
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
}

/// [`TrainSettings`] as flags: every key as `--key`, an unset flag leaving the
/// config file's (or the default) value; plus `--config` and `--resume`,
/// which are not keys. Add it to a command with `#[command(flatten)]` and
/// `#[serde(flatten)]`, and apply it with [`overlay`](super::overlay).
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TrainFlags {
    /// TOML file with the keys of these flags (e.g. a previous run's config.toml); flags override it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Require resuming from the checkpoint in --exp-dir (a run dir holding one is resumed anyway).
    #[arg(long)]
    #[serde(skip)]
    pub resume: bool,
    /// Run directory.
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Epochs. Range 1..=100000.
    #[arg(long, value_parser = crate::limits::int::<usize>(EPOCHS))]
    pub epochs: Option<usize>,
    /// Global batch size (pairs per optimizer step). Range 1..=1048576.
    #[arg(long, value_parser = crate::limits::int::<usize>(BATCH_SIZE))]
    pub batch_size: Option<usize>,
    /// Weight decay. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    pub wd: Option<f64>,
    /// lars, sgd or adamw.
    #[arg(long, value_parser = |s: &str| s.parse::<OptimizerKind>().map_err(|e| e.to_string()))]
    pub optimizer: Option<OptimizerKind>,
    /// Warmup epochs (linear from 0, then cosine). Range 0..=100000.
    #[arg(long, value_parser = crate::limits::int::<usize>(WARMUP_EPOCHS))]
    pub warmup_epochs: Option<usize>,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// A metrics record every this many steps. Range 1..=1000000000.
    #[arg(long, value_parser = crate::limits::int::<usize>(LOG_EVERY))]
    pub log_every: Option<usize>,
    /// Also checkpoint every this many steps (0: epoch ends only). Range 0..=1000000000.
    #[arg(long, value_parser = crate::limits::int::<usize>(CHECKPOINT_EVERY))]
    pub checkpoint_every: Option<usize>,
    /// Clip the global gradient norm (unset: no clipping). Finite, > 0.
    #[arg(long, value_parser = crate::limits::finite_positive)]
    pub clip_grad: Option<f64>,
    /// No progress bars (`--quiet` alone means true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub quiet: Option<bool>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Synchronized BatchNorm over all processes (true|false; default: true when several).
    #[arg(long)]
    pub sync_bn: Option<bool>,
    /// Seconds a collective may take before the MPI job is aborted (default 600). In (0, 604800].
    #[arg(long, value_parser = |s: &str| COLLECTIVE_TIMEOUT.parse(s))]
    pub collective_timeout: Option<f64>,
}

#[cfg(feature = "cli")]
impl TrainFlags {
    /// `--resume` as the engine's mode: required, or automatic (resume when
    /// the run directory holds a checkpoint).
    pub fn resume_mode(&self) -> ResumeMode {
        if self.resume {
            ResumeMode::Require
        } else {
            ResumeMode::Auto
        }
    }
}

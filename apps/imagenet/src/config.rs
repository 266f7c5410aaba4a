//! The pretraining configuration: one flat table whose keys are the command
//! line flags (a TOML file given with `--config` uses the same keys; flags override it).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vicreg_core::engine::{OnlineProbeConfig, ResumeMode, TrainConfig};
use vicreg_core::loss::{EmbeddingNorm, LossKind, VarianceReduction, VicRegConfig};
use vicreg_core::optim::{paper_small_batch_base_lr, OptimizerKind};

/// Which two-view augmentation to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AugPreset {
    /// `official` for crops of 96 px and more, `small` below.
    #[default]
    Auto,
    /// The official VICReg pipeline (asymmetric blur / solarize).
    Official,
    /// The paper's symmetric variant (blur 0.5, solarize 0.1 on both views).
    Symmetric,
    /// Official probabilities with crop scale (0.2, 1) and blur scaled to small images.
    Small,
}

/// Everything a pretraining run needs; written to `<exp-dir>/config.toml`
/// fully resolved, so `imagenet pretrain --config <exp-dir>/config.toml` repeats it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PretrainConfig {
    /// ImageFolder root (with `train/`), or a folder of IDX files; none: the built-in synthetic set.
    pub data_dir: Option<PathBuf>,
    /// Run directory.
    pub exp_dir: PathBuf,
    /// Backbone: resnet18/34/50/101/152/200, optionally `xN` (e.g. resnet50x2).
    pub arch: String,
    /// Zero-initialise the last BN of every residual branch (official: true).
    pub zero_init_residual: bool,
    /// Expander widths, e.g. 8192-8192-8192.
    pub mlp: String,
    /// Epochs.
    pub epochs: usize,
    /// Global batch size (pairs per optimizer step).
    pub batch_size: usize,
    /// Base learning rate (peak = base-lr * batch-size / 256); unset: the paper's small-batch values.
    pub base_lr: Option<f64>,
    /// Weight decay.
    pub wd: f64,
    /// Invariance coefficient.
    pub sim_coeff: f64,
    /// Variance coefficient.
    pub std_coeff: f64,
    /// Covariance coefficient.
    pub cov_coeff: f64,
    /// mean (official code) or sum (paper) of the two variance terms.
    pub variance_reduction: VarianceReduction,
    /// Embedding normalisation before the loss: none, standardize, l2.
    pub normalization: EmbeddingNorm,
    /// lars, sgd or adamw.
    pub optimizer: OptimizerKind,
    /// Warmup epochs of the schedule.
    pub warmup_epochs: usize,
    /// Loader worker threads.
    pub num_workers: usize,
    /// Seed of initialisation, data order and augmentation.
    pub seed: u64,
    /// Crop size in pixels; unset: 224 for image folders, 32 for IDX and the built-in set.
    pub image_size: Option<u32>,
    /// Augmentation preset.
    pub augment: AugPreset,
    /// Log a metrics line every this many steps.
    pub log_every: usize,
    /// Also checkpoint every this many steps (0: only at epoch ends).
    pub checkpoint_every: usize,
    /// Clip the global gradient norm (unset: no clipping).
    pub clip_grad: Option<f64>,
    /// Micro-batches accumulated per optimizer step.
    pub accumulate: usize,
    /// Train a linear classifier on detached representations alongside (needs labels).
    pub online_probe: bool,
    /// Fail on the first bad image instead of skipping it.
    pub strict: bool,
    /// No progress bars.
    pub quiet: bool,
    /// cpu or cuda:N.
    pub device: String,
    /// Joint-embedding loss: vicreg, barlow-twins, simclr, byol or simsiam (see `variants`).
    pub loss: LossKind,
    /// Barlow Twins: weight of the off-diagonal term (official 0.0051).
    pub barlow_lambda: f64,
    /// SimCLR: softmax temperature.
    pub temperature: f64,
    /// byol / simsiam: predictor MLP on the online branch.
    pub predictor: bool,
    /// byol / simsiam: predictor hidden width (unset: the embedding dimension).
    pub predictor_hidden: Option<usize>,
    /// byol: EMA momentum at step 0 (cosine schedule to 1).
    pub momentum_base: f64,
    /// byol / simsiam: stop-gradient on the target branch (false: the collapsing control).
    pub stop_gradient: bool,
    /// byol / simsiam: add VICReg's variance and covariance terms (paper D.8).
    pub vicreg_terms: bool,
    /// vicreg / barlow-twins / simclr: one set of weights for both branches (false: paper Table 5).
    pub share_weights: bool,
    /// BatchNorm in the expander's hidden layers (paper D.5).
    pub expander_bn: bool,
    /// Synchronized BatchNorm: statistics over every process's batch (unset:
    /// on when there are several processes, as the official code).
    pub sync_bn: Option<bool>,
    /// Seconds any collective (MPI) may take before the job is aborted.
    pub collective_timeout: f64,
}

impl Default for PretrainConfig {
    /// The official ImageNet recipe (ResNet-50, 8192-8192-8192, 100 epochs, batch 2048, LARS).
    fn default() -> Self {
        Self {
            data_dir: None,
            exp_dir: PathBuf::from("runs/imagenet"),
            arch: "resnet50".into(),
            zero_init_residual: true,
            mlp: "8192-8192-8192".into(),
            epochs: 100,
            batch_size: 2048,
            base_lr: None,
            wd: 1e-6,
            sim_coeff: 25.0,
            std_coeff: 25.0,
            cov_coeff: 1.0,
            variance_reduction: VarianceReduction::Mean,
            normalization: EmbeddingNorm::None,
            optimizer: OptimizerKind::Lars,
            warmup_epochs: 10,
            num_workers: 2,
            seed: 0,
            image_size: None,
            augment: AugPreset::Auto,
            log_every: 10,
            checkpoint_every: 0,
            clip_grad: None,
            accumulate: 1,
            online_probe: false,
            strict: false,
            quiet: false,
            device: "cpu".into(),
            loss: LossKind::Vicreg,
            barlow_lambda: 0.0051,
            temperature: 0.1,
            predictor: true,
            predictor_hidden: None,
            momentum_base: 0.996,
            stop_gradient: true,
            vicreg_terms: false,
            share_weights: true,
            expander_bn: true,
            sync_bn: None,
            collective_timeout: 600.0,
        }
    }
}

/// Named starting points of `pretrain --preset` (the config file and flags apply on top).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The official ImageNet recipe ([`PretrainConfig::default`]).
    Official,
    /// A few thousand small images in about 15 minutes on 2 CPU cores
    /// ([`PretrainConfig::laptop`]).
    Laptop,
}

impl Preset {
    /// The configuration this preset starts from.
    pub fn config(self) -> PretrainConfig {
        match self {
            Preset::Official => PretrainConfig::default(),
            Preset::Laptop => PretrainConfig::laptop(),
        }
    }
}

impl PretrainConfig {
    /// The laptop recipe: ResNet-18 on 32 px crops, expander 512-512-512,
    /// batch 64, AdamW base lr 8e-3 (peak 2e-3) with 1 warm-up epoch, weight
    /// decay 1e-4, 25 epochs, the small-image augmentation. Chosen on the
    /// emoji check set (`scripts/checksets/`) and checked on Fashion-MNIST
    /// images (apps/imagenet/README.md): about 12 minutes for 3,000 images on 2
    /// cores. The expander's output is kept within 8x the batch, so the
    /// covariance term's floor (`D / (N - 1) - 1` times `std^4`) stays small.
    pub fn laptop() -> Self {
        Self {
            arch: "resnet18".into(),
            mlp: "512-512-512".into(),
            epochs: 25,
            batch_size: 64,
            base_lr: Some(8e-3),
            wd: 1e-4,
            optimizer: OptimizerKind::Adamw,
            warmup_epochs: 1,
            image_size: Some(32),
            augment: AugPreset::Small,
            exp_dir: PathBuf::from("runs/imagenet-laptop"),
            ..Self::default()
        }
    }

    /// Reads a TOML file whose missing keys take `base`'s values.
    pub fn from_toml_file_over(path: &std::path::Path, base: Self) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let over: toml::Table = text
            .parse()
            .with_context(|| format!("{}: invalid pretraining config", path.display()))?;
        let mut merged =
            toml::Table::try_from(&base).with_context(|| "serializing the preset".to_string())?;
        for (k, v) in over {
            merged.insert(k, v);
        }
        let cfg: Self = merged
            .try_into()
            .with_context(|| format!("{}: invalid pretraining config", path.display()))?;
        cfg.validate_ranges()
            .with_context(|| format!("{}: invalid pretraining config", path.display()))?;
        Ok(cfg)
    }

    /// Reads a TOML file with the keys of this struct.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let cfg: Self = toml::from_str(&text)
            .with_context(|| format!("{}: invalid pretraining config", path.display()))?;
        cfg.validate_ranges()
            .with_context(|| format!("{}: invalid pretraining config", path.display()))?;
        Ok(cfg)
    }

    /// Checks every numeric key against the bounds of its flag (see [`limits`]);
    /// the error names the key.
    pub fn validate_ranges(&self) -> Result<()> {
        use limits::*;
        check_int("epochs", self.epochs, &EPOCHS)?;
        check_int("batch-size", self.batch_size, &BATCH_SIZE)?;
        if let Some(v) = self.base_lr {
            check_float("base-lr", v, FloatRange::NON_NEGATIVE)?;
        }
        check_float("wd", self.wd, FloatRange::NON_NEGATIVE)?;
        check_float("sim-coeff", self.sim_coeff, FloatRange::NON_NEGATIVE)?;
        check_float("std-coeff", self.std_coeff, FloatRange::NON_NEGATIVE)?;
        check_float("cov-coeff", self.cov_coeff, FloatRange::NON_NEGATIVE)?;
        check_int("warmup-epochs", self.warmup_epochs, &WARMUP_EPOCHS)?;
        check_int("num-workers", self.num_workers, &NUM_WORKERS)?;
        if let Some(v) = self.image_size {
            check_int("image-size", v, &IMAGE_SIZE)?;
        }
        check_int("log-every", self.log_every, &LOG_EVERY)?;
        check_int("checkpoint-every", self.checkpoint_every, &CHECKPOINT_EVERY)?;
        if let Some(v) = self.clip_grad {
            check_float("clip-grad", v, FloatRange::POSITIVE)?;
        }
        check_int("accumulate", self.accumulate, &ACCUMULATE)?;
        check_float(
            "barlow-lambda",
            self.barlow_lambda,
            FloatRange::NON_NEGATIVE,
        )?;
        check_float("temperature", self.temperature, FloatRange::POSITIVE)?;
        if let Some(v) = self.predictor_hidden {
            check_int("predictor-hidden", v, &WIDTH)?;
        }
        check_float("momentum-base", self.momentum_base, FloatRange::UNIT)?;
        check_float(
            "collective-timeout",
            self.collective_timeout,
            COLLECTIVE_TIMEOUT,
        )?;
        Ok(())
    }

    /// The base learning rate actually used: the given one, or the paper's
    /// value for this batch size (0.2 at 2048; 0.8/0.5/0.4 at 128/256/512).
    pub fn resolved_base_lr(&self) -> f64 {
        self.base_lr
            .unwrap_or_else(|| paper_small_batch_base_lr(self.batch_size))
    }

    /// Fills every derived value (so the written config repeats the run exactly).
    pub fn resolve(&mut self, default_image_size: u32) {
        self.base_lr = Some(self.resolved_base_lr());
        if self.image_size.is_none() {
            self.image_size = Some(default_image_size);
        }
    }

    /// The loss configuration.
    pub fn loss(&self) -> VicRegConfig {
        VicRegConfig {
            sim_coeff: self.sim_coeff,
            std_coeff: self.std_coeff,
            cov_coeff: self.cov_coeff,
            variance_reduction: self.variance_reduction,
            normalization: self.normalization,
            ..VicRegConfig::default()
        }
    }

    /// The engine configuration.
    pub fn train(&self, resume: bool, num_classes: usize) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            base_lr: self.resolved_base_lr(),
            weight_decay: self.wd,
            optimizer: self.optimizer,
            warmup_epochs: self.warmup_epochs,
            clip_grad: self.clip_grad,
            accumulate: self.accumulate,
            log_every: self.log_every,
            checkpoint_every_steps: self.checkpoint_every,
            seed: self.seed,
            quiet: self.quiet,
            resume: if resume {
                ResumeMode::Require
            } else {
                ResumeMode::Auto
            },
            online_probe: self.online_probe.then(|| OnlineProbeConfig {
                num_classes,
                ..OnlineProbeConfig::default()
            }),
            ..TrainConfig::default()
        }
    }

    /// Checks values that the libraries would only reject later.
    pub fn validate(&self) -> Result<()> {
        self.validate_ranges()?;
        if self.batch_size == 0 || self.epochs == 0 {
            bail!("batch-size and epochs must be at least 1");
        }
        if self.accumulate == 0 || !self.batch_size.is_multiple_of(self.accumulate) {
            bail!(
                "batch-size ({}) must be a multiple of accumulate ({})",
                self.batch_size,
                self.accumulate
            );
        }
        vicreg_core::model::parse_mlp_spec(&self.mlp)?;
        encoders::resnet::ResNetConfig::from_name(&self.arch)?;
        crate::variants::validate(self)?;
        Ok(())
    }
}

/// Parses `cpu` or `cuda:N` (`cuda` = `cuda:0`).
pub fn parse_device(s: &str) -> Result<candle_core::Device> {
    Ok(vicreg_core::parse_device(s)?)
}

/// Allowed values of the numeric flags and config keys: the command line
/// parsers and [`PretrainConfig::validate`] use the same bounds.
pub mod limits {
    use std::ops::RangeInclusive;

    pub use vicreg_core::limits::*;

    /// Crop / image side in pixels.
    pub const IMAGE_SIZE: RangeInclusive<u64> = 1..=4096;
    /// Micro-batches per optimizer step.
    pub const ACCUMULATE: RangeInclusive<u64> = 1..=4096;
    /// Images per class of the generated set.
    pub const PER_CLASS: RangeInclusive<u64> = 1..=100_000;
    /// Neighbour counts of k-NN.
    pub const KNN_K: RangeInclusive<u64> = 1..=100_000;
    /// Percentage of labelled images: `(0, 100]`.
    pub const PERCENT: FloatRange = FloatRange::above(0.0, 100.0);
}

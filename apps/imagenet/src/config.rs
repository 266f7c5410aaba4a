//! The pretraining configuration: one flat table whose keys are the command
//! line flags (a TOML file given with `--config` uses the same keys; flags override it).

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use vicreg_core::engine::{OnlineProbeConfig, ResumeMode, TrainConfig};
use vicreg_core::loss::{EmbeddingNorm, LossKind, VarianceReduction, VicRegConfig};
use vicreg_core::optim::{paper_small_batch_base_lr, OptimizerKind};
use vicreg_core::recipe::{
    AppConfig, CoeffSettings, DataSettings, LaptopRecipe, LossSettings, TrainSettings,
    VariantSettings,
};
use vicreg_core::BoxError;

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
/// One flat table: the recipe layer's sections are flattened into it, so the
/// keys are the flags' names (`epochs = 10`, `base-lr = 0.3`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PretrainConfig {
    /// `data-dir` (ImageFolder root with `train/`, or a folder of IDX files;
    /// none: the built-in synthetic set), `num-workers`, `strict`.
    #[serde(flatten)]
    pub data: DataSettings,
    /// Schedule, optimizer, seed, logging, checkpoints, device, processes.
    #[serde(flatten)]
    pub train: TrainSettings,
    /// `loss` and the other losses' settings.
    #[serde(flatten)]
    pub criterion: LossSettings,
    /// `sim-coeff`, `std-coeff`, `cov-coeff`.
    #[serde(flatten)]
    pub coeffs: CoeffSettings,
    /// BYOL / SimSiam settings.
    #[serde(flatten)]
    pub variant: VariantSettings,
    /// Backbone: resnet18/34/50/101/152/200, optionally `xN` (e.g.
    /// resnet50x2), or convnext_atto/femto/pico/nano/tiny/small/base/large/xlarge.
    pub arch: String,
    /// Zero-initialise the last BN of every residual branch (official: true).
    pub zero_init_residual: bool,
    /// Expander widths, e.g. 8192-8192-8192.
    pub mlp: String,
    /// Base learning rate (peak = base-lr * batch-size / 256); unset: the paper's small-batch values.
    pub base_lr: Option<f64>,
    /// mean (official code) or sum (paper) of the two variance terms.
    pub variance_reduction: VarianceReduction,
    /// Embedding normalisation before the loss: none, standardize, l2.
    pub normalization: EmbeddingNorm,
    /// Crop size in pixels; unset: 224 for image folders, 32 for IDX and the built-in set.
    pub image_size: Option<u32>,
    /// Augmentation preset.
    pub augment: AugPreset,
    /// Micro-batches accumulated per optimizer step.
    pub accumulate: usize,
    /// Train a linear classifier on detached representations alongside (needs labels).
    pub online_probe: bool,
    /// vicreg / barlow-twins / simclr: one set of weights for both branches (false: paper Table 5).
    pub share_weights: bool,
    /// BatchNorm in the expander's hidden layers (paper D.5).
    pub expander_bn: bool,
    /// Multi-crop views, e.g. `2x224+6x96` (see `datasets::augment::multicrop`);
    /// unset: two views, or for `loss = "vicregl"` [`PretrainConfig::multi_crop_spec`].
    pub multi_crop: Option<String>,
    /// VICRegL: weight of the global criterion; the local one gets `1 - alpha`.
    pub alpha: f64,
    /// VICRegL: widths of the local expander on feature-map vectors.
    pub maps_mlp: String,
    /// VICRegL: location matches kept per direction, `[from the global view, from the other]`.
    pub num_matches: [usize; 2],
    /// VICRegL: feature-space matching over every cell (false: `num-matches`).
    pub l2_all_matches: bool,
    /// VICRegL: mirror the location grid of flipped crops (official: false).
    pub flip_grid: bool,
    /// ConvNeXt: stochastic-depth rate (VICRegL: 0.1).
    pub drop_path_rate: f64,
    /// ConvNeXt: layer-scale init value, 0 = none (VICRegL: 0).
    pub layer_scale: f64,
}

impl Default for PretrainConfig {
    /// The official ImageNet recipe (ResNet-50, 8192-8192-8192, 100 epochs, batch 2048, LARS).
    fn default() -> Self {
        Self {
            data: DataSettings {
                num_workers: 2,
                ..DataSettings::default()
            },
            train: TrainSettings {
                exp_dir: PathBuf::from("runs/imagenet"),
                epochs: 100,
                batch_size: 2048,
                ..TrainSettings::default()
            },
            criterion: LossSettings::default(),
            coeffs: CoeffSettings::default(),
            variant: VariantSettings {
                momentum_base: 0.996,
                ..VariantSettings::default()
            },
            arch: "resnet50".into(),
            zero_init_residual: true,
            mlp: "8192-8192-8192".into(),
            base_lr: None,
            variance_reduction: VarianceReduction::Mean,
            normalization: EmbeddingNorm::None,
            image_size: None,
            augment: AugPreset::Auto,
            accumulate: 1,
            online_probe: false,
            share_weights: true,
            expander_bn: true,
            multi_crop: None,
            alpha: 0.75,
            maps_mlp: "512-512-512".into(),
            num_matches: [20, 4],
            l2_all_matches: true,
            flip_grid: false,
            drop_path_rate: 0.1,
            layer_scale: 0.0,
        }
    }
}

impl AppConfig for PretrainConfig {
    const APP: &'static str = "imagenet";

    /// Checks every numeric key against the bounds of its flag (see [`limits`]);
    /// the error names the key.
    fn validate_ranges(&self) -> std::result::Result<(), BoxError> {
        use limits::*;
        self.data.validate()?;
        self.train.validate()?;
        self.criterion.validate()?;
        self.coeffs.validate()?;
        if let Some(v) = self.base_lr {
            check_float("base-lr", v, FloatRange::NON_NEGATIVE)?;
        }
        if let Some(v) = self.image_size {
            check_int("image-size", v, &IMAGE_SIZE)?;
        }
        check_int("accumulate", self.accumulate, &ACCUMULATE)?;
        check_float("alpha", self.alpha, FloatRange::UNIT)?;
        check_float("drop-path-rate", self.drop_path_rate, DROP_PATH)?;
        check_float("layer-scale", self.layer_scale, FloatRange::NON_NEGATIVE)?;
        for m in self.num_matches {
            check_int("num-matches", m, &NUM_MATCHES)?;
        }
        self.variant
            .validate(self.criterion.loss, self.coeffs.sim_coeff)?;
        Ok(())
    }

    fn resolve_and_validate(&mut self) -> std::result::Result<(), BoxError> {
        self.resolve(self.image_size.unwrap_or(224));
        Ok(self.validate()?)
    }
}

impl LaptopRecipe for PretrainConfig {
    /// The laptop recipe: ResNet-18 on 32 px crops, expander 512-512-512,
    /// batch 64, AdamW base lr 8e-3 (peak 2e-3) with 1 warm-up epoch, weight
    /// decay 1e-4, 25 epochs, the small-image augmentation. Chosen on the
    /// emoji check set (`scripts/checksets/`) and checked on Fashion-MNIST
    /// images (apps/imagenet/README.md): about 12 minutes for 3,000 images on 2
    /// cores. The expander's output is kept within 8x the batch, so the
    /// covariance term's floor (`D / (N - 1) - 1` times `std^4`) stays small.
    fn laptop() -> Self {
        let official = Self::default();
        Self {
            arch: "resnet18".into(),
            mlp: "512-512-512".into(),
            train: TrainSettings {
                epochs: 25,
                batch_size: 64,
                wd: 1e-4,
                optimizer: OptimizerKind::Adamw,
                warmup_epochs: 1,
                exp_dir: PathBuf::from("runs/imagenet-laptop"),
                ..official.train
            },
            base_lr: Some(8e-3),
            image_size: Some(32),
            augment: AugPreset::Small,
            ..official
        }
    }
}

impl PretrainConfig {
    /// The base learning rate actually used: the given one, or the paper's
    /// value for this batch size (0.2 at 2048; 0.8/0.5/0.4 at 128/256/512).
    pub fn resolved_base_lr(&self) -> f64 {
        self.base_lr
            .unwrap_or_else(|| paper_small_batch_base_lr(self.train.batch_size))
    }

    /// Fills every derived value (so the written config repeats the run exactly).
    pub fn resolve(&mut self, default_image_size: u32) {
        self.base_lr = Some(self.resolved_base_lr());
        if self.image_size.is_none() {
            self.image_size = Some(default_image_size);
        }
    }

    /// True when the run trains on multi-crop views (`multi-crop` set, or `loss = "vicregl"`).
    pub fn is_multi_crop(&self) -> bool {
        self.multi_crop.is_some() || self.criterion.loss.needs_multi_crop_model()
    }

    /// The multi-crop views: `multi-crop`, else for vicregl VICRegL's 2 global
    /// crops of `image-size` and 6 local crops of `96 / 224` of it (at least 32
    /// pixels: one cell of the final feature map), i.e. `2x224+6x96` at 224.
    pub fn multi_crop_spec(&self) -> Result<datasets::augment::MultiCropConfig> {
        let spec = match &self.multi_crop {
            Some(s) => s.clone(),
            None => {
                let g = self.image_size.unwrap_or(224);
                let local = ((g as f64 * 96.0 / 224.0).round() as u32).max(32).min(g);
                format!("2x{g}+6x{local}")
            }
        };
        Ok(datasets::augment::MultiCropConfig::parse(&spec)?)
    }

    /// The VICReg loss configuration.
    pub fn loss(&self) -> VicRegConfig {
        VicRegConfig {
            variance_reduction: self.variance_reduction,
            normalization: self.normalization,
            ..self.coeffs.vicreg()
        }
    }

    /// The engine configuration (`resume`: what to do with a checkpoint;
    /// `num_classes`: of the online probe, if on).
    pub fn train(&self, resume: ResumeMode, num_classes: usize) -> TrainConfig {
        TrainConfig {
            accumulate: self.accumulate,
            online_probe: self.online_probe.then(|| OnlineProbeConfig {
                num_classes,
                ..OnlineProbeConfig::default()
            }),
            ..self.train.train_config(self.resolved_base_lr(), resume)
        }
    }

    /// Checks values that the libraries would only reject later.
    pub fn validate(&self) -> Result<()> {
        self.validate_ranges().map_err(anyhow::Error::from_boxed)?;
        if !self.train.batch_size.is_multiple_of(self.accumulate) {
            bail!(
                "batch-size ({}) must be a multiple of accumulate ({})",
                self.train.batch_size,
                self.accumulate
            );
        }
        vicreg_core::model::parse_mlp_spec(&self.mlp)?;
        vicreg_core::model::parse_mlp_spec(&self.maps_mlp)?;
        encoders::check_arch(&self.arch)?;
        if self.is_multi_crop() {
            self.multi_crop_spec()?;
        }
        self.check_combinations()?;
        Ok(())
    }
}

impl PretrainConfig {
    /// Checks the combinations of variant options that make no sense (the
    /// recipe layer checks the rest, see [`VariantSettings::validate`]).
    ///
    /// [`VariantSettings::validate`]: vicreg_core::recipe::VariantSettings::validate
    pub fn check_combinations(&self) -> Result<()> {
        if self.is_multi_crop() {
            let loss = self.criterion.loss;
            if !matches!(loss, LossKind::Vicreg | LossKind::Vicregl) {
                bail!("multi-crop views train with --loss vicreg or vicregl, not {loss}");
            }
            if !self.share_weights || !self.expander_bn {
                bail!(
                    "multi-crop / vicregl runs use one shared backbone with the official expanders \
                     (share-weights = true, expander-bn = true)"
                );
            }
            if self.normalization != EmbeddingNorm::None {
                bail!("normalization applies to the two-view VICReg loss, not to multi-crop / vicregl");
            }
        }
        if self.criterion.loss.needs_asymmetric_model() && !self.share_weights {
            bail!(
                "share-weights = false is for the symmetric losses (vicreg, barlow-twins, simclr); {} uses one online network (and a momentum copy for byol)",
                self.criterion.loss
            );
        }
        Ok(self
            .variant
            .validate(self.criterion.loss, self.coeffs.sim_coeff)?)
    }
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
    /// ConvNeXt stochastic-depth rate: `[0, 0.99]`.
    pub const DROP_PATH: FloatRange = FloatRange::closed(0.0, 0.99);
    /// VICRegL location matches per direction.
    pub const NUM_MATCHES: RangeInclusive<u64> = 1..=4096;
    /// Neighbour counts of k-NN.
    pub const KNN_K: RangeInclusive<u64> = 1..=100_000;
    /// Percentage of labelled images: `(0, 100]`.
    pub const PERCENT: FloatRange = FloatRange::above(0.0, 100.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory's config.toml written by the flat config of before the
    /// recipe layer loads with the same values and is written back key for key.
    #[test]
    fn a_config_written_by_the_previous_layout_loads_and_round_trips() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config-written-2026-12-06.toml");
        let cfg = PretrainConfig::from_toml_file(&path).unwrap();
        assert_eq!(cfg.train.epochs, 25);
        assert_eq!(cfg.train.optimizer, OptimizerKind::Adamw);
        assert_eq!(cfg.base_lr, Some(0.008));
        assert_eq!(cfg.train.sync_bn, Some(false));
        assert_eq!(cfg.variant.momentum_base, 0.996);
        assert_eq!(cfg.data.data_dir, Some(PathBuf::from("data/fashion")));
        let old: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let new = toml::Table::try_from(&cfg).unwrap();
        for (k, v) in &old {
            assert_eq!(new.get(k), Some(v), "key {k}");
        }
        // keys added since (multi-crop / VICRegL / ConvNeXt), at their defaults
        let added: Vec<&str> = new
            .keys()
            .filter(|k| !old.contains_key(*k))
            .map(String::as_str)
            .collect();
        assert_eq!(
            added,
            [
                "alpha",
                "drop-path-rate",
                "flip-grid",
                "l2-all-matches",
                "layer-scale",
                "maps-mlp",
                "num-matches"
            ]
        );
    }
}

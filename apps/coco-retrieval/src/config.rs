//! The pretraining configuration: one flat table whose keys are the command
//! line flags (a TOML file given with `--config` uses the same keys; flags override it).

use std::path::PathBuf;

use anyhow::{bail, Result};
use datasets::coco::Part;
use serde::{Deserialize, Serialize};
use vicreg_core::engine::{ResumeMode, TrainConfig};
use vicreg_core::loss::{EmbeddingNorm, LossConfig, VarianceReduction, VicRegConfig};
use vicreg_core::optim::{paper_small_batch_base_lr, OptimizerKind};
use vicreg_core::recipe::{AppConfig, DataSettings, LaptopRecipe, LossSettings, TrainSettings};
use vicreg_core::BoxError;

use encoders::text::TextEncoderChoice as TextChoice;

/// The image view the image branch sees during pretraining.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageAugment {
    /// Crops covering 80-100 % of the image, mild brightness/contrast jitter, light
    /// blur; no flip, no colour changes (keeps "left", "red"... of a caption true).
    #[default]
    CaptionSafe,
    /// The first view of the official VICReg augmentation (flip, colour jitter, grayscale).
    Official,
}

/// Everything a pretraining run needs; written to `<exp-dir>/config.toml`
/// fully resolved, so `coco-retrieval pretrain --config <exp-dir>/config.toml` repeats it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PretrainConfig {
    /// `data-dir` (COCO root: `annotations/captions_{train,val}2017.json`,
    /// `train2017/`, `val2017/`), `num-workers`, `strict`.
    #[serde(flatten)]
    pub data: DataSettings,
    /// Schedule, optimizer, seed, logging, checkpoints, device, processes.
    #[serde(flatten)]
    pub train: TrainSettings,
    /// `loss`: vicreg, barlow-twins or simclr (byol / simsiam need weight
    /// sharing or a predictor on one branch and are refused for these
    /// non-shared image / text branches), and the other losses' settings.
    #[serde(flatten)]
    pub criterion: LossSettings,
    /// Karpathy split file (`dataset_coco.json`); unset: train2017 for training, val2017 as the test set.
    pub karpathy_split: Option<PathBuf>,
    /// Folder of the training images of `train-captions` (instead of `data-dir`'s layout).
    pub train_images: Option<PathBuf>,
    /// COCO-format captions JSON of the training images (`images[]` + `annotations[]`).
    pub train_captions: Option<PathBuf>,
    /// Folder of the test images of `val-captions` (instead of `data-dir`'s layout).
    pub val_images: Option<PathBuf>,
    /// COCO-format captions JSON of the test images.
    pub val_captions: Option<PathBuf>,
    /// Image backbone: resnet18/34/50/101/152/200, optionally `xN`.
    pub image_arch: String,
    /// Zero-initialise the last BN of every residual branch.
    pub zero_init_residual: bool,
    /// Crop size of the image views, pixels.
    pub image_size: u32,
    /// Image augmentation of pretraining.
    pub augment: ImageAugment,
    /// `transformer` (from scratch), `gru` (from scratch, as VSE++) or
    /// `pretrained:<model dir or HF hub id>` (BERT-style checkpoint, e.g. all-MiniLM-L6-v2).
    pub text_encoder: String,
    /// Transformer layers (from-scratch transformer).
    pub text_layers: usize,
    /// Transformer hidden size / GRU state size (from scratch).
    pub text_hidden: usize,
    /// Attention heads (from-scratch transformer).
    pub text_heads: usize,
    /// Word-embedding width of the GRU.
    pub text_embed: usize,
    /// Dropout of the from-scratch transformer.
    pub text_dropout: f64,
    /// Target size of the WordPiece vocabulary trained on the training captions (from scratch).
    pub vocab_size: usize,
    /// Tokens per caption after truncation/padding, special tokens included.
    pub max_len: usize,
    /// Expander widths of both branches, e.g. 8192-8192-8192.
    pub mlp: String,
    /// Expander of the image branch (unset: `mlp`).
    pub mlp_image: Option<String>,
    /// Expander of the text branch (unset: `mlp`).
    pub mlp_text: Option<String>,
    /// Keep the image encoder fixed (eval mode, no gradient); its expander still trains.
    pub freeze_image: bool,
    /// Keep the text encoder fixed (eval mode, no gradient); its expander still trains.
    pub freeze_text: bool,
    /// Base learning rate (peak = base-lr * batch-size / 256); unset: the paper's small-batch values.
    pub base_lr: Option<f64>,
    /// VICReg invariance coefficient.
    pub sim_coeff: f64,
    /// Variance coefficient of the image branch.
    pub std_coeff_image: f64,
    /// Variance coefficient of the text branch.
    pub std_coeff_text: f64,
    /// Covariance coefficient of the image branch.
    pub cov_coeff_image: f64,
    /// Covariance coefficient of the text branch.
    pub cov_coeff_text: f64,
    /// mean (official code) or sum (paper) of the two variance terms.
    pub variance_reduction: VarianceReduction,
    /// Embedding normalisation before the loss: none, standardize, l2.
    pub normalization: EmbeddingNorm,
}

impl Default for PretrainConfig {
    /// ResNet-50 + a 4-layer transformer trained from scratch, 8192-8192-8192
    /// expanders, VICReg coefficients of the official code, LARS, batch 256.
    fn default() -> Self {
        Self {
            data: DataSettings {
                num_workers: 2,
                ..DataSettings::default()
            },
            train: TrainSettings {
                exp_dir: PathBuf::from("runs/coco-retrieval"),
                epochs: 30,
                batch_size: 256,
                warmup_epochs: 2,
                ..TrainSettings::default()
            },
            criterion: LossSettings::default(),
            karpathy_split: None,
            train_images: None,
            train_captions: None,
            val_images: None,
            val_captions: None,
            image_arch: "resnet50".into(),
            zero_init_residual: true,
            image_size: 224,
            augment: ImageAugment::CaptionSafe,
            text_encoder: "transformer".into(),
            text_layers: 4,
            text_hidden: 256,
            text_heads: 4,
            text_embed: 300,
            text_dropout: 0.1,
            vocab_size: 8192,
            max_len: 32,
            mlp: "8192-8192-8192".into(),
            mlp_image: None,
            mlp_text: None,
            freeze_image: false,
            freeze_text: false,
            base_lr: None,
            sim_coeff: 25.0,
            std_coeff_image: 25.0,
            std_coeff_text: 25.0,
            cov_coeff_image: 1.0,
            cov_coeff_text: 1.0,
            variance_reduction: VarianceReduction::Mean,
            normalization: EmbeddingNorm::None,
        }
    }
}

impl LaptopRecipe for PretrainConfig {
    /// The laptop recipe: ResNet-18 on 32 px crops, a 2-layer width-128
    /// transformer trained from scratch on the captions, expanders 1024-1024,
    /// batch 64, AdamW base lr 8e-3 (peak 2e-3) with 1 warm-up epoch, weight
    /// decay 1e-4, 15 epochs. About 8 minutes for 3,000 captioned images on 2
    /// cores; with a local sentence encoder, frozen (`--text-encoder
    /// pretrained:DIR --freeze-text`), about 6 (apps/coco-retrieval/README.md).
    fn laptop() -> Self {
        let paper = Self::default();
        Self {
            train: TrainSettings {
                exp_dir: PathBuf::from("runs/coco-laptop"),
                epochs: 15,
                batch_size: 64,
                warmup_epochs: 1,
                wd: 1e-4,
                optimizer: OptimizerKind::Adamw,
                ..paper.train
            },
            image_arch: "resnet18".into(),
            image_size: 32,
            text_layers: 2,
            text_hidden: 128,
            text_heads: 4,
            mlp: "1024-1024".into(),
            base_lr: Some(8e-3),
            ..paper
        }
    }
}

impl AppConfig for PretrainConfig {
    const APP: &'static str = "coco-retrieval";

    /// Checks every numeric key against the bounds of its flag (see [`limits`]);
    /// the error names the key.
    fn validate_ranges(&self) -> std::result::Result<(), BoxError> {
        use limits::*;
        self.data.validate()?;
        self.train.validate()?;
        self.criterion.validate()?;
        check_int("image-size", self.image_size, &IMAGE_SIZE)?;
        check_int("text-layers", self.text_layers, &TEXT_LAYERS)?;
        check_int("text-hidden", self.text_hidden, &WIDTH)?;
        check_int("text-heads", self.text_heads, &TEXT_HEADS)?;
        check_int("text-embed", self.text_embed, &WIDTH)?;
        check_float("text-dropout", self.text_dropout, FloatRange::UNIT)?;
        check_int("vocab-size", self.vocab_size, &VOCAB_SIZE)?;
        check_int("max-len", self.max_len, &MAX_LEN)?;
        if let Some(v) = self.base_lr {
            check_float("base-lr", v, FloatRange::NON_NEGATIVE)?;
        }
        for (k, v) in [
            ("sim-coeff", self.sim_coeff),
            ("std-coeff-image", self.std_coeff_image),
            ("std-coeff-text", self.std_coeff_text),
            ("cov-coeff-image", self.cov_coeff_image),
            ("cov-coeff-text", self.cov_coeff_text),
        ] {
            check_float(k, v, FloatRange::NON_NEGATIVE)?;
        }
        Ok(())
    }

    fn resolve_and_validate(&mut self) -> std::result::Result<(), BoxError> {
        self.resolve();
        Ok(self.validate()?)
    }
}

impl PretrainConfig {
    /// Opens `part` of the data: the COCO-format captions file and image folder
    /// given for it (`train-captions` + `train-images`, `val-captions` +
    /// `val-images`), else the `data-dir` layout (with `karpathy-split`).
    /// Errors name the file or folder at fault.
    pub fn open_part(&self, part: Part) -> Result<datasets::coco::CocoCaptions> {
        let given = match part {
            Part::Train => (&self.train_images, &self.train_captions),
            Part::Test => (&self.val_images, &self.val_captions),
        };
        Ok(datasets::coco::open_part(
            self.data.data_dir.as_deref(),
            self.karpathy_split.as_deref(),
            (given.0.as_deref(), given.1.as_deref()),
            part,
        )?)
    }

    /// The base learning rate actually used.
    pub fn resolved_base_lr(&self) -> f64 {
        self.base_lr
            .unwrap_or_else(|| paper_small_batch_base_lr(self.train.batch_size))
    }

    /// Fills every derived value (so the written config repeats the run exactly).
    pub fn resolve(&mut self) {
        self.base_lr = Some(self.resolved_base_lr());
        if self.mlp_image.is_none() {
            self.mlp_image = Some(self.mlp.clone());
        }
        if self.mlp_text.is_none() {
            self.mlp_text = Some(self.mlp.clone());
        }
    }

    /// Expander of the image branch.
    pub fn image_mlp(&self) -> &str {
        self.mlp_image.as_deref().unwrap_or(&self.mlp)
    }

    /// Expander of the text branch.
    pub fn text_mlp(&self) -> &str {
        self.mlp_text.as_deref().unwrap_or(&self.mlp)
    }

    /// The parsed `text-encoder` value.
    pub fn text_choice(&self) -> Result<TextChoice> {
        Ok(self.text_encoder.parse()?)
    }

    /// The VICReg coefficients: branch A is the image, branch B the text.
    pub fn vicreg(&self) -> VicRegConfig {
        VicRegConfig {
            sim_coeff: self.sim_coeff,
            std_coeff: self.std_coeff_image,
            cov_coeff: self.cov_coeff_image,
            std_coeff_b: Some(self.std_coeff_text),
            cov_coeff_b: Some(self.cov_coeff_text),
            variance_reduction: self.variance_reduction,
            normalization: self.normalization,
            ..VicRegConfig::default()
        }
    }

    /// The settings of every loss (the one of `loss` is used; byol / simsiam
    /// keep their defaults, they are refused for non-shared branches).
    pub fn loss_config(&self) -> LossConfig {
        self.criterion.loss_config(self.vicreg(), None)
    }

    /// The engine configuration.
    pub fn train(&self, resume: ResumeMode) -> TrainConfig {
        self.train.train_config(self.resolved_base_lr(), resume)
    }

    /// Checks values that the libraries would only reject later.
    pub fn validate(&self) -> Result<()> {
        self.validate_ranges().map_err(anyhow::Error::from_boxed)?;
        if self.train.batch_size < 2 {
            bail!("batch-size must be at least 2");
        }
        if self.criterion.loss.needs_multi_crop_model() {
            bail!(
                "--loss {} needs one image backbone over many crops with feature maps (imagenet pretrain); \
                 use vicreg, barlow-twins or simclr",
                self.criterion.loss
            );
        }
        if self.criterion.loss.needs_asymmetric_model() {
            bail!(
                "--loss {} is not available here: it needs a predictor on one branch and a target branch \
                 sharing (byol: tracking) the online weights, which two non-shared image / text branches \
                 cannot provide; use vicreg, barlow-twins or simclr",
                self.criterion.loss
            );
        }
        vicreg_core::loss::build_loss(self.criterion.loss, &self.loss_config())?;
        if self.max_len < 3 {
            bail!(
                "max-len {} leaves no room for a word between [CLS] and [SEP]",
                self.max_len
            );
        }
        if self.image_size < 16 {
            bail!(
                "image-size {} is too small for a ResNet (at least 16 px)",
                self.image_size
            );
        }
        for m in [self.image_mlp(), self.text_mlp()] {
            vicreg_core::model::parse_mlp_spec(m)?;
        }
        encoders::resnet::ResNetConfig::from_name(&self.image_arch)?;
        self.text_choice()?;
        Ok(())
    }
}

/// Allowed values of the numeric flags and config keys: the command line
/// parsers and [`PretrainConfig::validate`] use the same bounds.
pub mod limits {
    use std::ops::RangeInclusive;

    pub use vicreg_core::limits::*;

    /// Crop side in pixels (a ResNet needs at least 16).
    pub const IMAGE_SIZE: RangeInclusive<u64> = 16..=4096;
    /// Transformer layers.
    pub const TEXT_LAYERS: RangeInclusive<u64> = 1..=64;
    /// Attention heads.
    pub const TEXT_HEADS: RangeInclusive<u64> = 1..=256;
    /// WordPiece vocabulary size.
    pub const VOCAB_SIZE: RangeInclusive<u64> = 8..=1_000_000;
    /// Tokens per caption ([CLS] + at least one word + [SEP]).
    pub const MAX_LEN: RangeInclusive<u64> = 3..=4096;
    /// Retrieval results.
    pub const TOP_K: RangeInclusive<u64> = 1..=100_000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::recipe::Preset;

    #[test]
    fn the_laptop_preset_is_valid_and_a_config_file_applies_over_it() {
        let c = Preset::Laptop.config::<PretrainConfig>();
        c.validate().unwrap();
        assert_eq!(
            (c.image_arch.as_str(), c.image_size, c.train.batch_size),
            ("resnet18", 32, 64)
        );
        let dir = std::env::temp_dir().join(format!("coco-preset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.toml");
        std::fs::write(&f, "epochs = 3\nimage-size = 48\n").unwrap();
        let over =
            PretrainConfig::from_toml_file_over(&f, &Preset::Laptop.config::<PretrainConfig>())
                .unwrap();
        assert_eq!(
            (
                over.train.epochs,
                over.image_size,
                over.mlp.as_str(),
                over.text_hidden
            ),
            (3, 48, "1024-1024", 128)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A run directory's config.toml written by the flat config of before the
    /// recipe layer (and before `collective-timeout`) loads with the same
    /// values and is written back with every old key unchanged.
    #[test]
    fn a_config_written_by_the_previous_layout_loads_and_round_trips() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config-written-2026-12-06.toml");
        let cfg = PretrainConfig::from_toml_file(&path).unwrap();
        assert_eq!((cfg.train.epochs, cfg.train.warmup_epochs), (15, 1));
        assert_eq!(cfg.image_arch, "resnet18");
        assert_eq!(cfg.data.data_dir, Some(PathBuf::from("data/captions")));
        let old: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let back = toml::Table::try_from(&cfg).unwrap();
        for (k, v) in &old {
            assert_eq!(back.get(k), Some(v), "key {k}");
        }
        assert_eq!(back.len(), old.len() + 1, "only collective-timeout is new");
    }
}

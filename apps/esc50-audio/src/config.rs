//! The pretraining configuration: one flat table whose keys are the command
//! line flags (a TOML file given with `--config` uses the same keys; flags
//! override it). The resolved table is written to `<exp-dir>/config.toml` by
//! the engine and is what `eval`, `supervised` and `classify` rebuild the
//! encoders from.

use std::path::PathBuf;

use anyhow::{bail, Result};
use datasets::audio::AudioSettings;
use encoders::audio::{
    LogMelConfig, MelCnnConfig, ResNet1dConfig, SpectrogramEncoderConfig, TimePool,
};
use encoders::resnet::ResNetConfig;
use serde::{Deserialize, Serialize};
use vicreg_core::engine::{OnlineProbeConfig, ResumeMode, TrainConfig};
use vicreg_core::loss::VicRegConfig;
use vicreg_core::optim::OptimizerKind;
use vicreg_core::recipe::{
    AppConfig, CoeffSettings, DataSettings, LaptopRecipe, LossSettings, TrainSettings,
    VariantSettings,
};
use vicreg_core::BoxError;

/// What the two branches see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Pairing {
    /// The paper's setting: non-shared branches, raw waveform -> 1-D ResNet
    /// (branch A, `wave`) and log-mel spectrogram -> 2-D ResNet (branch B, `spec`).
    #[default]
    WaveSpec,
    /// Two augmented waveform views through one shared 1-D ResNet (`wave`).
    WaveWave,
    /// Two augmented views, each as a log-mel spectrogram, through one shared
    /// 2-D ResNet (`spec`): the usual setting of audio SSL (COLA, BYOL-A).
    SpecSpec,
}

impl Pairing {
    /// The encoders this pairing trains (`wave`, and `spec` for wave-spec).
    pub fn branches(self) -> &'static [&'static str] {
        match self {
            Pairing::WaveSpec => &["wave", "spec"],
            Pairing::WaveWave => &["wave"],
            Pairing::SpecSpec => &["spec"],
        }
    }
}

/// The 1-D waveform ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WaveArch {
    /// The paper's 1-D ResNet-18, widths 48-96-192-384 (384-d).
    #[default]
    Resnet18,
    /// 1-D ResNet-18 with widths 64-128-256-512 (512-d).
    Resnet18Wide,
    /// A CPU-sized 1-D ResNet-18: widths 8-16-32-64 (64-d), stem 25 taps, stride 8
    /// (total hop 128 samples).
    Small,
    /// The encoders crate's two-stage test network (8-d); for tests only.
    Tiny,
}

impl WaveArch {
    /// The encoder configuration.
    pub fn config(self) -> ResNet1dConfig {
        match self {
            WaveArch::Resnet18 => ResNet1dConfig::resnet18(),
            WaveArch::Resnet18Wide => ResNet1dConfig::resnet18_wide(),
            WaveArch::Small => ResNet1dConfig {
                widths: vec![8, 16, 32, 64],
                stem_kernel: 25,
                stem_stride: 8,
                ..ResNet1dConfig::resnet18()
            },
            WaveArch::Tiny => ResNet1dConfig::tiny(),
        }
    }
}

/// Everything a pretraining run needs; written to `<exp-dir>/config.toml`
/// fully resolved, so `esc50-audio pretrain --config <exp-dir>/config.toml` repeats it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PretrainConfig {
    /// `data-dir` (ESC-50 root: `meta/esc50.csv` + `audio/*.wav`; none: the
    /// built-in set), `num-workers`, `strict`.
    #[serde(flatten)]
    pub data: DataSettings,
    /// Schedule, optimizer, seed, logging, checkpoints, device, processes.
    #[serde(flatten)]
    pub train: TrainSettings,
    /// `loss` and the other losses' settings.
    #[serde(flatten)]
    pub criterion: LossSettings,
    /// `sim-coeff`, `std-coeff`, `cov-coeff` (branch A's and, unless
    /// `std-coeff-b` / `cov-coeff-b` are set, branch B's).
    #[serde(flatten)]
    pub coeffs: CoeffSettings,
    /// BYOL / SimSiam settings (wave-wave only).
    #[serde(flatten)]
    pub variant: VariantSettings,
    /// wave-spec (paper) or wave-wave.
    pub pairing: Pairing,
    /// `sample-rate`, `clip-seconds`, `crop`, `active-db`, `speed-prob`,
    /// `speed-range`, `mix-prob`, `noise-colour`, `eval-view` (what `eval`,
    /// `supervised` and `classify` show the frozen encoders of a clip).
    #[serde(flatten)]
    pub audio: AudioSettings,
    /// Fold held out from pretraining (1..=5); unset: pretrain on all five folds.
    pub test_fold: Option<u8>,
    /// The 1-D waveform encoder.
    pub wave_arch: WaveArch,
    /// The spectrogram network: a 2-D ResNet (resnet18, resnet34, ...; one input channel), `mel-cnn` (BYOL-A's 3-block convolutional encoder that keeps the mel axis, 512-d) or `byol-a` (the same, 2048-d).
    pub spec_arch: String,
    /// Mel bands (unset: 128 at 44.1 kHz and above, 64 below).
    pub n_mels: Option<usize>,
    /// How both encoders pool their last feature map over time: `mean-max`
    /// (mean + max over frames: short sounds in long, padded clips keep their
    /// peak) or `mean`. A config file without this key was written before it
    /// existed and means `mean`.
    pub time_pool: TimePool,
    /// Hop between spectrogram frames in samples (unset: a quarter of the ~46 ms FFT window).
    pub mel_hop: Option<usize>,
    /// Expander widths of both branches, e.g. 8192-8192-8192.
    pub mlp: String,
    /// Peak learning rate (the paper: AdamW 5e-4).
    pub lr: f64,
    /// Variance coefficient of branch B (the spectrogram branch for wave-spec).
    pub std_coeff_b: Option<f64>,
    /// Covariance coefficient of branch B.
    pub cov_coeff_b: Option<f64>,
    /// Train a linear classifier on the detached wave representations alongside.
    pub online_probe: bool,
    /// wave-wave: one waveform encoder for both views (unset: shared; false: two encoders).
    pub share_weights: Option<bool>,
}

impl Default for PretrainConfig {
    /// The paper's ESC-50 recipe: wave-spec, 5 s clips at 44.1 kHz, 1-D
    /// ResNet-18 (384-d) + ResNet-18 on 128-band log-mels (512-d), AdamW 5e-4, 100 epochs.
    fn default() -> Self {
        Self {
            data: DataSettings {
                num_workers: 2,
                ..DataSettings::default()
            },
            train: TrainSettings {
                exp_dir: PathBuf::from("runs/esc50"),
                epochs: 100,
                batch_size: 128,
                optimizer: OptimizerKind::Adamw,
                ..TrainSettings::default()
            },
            criterion: LossSettings::default(),
            coeffs: CoeffSettings::default(),
            variant: VariantSettings {
                momentum_base: 0.996,
                ..VariantSettings::default()
            },
            pairing: Pairing::WaveSpec,
            audio: AudioSettings::default(),
            test_fold: None,
            wave_arch: WaveArch::Resnet18,
            spec_arch: "resnet18".into(),
            n_mels: None,
            time_pool: TimePool::MeanMax,
            mel_hop: None,
            mlp: "8192-8192-8192".into(),
            lr: 5e-4,
            std_coeff_b: None,
            cov_coeff_b: None,
            online_probe: false,
            share_weights: None,
        }
    }
}

impl AppConfig for PretrainConfig {
    const APP: &'static str = "esc50-audio";

    /// Checks every numeric key against the bounds of its flag (see [`limits`]);
    /// the error names the key.
    fn validate_ranges(&self) -> std::result::Result<(), BoxError> {
        use limits::*;
        self.audio.validate()?;
        if let Some(v) = self.test_fold {
            check_int("test-fold", v, &FOLD)?;
        }
        if let Some(v) = self.n_mels {
            check_int("n-mels", v, &N_MELS)?;
        }
        if let Some(v) = self.mel_hop {
            check_int("mel-hop", v, &MEL_HOP)?;
        }
        let spec = self.spec_encoder().map_err(|e| format!("spec-arch: {e}"))?;
        if let Some(net) = &spec.mel_cnn {
            net.validate(spec.mel.n_mels)
                .map_err(|e| format!("spec-arch: {e}"))?;
        }
        self.data.validate()?;
        self.train.validate()?;
        self.criterion.validate()?;
        self.coeffs.validate()?;
        check_float("lr", self.lr, FloatRange::NON_NEGATIVE)?;
        if let Some(v) = self.std_coeff_b {
            check_float("std-coeff-b", v, FloatRange::NON_NEGATIVE)?;
        }
        if let Some(v) = self.cov_coeff_b {
            check_float("cov-coeff-b", v, FloatRange::NON_NEGATIVE)?;
        }
        self.variant
            .validate(self.criterion.loss, self.coeffs.sim_coeff)?;
        if self.criterion.loss.needs_multi_crop_model() {
            return Err(format!(
                "--loss {} needs an image backbone over many crops with feature maps (imagenet pretrain); \
                 use vicreg, barlow-twins, simclr, byol or simsiam",
                self.criterion.loss
            )
            .into());
        }
        Ok(())
    }

    fn resolve_and_validate(&mut self) -> std::result::Result<(), BoxError> {
        self.resolve();
        Ok(self.validate()?)
    }

    /// A file without `time-pool` was written before the key existed and
    /// means mean pooling (unless a flag sets it).
    fn upgrade(&mut self, given: &toml::Table, from_file: bool) {
        if from_file && !given.contains_key("time-pool") {
            self.time_pool = TimePool::Mean;
        }
    }
}

impl LaptopRecipe for PretrainConfig {
    /// The laptop recipe: two spectrogram views of each clip through one
    /// shared [`MelCnnConfig`] network (BYOL-A's encoder, 512-d) at 8 kHz,
    /// 2 s views cropped around sound, 32 mels (hop 256), expander
    /// 256-256-128, batch 32, AdamW peak lr 1e-3, 40 epochs: 800 steps, about
    /// 6-7 minutes on 2 cores for 640 training clips. The expander's output
    /// is kept at 4x the batch (the paper's ratio: 8192 for 2048), so the
    /// covariance term's floor (`D / (N - 1) - 1` times `std^4`) lets the
    /// embedding's std reach ~0.6; see apps/esc50-audio/README.md for what
    /// it reaches on real check sets.
    fn laptop() -> Self {
        let paper = Self::default();
        Self {
            audio: AudioSettings {
                sample_rate: 8000,
                clip_seconds: 2.0,
                ..paper.audio
            },
            wave_arch: WaveArch::Small,
            pairing: Pairing::SpecSpec,
            spec_arch: "mel-cnn".into(),
            n_mels: Some(32),
            mel_hop: Some(256),
            mlp: "256-256-128".into(),
            train: TrainSettings {
                epochs: 40,
                batch_size: 32,
                warmup_epochs: 2,
                exp_dir: PathBuf::from("runs/esc50-laptop"),
                ..paper.train
            },
            lr: 1e-3,
            ..paper
        }
    }
}

impl PretrainConfig {
    /// Fills derived values so the written config repeats the run exactly.
    pub fn resolve(&mut self) {
        if self.n_mels.is_none() {
            self.n_mels = Some(if self.audio.sample_rate >= 44_100 {
                128
            } else {
                64
            });
        }
    }

    /// The log-mel front end for this sample rate: the paper's 44.1 kHz
    /// settings (2048-point FFT, hop 512) scaled to keep a ~46 ms window and a
    /// quarter-window hop at other rates.
    pub fn mel(&self) -> LogMelConfig {
        let n_mels = self.n_mels.unwrap_or(if self.audio.sample_rate >= 44_100 {
            128
        } else {
            64
        });
        let sr = self.audio.sample_rate as f64;
        let n_fft = 2usize.pow((0.0464 * sr).log2().round().max(5.0) as u32);
        LogMelConfig {
            sample_rate: sr,
            n_fft,
            hop_length: self.mel_hop.unwrap_or(n_fft / 4),
            win_length: n_fft,
            n_mels,
            ..LogMelConfig::esc50()
        }
    }

    /// The spectrogram encoder's configuration.
    pub fn spec_encoder(&self) -> Result<SpectrogramEncoderConfig> {
        let (resnet, mel_cnn) = match self.spec_arch.as_str() {
            "mel-cnn" => (ResNetConfig::resnet18(), Some(MelCnnConfig::default())),
            "byol-a" => (ResNetConfig::resnet18(), Some(MelCnnConfig::byol_a())),
            name => (ResNetConfig::from_name(name)?, None),
        };
        Ok(SpectrogramEncoderConfig {
            mel: self.mel(),
            resnet: resnet.with_in_channels(1),
            mel_cnn,
            time_pool: self.time_pool,
            ..SpectrogramEncoderConfig::esc50()
        })
    }

    /// The loss configuration (per-branch variance / covariance coefficients).
    pub fn loss(&self) -> VicRegConfig {
        VicRegConfig {
            std_coeff_b: self.std_coeff_b,
            cov_coeff_b: self.cov_coeff_b,
            ..self.coeffs.vicreg()
        }
    }

    /// The engine configuration. The engine's peak rate is
    /// `base_lr * batch_size / 256`, so `lr` (the peak) is divided back.
    pub fn train(&self, resume: ResumeMode, num_classes: usize) -> TrainConfig {
        let base_lr = self.lr * 256.0 / self.train.batch_size as f64;
        TrainConfig {
            online_probe: self.online_probe.then(|| OnlineProbeConfig {
                num_classes,
                ..OnlineProbeConfig::default()
            }),
            ..self.train.train_config(base_lr, resume)
        }
    }

    /// Checks values that the libraries would only reject later.
    pub fn validate(&self) -> Result<()> {
        self.validate_ranges().map_err(anyhow::Error::from_boxed)?;
        if self.train.batch_size < 2 {
            bail!("batch-size must be at least 2");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("lr must be > 0, got {}", self.lr);
        }
        if !(self.audio.clip_seconds.is_finite() && self.audio.clip_seconds > 0.0) {
            bail!("clip-seconds must be > 0, got {}", self.audio.clip_seconds);
        }
        if let Some(f) = self.test_fold {
            datasets::audio::train_fold_list(f)?;
        }
        vicreg_core::model::parse_mlp_spec(&self.mlp)?;
        let wave = self.wave_arch.config();
        wave.validate()?;
        if wave.output_frames(self.audio.clip_len()).is_none() {
            bail!(
                "clips of {} samples are too short for the {:?} waveform encoder (needs at least {})",
                self.audio.clip_len(),
                self.wave_arch,
                wave.min_samples()
            );
        }
        if self.mel_hop == Some(0) {
            bail!("mel-hop must be at least 1 sample");
        }
        if self.pairing != Pairing::WaveWave {
            self.spec_encoder()?.resnet.validate()?;
        }
        self.check_combinations()?;
        Ok(())
    }

    /// Checks the combinations of loss, pairing and sharing options (the recipe
    /// layer checks the BYOL / SimSiam keys themselves).
    pub fn check_combinations(&self) -> Result<()> {
        let kind = self.criterion.loss;
        let asym = kind.needs_asymmetric_model();
        if asym && self.pairing == Pairing::SpecSpec {
            bail!("--loss {kind} is available with --pairing wave-wave only");
        }
        if self.pairing == Pairing::SpecSpec && self.share_weights == Some(false) {
            bail!(
                "spec-spec shares one spectrogram encoder (share-weights = false is for wave-wave)"
            );
        }
        if asym && self.pairing == Pairing::WaveSpec {
            bail!(
                "--loss {kind} needs two views through one encoder: use --pairing wave-wave (wave-spec has two different encoders)"
            );
        }
        if self.pairing == Pairing::WaveSpec && self.share_weights == Some(true) {
            bail!("share-weights = true is impossible with wave-spec (a 1-D and a 2-D encoder)");
        }
        if asym && self.share_weights == Some(false) {
            bail!(
                "share-weights = false is for the symmetric losses; {kind} uses one online network"
            );
        }
        Ok(self.variant.validate(kind, self.coeffs.sim_coeff)?)
    }
}

/// Parses `cpu` or `cuda:N` (`cuda` = `cuda:0`).
pub fn parse_device(s: &str) -> Result<candle_core::Device> {
    Ok(vicreg_core::parse_device(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::recipe::Preset;

    #[test]
    fn mel_matches_the_paper_at_44k_and_the_16k_preset() {
        let mut c = PretrainConfig::default();
        c.resolve();
        assert_eq!(c.mel(), LogMelConfig::esc50());
        c.audio.sample_rate = 16_000;
        c.n_mels = Some(64);
        assert_eq!(c.mel(), LogMelConfig::esc50_16k());
    }

    #[test]
    fn peak_lr_is_kept_through_the_engine_scaling() {
        let c = PretrainConfig::default();
        let t = c.train(ResumeMode::Auto, 50);
        assert!((t.base_lr * t.batch_size as f64 / 256.0 - 5e-4).abs() < 1e-12);
        assert_eq!(t.optimizer, OptimizerKind::Adamw);
    }

    #[test]
    fn the_laptop_preset_is_valid_and_a_config_file_applies_over_it() {
        let mut c = Preset::Laptop.config::<PretrainConfig>();
        c.resolve();
        c.validate().unwrap();
        assert_eq!((c.audio.sample_rate, c.audio.clip_len()), (8000, 16_000));
        assert_eq!(
            (c.pairing, c.spec_arch.as_str()),
            (Pairing::SpecSpec, "mel-cnn")
        );
        assert!(c.spec_encoder().unwrap().mel_cnn.is_some());
        let dir = std::env::temp_dir().join(format!("esc50-preset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.toml");
        std::fs::write(&f, "epochs = 3\ntime-pool = \"mean-max\"\n").unwrap();
        let over =
            PretrainConfig::from_toml_file_over(&f, &Preset::Laptop.config::<PretrainConfig>())
                .unwrap();
        assert_eq!(
            (
                over.train.epochs,
                over.audio.sample_rate,
                over.train.batch_size
            ),
            (3, 8000, 32)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_config_written_before_time_pool_existed_keeps_mean_pooling() {
        let dir = std::env::temp_dir().join(format!("esc50-oldcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.toml");
        // The keys of a run written before `time-pool`, `crop` and `eval-view` existed.
        std::fs::write(
            &old,
            "pairing = \"wave-spec\"\nsample-rate = 8000\nclip-seconds = 1.0\n",
        )
        .unwrap();
        let c = PretrainConfig::from_toml_file(&old).unwrap();
        assert_eq!(c.time_pool, TimePool::Mean);
        assert_eq!(c.audio.crop, datasets::audio::CropPolicy::Active);
        let new = dir.join("new.toml");
        std::fs::write(&new, toml::to_string(&PretrainConfig::default()).unwrap()).unwrap();
        assert_eq!(
            PretrainConfig::from_toml_file(&new).unwrap().time_pool,
            TimePool::MeanMax
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
        assert_eq!(
            (cfg.train.epochs, cfg.train.batch_size, cfg.lr),
            (40, 32, 1e-3)
        );
        assert_eq!(cfg.pairing, Pairing::WaveSpec);
        assert_eq!(cfg.time_pool, TimePool::MeanMax);
        assert_eq!(cfg.data.data_dir, Some(PathBuf::from("data/instruments80")));
        let old: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let back = toml::Table::try_from(&cfg).unwrap();
        for (k, v) in &old {
            assert_eq!(back.get(k), Some(v), "key {k}");
        }
        assert_eq!(back.len(), old.len() + 1, "only collective-timeout is new");
    }

    #[test]
    fn toml_round_trip_with_kebab_keys() {
        let mut c = PretrainConfig {
            test_fold: Some(3),
            pairing: Pairing::WaveWave,
            ..PretrainConfig::default()
        };
        c.resolve();
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("test-fold = 3"), "{text}");
        assert!(text.contains("pairing = \"wave-wave\""), "{text}");
        let back: PretrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}

/// Allowed values of the numeric flags and config keys: the command line
/// parsers and [`PretrainConfig::validate`] use the same bounds.
pub mod limits {
    use std::ops::RangeInclusive;

    pub use vicreg_core::limits::*;

    pub use datasets::audio::settings::{CLIP_SECONDS, SAMPLE_RATE};
    /// ESC-50 folds.
    pub const FOLD: RangeInclusive<u64> = 1..=5;
    /// Mel bands.
    pub const N_MELS: RangeInclusive<u64> = 1..=1024;
    /// Spectrogram hop, samples.
    pub const MEL_HOP: RangeInclusive<u64> = 1..=1_000_000;
}

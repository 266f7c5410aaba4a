//! Command-line interface: `pretrain`, `eval`, `supervised`, `classify`,
//! `plot`, `demo` (what running with no arguments does).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde::Serialize;
use vicreg_core::eval::{LinearProbeConfig, ProbeOptimizer, ProbeSettings};
use vicreg_core::recipe::{AppConfig, CommonCommand, Preset, PretrainFlags, SiameseFlags};

use crate::config::{limits, Pairing, PretrainConfig, WaveArch};
use crate::evaluate::{self, EvalOptions, InitKind};
use crate::model::BranchSel;
use crate::supervised::{self, SupervisedOptions};
use crate::{classify, demo, pretrain};
use datasets::audio::{AudioFlags, EvalView, Protocol};
use encoders::audio::TimePool;

/// VICReg on raw audio (ESC-50 layout): pretraining, linear evaluation,
/// supervised baseline and classification of wav files.
#[derive(Parser, Debug)]
#[command(name = "esc50-audio", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// VICReg pretraining (auto-resumes from <exp-dir>/checkpoint.safetensors).
    Pretrain(Box<PretrainArgs>),
    /// Linear probe on frozen representations (5-fold CV or the 1600/400 split).
    Eval(EvalArgs),
    /// Supervised baseline: the same encoder trained with labels.
    Supervised(Box<SupervisedArgs>),
    /// Top-5 classes of wav files with a run's encoders and saved head.
    Classify(ClassifyArgs),
    /// Representations of every clip -> .npy / safetensors / CSV, with the t-SNE map.
    Embed(crate::embed::EmbedArgs),
    /// The built-in demo (what running with no arguments does).
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Common(CommonCommand),
}

/// Flags of `pretrain`; each overrides the same key of `--config`. The
/// recipe layer's flags (run, data, loss, BYOL / SimSiam) are flattened in;
/// the rest are this app's own.
#[derive(clap::Args, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PretrainArgs {
    /// Starting point before --config and the flags: paper (5 s at 44.1 kHz, ResNet-18 on both branches, 100 epochs; default) or laptop (8 kHz, 2 s views, two spectrogram views through BYOL-A's mel-cnn, expander 256-256-128, 40 epochs: a few hundred clips in ~7 min on 2 cores).
    #[arg(long, value_enum, default_value = "paper")]
    #[serde(skip)]
    pub preset: Preset,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: PretrainFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub siamese: SiameseFlags,
    /// wave-spec (paper) or wave-wave.
    #[arg(long, value_enum)]
    pub pairing: Option<Pairing>,
    /// `--sample-rate`, `--clip-seconds`, `--crop`, `--active-db`, the
    /// augmentation probabilities and `--eval-view`.
    #[command(flatten)]
    #[serde(flatten)]
    pub audio: AudioFlags,
    /// How the encoders pool over time: mean-max (mean + max over frames, default) or mean.
    #[arg(long)]
    pub time_pool: Option<TimePool>,
    /// Fold (1-5) left out of pretraining. Range 1..=5.
    #[arg(long, value_parser = limits::int::<u8>(limits::FOLD))]
    pub test_fold: Option<u8>,
    /// The 1-D waveform encoder.
    #[arg(long, value_enum)]
    pub wave_arch: Option<WaveArch>,
    /// The spectrogram network: a 2-D ResNet (resnet18, resnet34, ...; one input channel), `mel-cnn` (BYOL-A's 3-block convolutional encoder that keeps the mel axis, 512-d) or `byol-a` (the same, 2048-d).
    #[arg(long)]
    pub spec_arch: Option<String>,
    /// Mel bands (unset: 128 at 44.1 kHz and above, 64 below). Range 1..=1024.
    #[arg(long, value_parser = limits::int::<usize>(limits::N_MELS))]
    pub n_mels: Option<usize>,
    /// Spectrogram hop in samples (default: a quarter of the FFT window). Range 1..=1000000.
    #[arg(long, value_parser = limits::int::<usize>(limits::MEL_HOP))]
    pub mel_hop: Option<usize>,
    /// Expander widths of both branches, e.g. 8192-8192-8192.
    #[arg(long)]
    pub mlp: Option<String>,
    /// Peak learning rate. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub lr: Option<f64>,
    /// Variance coefficient of branch B (the spectrogram branch for wave-spec). Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub std_coeff_b: Option<f64>,
    /// Covariance coefficient of branch B. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub cov_coeff_b: Option<f64>,
    /// Train a linear classifier on the detached wave representations alongside.
    #[arg(long)]
    pub online_probe: Option<bool>,
    /// wave-wave: share the waveform encoder between the views (true|false).
    #[arg(long)]
    pub share_weights: Option<bool>,
}

impl PretrainArgs {
    /// The preset, then the config file, then every given flag; checked.
    pub fn to_config(&self) -> Result<PretrainConfig> {
        Ok(self
            .common
            .config_over(&self.preset.config::<PretrainConfig>(), self)?)
    }
}

/// Linear-probe settings shared by `eval` and `supervised`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Probe epochs. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::EPOCHS), default_value_t = 100)]
    pub probe_epochs: usize,
    /// Probe peak learning rate (SGD momentum 0.9, cosine; features standardised). Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative, default_value_t = 0.02)]
    pub probe_lr: f64,
    /// Probe weight decay: `auto` (default: chosen among 1e-6 .. 0.1 on a held-out 20% of the training clips, at least 1000 steps) or a finite number >= 0.
    #[arg(long, value_parser = parse_probe_wd, default_value = "auto")]
    pub probe_wd: ProbeWd,
    /// Probe mini-batch size (feature vectors per step). Range 1..=1048576.
    #[arg(long, value_parser = limits::int::<usize>(limits::BATCH_SIZE), default_value_t = 256)]
    pub probe_batch_size: usize,
}

/// `--probe-wd`: chosen on held-out training data, or fixed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProbeWd {
    /// Chosen on a held-out part of the training clips.
    Auto,
    /// This value.
    Fixed(f64),
}

/// Parses `auto` or a finite weight decay >= 0.
pub fn parse_probe_wd(s: &str) -> std::result::Result<ProbeWd, String> {
    if s.trim() == "auto" {
        return Ok(ProbeWd::Auto);
    }
    limits::finite_non_negative(s).map(ProbeWd::Fixed)
}

impl ProbeArgs {
    /// The probe settings.
    pub fn config(&self, seed: u64) -> ProbeSettings {
        let (weight_decay, select_wd) = match self.probe_wd {
            ProbeWd::Auto => (1e-6, true),
            ProbeWd::Fixed(v) => (v, false),
        };
        ProbeSettings {
            cfg: LinearProbeConfig {
                epochs: self.probe_epochs,
                lr: self.probe_lr,
                weight_decay,
                batch_size: self.probe_batch_size,
                optimizer: ProbeOptimizer::Sgd,
                seed,
            },
            select_wd,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A pretraining run directory (its config.toml gives encoders and data).
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// folds: 5-fold CV (pretrains <exp-dir>/fold-N where missing); split: folds 1-4 vs 5.
    #[arg(long, value_enum, default_value = "split")]
    pub protocol: Protocol,
    /// Representation(s) to probe (comma-separated: wave,spec,both); features are extracted once. Default: wave, or spec for a spec-spec run.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub branch: Vec<BranchSel>,
    /// pretrained, or random (the same architecture randomly initialised).
    #[arg(long, value_enum, default_value = "pretrained")]
    pub init: InitKind,
    /// What the encoders see of a clip: full (the whole clip), windows (mean over windows that hold sound) or center (one centred crop); default: the run's eval-view.
    #[arg(long)]
    pub view: Option<EvalView>,
    /// With pretrained encoders, also evaluate the baselines (random-init encoders, log-mel statistics, chance) and print them in one table (true|false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub baselines: bool,
    /// Data directory (default: the run's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Clips per feature-extraction batch. Range 1..=1048576.
    #[arg(long, value_parser = limits::int::<usize>(limits::BATCH_SIZE), default_value_t = 32)]
    pub batch_size: usize,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = limits::int::<usize>(limits::NUM_WORKERS), default_value_t = 2)]
    pub num_workers: usize,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(clap::Args, Debug)]
pub struct SupervisedArgs {
    /// Encoder / audio settings: a pretraining config.toml (default: the paper's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// ESC-50 root (`meta/esc50.csv` + `audio/*.wav`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run directory.
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// folds: 5-fold cross-validation; split: folds 1-4 train, fold 5 test.
    #[arg(long, value_enum, default_value = "split")]
    pub protocol: Protocol,
    /// Which encoder to train (the paper's supervised row: spec).
    #[arg(long, value_enum, default_value = "spec")]
    pub branch: BranchSel,
    /// Epochs. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::EPOCHS), default_value_t = 100)]
    pub epochs: usize,
    /// Labelled clips per optimizer step. Range 1..=1048576.
    #[arg(long, value_parser = limits::int::<usize>(limits::BATCH_SIZE), default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (SGD momentum 0.9, cosine) of encoder and head. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative, default_value_t = 0.05)]
    pub lr: f64,
    /// Weight decay. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative, default_value_t = 5e-4)]
    pub wd: f64,
    /// Rate the clips are resampled to, Hz. Range 4000..=768000 Hz.
    #[arg(long, value_parser = limits::int::<u32>(limits::SAMPLE_RATE))]
    pub sample_rate: Option<u32>,
    /// Length of each view, seconds (ESC-50 clips are 5 s). Seconds in (0, 600].
    #[arg(long, value_parser = |s: &str| limits::CLIP_SECONDS.parse(s))]
    pub clip_seconds: Option<f64>,
    /// The 1-D waveform encoder.
    #[arg(long, value_enum)]
    pub wave_arch: Option<WaveArch>,
    /// The spectrogram network: a 2-D ResNet (resnet18, resnet34, ...; one input channel), `mel-cnn` (BYOL-A's 3-block convolutional encoder that keeps the mel axis, 512-d) or `byol-a` (the same, 2048-d).
    #[arg(long)]
    pub spec_arch: Option<String>,
    /// Mel bands (unset: 128 at 44.1 kHz and above, 64 below). Range 1..=1024.
    #[arg(long, value_parser = limits::int::<usize>(limits::N_MELS))]
    pub n_mels: Option<usize>,
    /// What the encoder sees of a test clip: full, windows or center (default: the config's eval-view).
    #[arg(long)]
    pub view: Option<EvalView>,
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = limits::int::<usize>(limits::NUM_WORKERS), default_value_t = 2)]
    pub num_workers: usize,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl SupervisedArgs {
    /// The encoder template and the options.
    pub fn split(self) -> Result<(PretrainConfig, SupervisedOptions)> {
        let mut c = match &self.config {
            Some(p) => PretrainConfig::from_toml_file(p)?,
            None => PretrainConfig::default(),
        };
        if let Some(d) = self.data_dir {
            c.data.data_dir = Some(d);
        }
        c.train.exp_dir = self.exp_dir;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        set!(wave_arch, spec_arch);
        if let Some(v) = self.sample_rate {
            c.audio.sample_rate = v;
        }
        if let Some(v) = self.clip_seconds {
            c.audio.clip_seconds = v;
        }
        if self.n_mels.is_some() {
            c.n_mels = self.n_mels;
        }
        c.train.seed = self.seed;
        c.train.quiet = self.quiet;
        c.train.device = self.device;
        c.test_fold = None;
        let o = SupervisedOptions {
            protocol: self.protocol,
            branch: self.branch,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            wd: self.wd,
            probe: self.probe.config(self.seed),
            view: self.view,
            workers: self.num_workers,
        };
        Ok((c, o))
    }
}

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// A run directory holding encoders and a head (classifier.safetensors).
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// wav files (any rate, mono or multichannel).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Which saved head to use (default: the first present of both, wave, spec).
    #[arg(long, value_enum)]
    pub branch: Option<BranchSel>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        None => demo::run(vicreg_core::recipe::flag_defaults()?),
        Some(Command::Demo(a)) => demo::run(a),
        Some(Command::Common(c)) => Ok(c.run::<PretrainConfig>()?),
        Some(Command::Pretrain(a)) => {
            let cfg = a.to_config()?;
            pretrain::run(cfg, a.common.train.resume_mode())
        }
        Some(Command::Eval(a)) => {
            let opts = EvalOptions {
                protocol: a.protocol,
                branches: a.branch.clone(),
                init: a.init,
                probe: a.probe.config(a.seed),
                view: a.view,
                baselines: a.baselines,
                data_dir: a.data_dir.clone(),
                batch_size: a.batch_size,
                workers: a.num_workers,
                device: a.device.clone(),
            };
            let reports = evaluate::run(&a.exp_dir, &opts)?;
            for r in &reports {
                let title = format!(
                    "linear probe on frozen {} representations ({:?} encoders, {:?} protocol): mean top-1 {:.2}%",
                    r.branch.name(),
                    a.init,
                    a.protocol,
                    r.mean_top1
                );
                evaluate::print_report(&title, r);
                println!(
                    "results: {}",
                    a.exp_dir
                        .join(evaluate::results_name(
                            "eval", a.protocol, r.branch, a.init, r.view
                        ))
                        .display()
                );
            }
            evaluate::print_summary(&reports);
            Ok(())
        }
        Some(Command::Supervised(a)) => {
            let (cfg, opts) = a.split()?;
            let exp = cfg.train.exp_dir.clone();
            let r = supervised::run(&cfg, &opts)?;
            evaluate::print_report(
                &format!(
                    "supervised {} encoder ({:?} protocol): mean top-1 {:.2}%",
                    opts.branch.name(),
                    opts.protocol,
                    r.mean_top1
                ),
                &r,
            );
            println!(
                "results: {}",
                exp.join(evaluate::results_name(
                    "supervised",
                    opts.protocol,
                    opts.branch,
                    InitKind::Pretrained,
                    r.view
                ))
                .display()
            );
            Ok(())
        }
        Some(Command::Classify(a)) => {
            let preds = classify::run(&a.exp_dir, &a.files, a.branch, &a.device)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&preds)?);
            } else {
                for p in preds {
                    let top: Vec<String> = p
                        .top
                        .iter()
                        .map(|(c, pr)| format!("{c} {:.1}%", 100.0 * pr))
                        .collect();
                    println!("{}: {}", p.file.display(), top.join(", "));
                }
            }
            Ok(())
        }
        Some(Command::Embed(a)) => {
            let (files, knn_2d) = crate::embed::run(&a)?;
            for f in &files {
                println!("{}", f.display());
            }
            if let Some(acc) = knn_2d {
                println!("map: 2-D 5-NN accuracy of the classes {:.1}%", 100.0 * acc);
            }
            Ok(())
        }
    }
}

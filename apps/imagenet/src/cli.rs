//! Command-line interface (flags mirror the official `main_vicreg.py` and `evaluate.py`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde::Serialize;
use vicreg_core::loss::{EmbeddingNorm, VarianceReduction};
use vicreg_core::recipe::{CommonCommand, Preset, PretrainFlags, SiameseFlags};

use crate::config::{limits, AugPreset, PretrainConfig};
use crate::eval_commands::{self, KnnEvalArgs, LinearEvalArgs};
use crate::{ablate, demo, dense_eval, embed, evaluate, pretrain};
use vicreg_core::parse_device;

/// Siamese VICReg on images: pretraining and evaluation.
#[derive(Parser, Debug)]
#[command(name = "imagenet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// VICReg pretraining (auto-resumes from <exp-dir>/checkpoint.safetensors).
    Pretrain(Box<PretrainArgs>),
    /// Linear evaluation (frozen backbone; 100/10/1 % of the labels).
    LinearEval(LinearEvalArgs),
    /// Weighted k-NN evaluation (k = 20 and 200, T = 0.07).
    KnnEval(KnnEvalArgs),
    /// Linear segmentation probe on the frozen feature map, on built-in scenes with pixel masks (cell accuracy, mIoU).
    DenseEval(dense_eval::DenseEvalArgs),
    /// Representations of every image in a folder -> safetensors + file index.
    Embed(EmbedArgs),
    /// The built-in demo (what running with no arguments does).
    Demo(demo::DemoArgs),
    /// Writes the built-in synthetic ImageFolder (the demo's data) to a folder.
    MakeData(MakeDataArgs),
    /// Runs a grid of pretraining configurations (TOML) with evaluation; writes summary.md/csv/svg.
    Ablate(ablate::AblateArgs),
    #[command(flatten)]
    Common(CommonCommand),
}

/// Flags of `make-data`.
#[derive(clap::Args, Debug)]
pub struct MakeDataArgs {
    /// Output folder (gets train/<class>/ and val/<class>/ PNG files); an
    /// existing complete set with the same settings is kept.
    #[arg(long)]
    pub out: PathBuf,
    /// Training images per class (10 classes). Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::PER_CLASS), default_value_t = 300)]
    pub train_per_class: usize,
    /// Validation images per class. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::PER_CLASS), default_value_t = 50)]
    pub val_per_class: usize,
    /// Side of the images in pixels. Range 1..=4096.
    #[arg(long, value_parser = limits::int::<u32>(limits::IMAGE_SIZE), default_value_t = 64)]
    pub image_size: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Flags of `pretrain`; each overrides the same key of `--config`. The
/// recipe layer's flags (run, data, loss, BYOL / SimSiam) are flattened in;
/// the rest are this app's own.
#[derive(clap::Args, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PretrainArgs {
    /// Starting point before --config and the flags: paper (the official ImageNet recipe, default; `official` names it too) or laptop (ResNet-18, 32 px crops, expander 512-512-512, batch 64, AdamW, 25 epochs: a few thousand small images in ~15 min on 2 cores).
    #[arg(long, value_enum, default_value = "paper")]
    #[serde(skip)]
    pub preset: Preset,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: PretrainFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub siamese: SiameseFlags,
    /// Backbone: resnet18/34/50/101/152/200, optionally wide (e.g. resnet50x2), or convnext_atto/femto/pico/nano/tiny/small/base/large/xlarge.
    #[arg(long)]
    pub arch: Option<String>,
    /// Zero-initialise the last BatchNorm of every residual branch (official: true).
    #[arg(long)]
    pub zero_init_residual: Option<bool>,
    /// Expander widths, e.g. 8192-8192-8192.
    #[arg(long)]
    pub mlp: Option<String>,
    /// Base learning rate (peak = base-lr x batch-size / 256); unset: the paper's small-batch values. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub base_lr: Option<f64>,
    /// Combine the two branches' variance terms by mean (official code) or sum (paper).
    #[arg(long, value_enum)]
    pub variance_reduction: Option<VarianceReduction>,
    /// Embedding normalisation before the loss.
    #[arg(long, value_enum)]
    pub normalization: Option<EmbeddingNorm>,
    /// Crop size in pixels; unset: the median shorter side of the training images, at most 224 (ImageNet: 224), 32 for IDX and the built-in set. Range 1..=4096.
    #[arg(long, value_parser = limits::int::<u32>(limits::IMAGE_SIZE))]
    pub image_size: Option<u32>,
    /// Two-view augmentation preset.
    #[arg(long, value_enum)]
    pub augment: Option<AugPreset>,
    /// Micro-batches accumulated per optimizer step. Range 1..=4096.
    #[arg(long, value_parser = limits::int::<usize>(limits::ACCUMULATE))]
    pub accumulate: Option<usize>,
    /// Train a linear classifier on detached representations alongside (needs labels).
    #[arg(long)]
    pub online_probe: Option<bool>,
    /// vicreg/barlow-twins/simclr: share the branches' weights (true|false).
    #[arg(long)]
    pub share_weights: Option<bool>,
    /// BatchNorm in the expander's hidden layers (true|false).
    #[arg(long)]
    pub expander_bn: Option<bool>,
    /// Multi-crop views: <count>x<size>[@<min>-<max>] groups joined by +, global crops first, e.g. 2x224+6x96 (VICRegL's; default scales 0.4-1 global, 0.08-0.4 local). With --loss vicreg: multi-crop VICReg; --loss vicregl without it: 2 x image-size + 6 local crops.
    #[arg(long)]
    pub multi_crop: Option<String>,
    /// VICRegL: weight of the global criterion (local: 1 - alpha). Range [0, 1].
    #[arg(long, value_parser = |s: &str| limits::FloatRange::UNIT.parse(s))]
    pub alpha: Option<f64>,
    /// VICRegL: local expander widths on feature-map vectors, e.g. 512-512-512.
    #[arg(long)]
    pub maps_mlp: Option<String>,
    /// VICRegL: location matches kept per direction, GLOBAL,OTHER (official 20,4).
    #[arg(long, value_parser = parse_num_matches)]
    pub num_matches: Option<[usize; 2]>,
    /// VICRegL: feature-space matching over every cell (true, official) or num-matches (false).
    #[arg(long)]
    pub l2_all_matches: Option<bool>,
    /// VICRegL: mirror the location grid of flipped crops (official: false).
    #[arg(long)]
    pub flip_grid: Option<bool>,
    /// ConvNeXt: stochastic-depth rate (VICRegL: 0.1). Range [0, 0.99].
    #[arg(long, value_parser = |s: &str| limits::DROP_PATH.parse(s))]
    pub drop_path_rate: Option<f64>,
    /// ConvNeXt: layer-scale init value, 0 = none (VICRegL: 0). Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub layer_scale: Option<f64>,
}

/// `--num-matches 20,4`.
fn parse_num_matches(s: &str) -> std::result::Result<[usize; 2], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let parse = |p: &str| {
        p.parse::<usize>()
            .ok()
            .filter(|v| limits::NUM_MATCHES.contains(&(*v as u64)))
    };
    match parts.as_slice() {
        [a, b] => match (parse(a), parse(b)) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => Err(format!("{s:?}: two counts in 1..=4096 expected, e.g. 20,4")),
        },
        _ => Err(format!(
            "{s:?}: two comma-separated counts expected, e.g. 20,4"
        )),
    }
}

impl PretrainArgs {
    /// The preset, then the config file, then every given flag; checked.
    pub fn to_config(&self) -> Result<PretrainConfig> {
        Ok(self
            .common
            .config_over(&self.preset.config::<PretrainConfig>(), self)?)
    }
}

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Folder of images (searched recursively).
    #[arg(long)]
    pub images: PathBuf,
    /// Backbone weights: a run directory, its <arch>-encoder.safetensors, or an official .pth. Omit for random init.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Backbone architecture (default: the pretraining run's, else resnet50).
    #[arg(long)]
    pub arch: Option<String>,
    /// Output path STEM (or STEM.safetensors): writes STEM.npy (NumPy float32), STEM.safetensors, STEM.csv (index,name,label; label = the image's class folder in an ImageFolder) and STEM.safetensors.files.txt.
    #[arg(long)]
    pub out: PathBuf,
    /// With an ImageFolder (two or more class folders): also draw STEM-map.svg (t-SNE coloured by class), STEM-std.svg and STEM-correlation.svg (true|false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub map: bool,
    /// Crop size in pixels (centre crop after resizing). Range 1..=4096.
    #[arg(long, value_parser = limits::int::<u32>(limits::IMAGE_SIZE), default_value_t = 224)]
    pub image_size: u32,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = limits::int::<usize>(limits::NUM_WORKERS), default_value_t = 2)]
    pub num_workers: usize,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        None => demo::run(vicreg_core::recipe::flag_defaults()?),
        Some(Command::Demo(a)) => demo::run(a),
        Some(Command::MakeData(a)) => {
            let cfg = datasets::synth_images::SynthImageConfig {
                train_per_class: a.train_per_class,
                val_per_class: a.val_per_class,
                image_size: a.image_size,
                seed: a.seed,
                ..Default::default()
            };
            let rep = datasets::synth_images::generate_image_folder(&a.out, &cfg)?;
            println!(
                "{}: {} ({} images)",
                a.out.display(),
                if rep.reused {
                    "already complete"
                } else {
                    "written"
                },
                10 * (a.train_per_class + a.val_per_class)
            );
            Ok(())
        }
        Some(Command::Ablate(a)) => ablate::run(a),
        Some(Command::Common(c)) => Ok(c.run::<PretrainConfig>()?),
        Some(Command::Pretrain(a)) => {
            let cfg = a.to_config()?;
            pretrain::run(cfg, a.common.train.resume_mode())
        }
        Some(Command::LinearEval(a)) => eval_commands::run_linear(&a),
        Some(Command::KnnEval(a)) => eval_commands::run_knn(&a),
        Some(Command::DenseEval(a)) => dense_eval::run(&a),
        Some(Command::Embed(a)) => {
            let device = parse_device(&a.device)?;
            let arch = evaluate::resolve_arch(a.arch.clone(), a.pretrained.as_deref());
            let e = embed::run(
                &a.images,
                &arch,
                a.pretrained.as_deref(),
                a.image_size,
                a.num_workers,
                &a.out,
                a.map,
                &device,
            )?;
            println!("wrote {} x {} embeddings:", e.rows, e.dim);
            for f in &e.files {
                println!("  {}", f.display());
            }
            if let Some(acc) = e.knn_2d {
                println!("map: 2-D 5-NN accuracy of the classes {:.1}%", 100.0 * acc);
            }
            Ok(())
        }
    }
}

//! Command-line interface.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use vicreg_core::loss::{EmbeddingNorm, VarianceReduction};
use vicreg_core::recipe::{CommonCommand, Preset, PretrainFlags};

use crate::config::{limits, ImageAugment, PretrainConfig};
use crate::{demo, evaluate, model, pretrain, retrieve};
use datasets::coco::Part;
use vicreg_core::parse_device;

/// Image-text VICReg (non-shared image and text encoders) and cross-modal retrieval on COCO captions.
#[derive(Parser, Debug)]
#[command(name = "coco-retrieval", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// VICReg pretraining of an image and a text branch (auto-resumes from <exp-dir>/checkpoint.safetensors).
    Pretrain(Box<PretrainArgs>),
    /// R@1/5/10 image->text and text->image and rsum on the test set (whole set and 1K folds).
    Eval(EvalArgs),
    /// Nearest test images to a caption (--text) or nearest test captions to an image (--image).
    Retrieve(RetrieveArgs),
    /// The test set's image and caption embeddings -> .npy / safetensors / CSV, with the t-SNE map.
    Embed(crate::embed::EmbedArgs),
    /// The built-in demo (what running with no arguments does).
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Common(CommonCommand),
}

/// Flags of `pretrain`; each overrides the same key of `--config`. The
/// recipe layer's flags (run, data, loss) are flattened in; the rest are this
/// app's own.
#[derive(clap::Args, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PretrainArgs {
    /// Starting point before --config and the flags: paper (ResNet-50 at 224 px, 4-layer transformer, expanders 8192^3, batch 256, LARS, 30 epochs; default) or laptop (ResNet-18 at 32 px, 2-layer width-128 transformer, expanders 1024-1024, batch 64, AdamW, 15 epochs: a few thousand captioned images in ~8 min on 2 cores).
    #[arg(long, value_enum, default_value = "paper")]
    #[serde(skip)]
    pub preset: Preset,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: PretrainFlags,
    /// Karpathy split file (dataset_coco.json), absolute or relative to --data-dir.
    #[arg(long)]
    pub karpathy_split: Option<PathBuf>,
    /// Folder of training images, anywhere (with --train-captions; instead of --data-dir).
    #[arg(long, requires = "train_captions")]
    pub train_images: Option<PathBuf>,
    /// COCO-format captions JSON of --train-images (images[] with file_name, annotations[]).
    #[arg(long, requires = "train_images")]
    pub train_captions: Option<PathBuf>,
    /// Folder of test images, anywhere (with --val-captions; used by eval and retrieve).
    #[arg(long, requires = "val_captions")]
    pub val_images: Option<PathBuf>,
    /// COCO-format captions JSON of --val-images.
    #[arg(long, requires = "val_images")]
    pub val_captions: Option<PathBuf>,
    /// resnet18/34/50/101/152/200 (optionally xN).
    #[arg(long)]
    pub image_arch: Option<String>,
    /// Zero-initialise the last BN of every residual branch.
    #[arg(long)]
    pub zero_init_residual: Option<bool>,
    /// Crop size of the image views, pixels. Range 16..=4096.
    #[arg(long, value_parser = limits::int::<u32>(limits::IMAGE_SIZE))]
    pub image_size: Option<u32>,
    /// Image augmentation of pretraining.
    #[arg(long, value_enum)]
    pub augment: Option<ImageAugment>,
    /// transformer | gru | pretrained:<model dir or HF hub id>.
    #[arg(long)]
    pub text_encoder: Option<String>,
    /// Transformer layers (from-scratch transformer). Range 1..=64.
    #[arg(long, value_parser = limits::int::<usize>(limits::TEXT_LAYERS))]
    pub text_layers: Option<usize>,
    /// Transformer hidden size / GRU state size (from scratch). Range 1..=65536.
    #[arg(long, value_parser = limits::int::<usize>(limits::WIDTH))]
    pub text_hidden: Option<usize>,
    /// Attention heads (from-scratch transformer). Range 1..=256.
    #[arg(long, value_parser = limits::int::<usize>(limits::TEXT_HEADS))]
    pub text_heads: Option<usize>,
    /// Word-embedding width of the GRU. Range 1..=65536.
    #[arg(long, value_parser = limits::int::<usize>(limits::WIDTH))]
    pub text_embed: Option<usize>,
    /// Dropout of the from-scratch transformer. In [0, 1].
    #[arg(long, value_parser = limits::unit_interval)]
    pub text_dropout: Option<f64>,
    /// Target size of the WordPiece vocabulary trained on the training captions (from scratch). Range 8..=1000000.
    #[arg(long, value_parser = limits::int::<usize>(limits::VOCAB_SIZE))]
    pub vocab_size: Option<usize>,
    /// Tokens per caption after truncation/padding, special tokens included. Range 3..=4096.
    #[arg(long, value_parser = limits::int::<usize>(limits::MAX_LEN))]
    pub max_len: Option<usize>,
    /// Expander widths of both branches.
    #[arg(long)]
    pub mlp: Option<String>,
    /// Expander of the image branch (unset: `mlp`).
    #[arg(long)]
    pub mlp_image: Option<String>,
    /// Expander of the text branch (unset: `mlp`).
    #[arg(long)]
    pub mlp_text: Option<String>,
    /// Keep the image encoder fixed (its expander still trains).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub freeze_image: Option<bool>,
    /// Keep the text encoder fixed (its expander still trains).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub freeze_text: Option<bool>,
    /// Base learning rate (peak = base-lr * batch-size / 256); unset: the paper's small-batch values. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub base_lr: Option<f64>,
    /// VICReg invariance coefficient. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub sim_coeff: Option<f64>,
    /// Variance coefficient of the image branch. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub std_coeff_image: Option<f64>,
    /// Variance coefficient of the text branch. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub std_coeff_text: Option<f64>,
    /// Covariance coefficient of the image branch. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub cov_coeff_image: Option<f64>,
    /// Covariance coefficient of the text branch. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub cov_coeff_text: Option<f64>,
    /// mean (official code) or sum (paper) of the two variance terms.
    #[arg(long, value_enum)]
    pub variance_reduction: Option<VarianceReduction>,
    /// Embedding normalisation before the loss: none, standardize, l2.
    #[arg(long, value_enum)]
    pub normalization: Option<EmbeddingNorm>,
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
pub struct EvalArgs {
    /// The pretraining run directory.
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// Evaluate the same architecture at its random initialisation (baseline) instead of the trained weights.
    #[arg(long)]
    pub random_init: bool,
    /// With trained weights, also report the baselines in the same table and results file: the same model at random initialisation, and chance (true|false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub baselines: bool,
    /// Also write <exp-dir>/gallery.html: for this many sample captions the 5 nearest images, and for as many images the 5 nearest captions, hits marked (0: no page). Range 0..=1000.
    #[arg(long, value_parser = limits::int::<usize>(0..=1000), default_value_t = 0, num_args = 0..=1, default_missing_value = "12")]
    pub gallery: usize,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(clap::Args, Debug)]
pub struct RetrieveArgs {
    /// The pretraining run directory.
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// A caption: the nearest test images are listed.
    #[arg(long, conflicts_with = "image")]
    pub text: Option<String>,
    /// An image file: the nearest test captions are listed.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Number of results. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::TOP_K), default_value_t = 5)]
    pub k: usize,
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
            let device = parse_device(&a.device)?;
            let run = model::load_run(&a.exp_dir, !a.random_init, &device)?;
            let name = format!("{} + {}", run.cfg.image_arch, run.cfg.text_encoder);
            if a.random_init {
                let test = run.cfg.open_part(Part::Test)?;
                let e = evaluate::evaluate(&evaluate::embed(
                    &run,
                    test,
                    run.cfg.data.num_workers,
                    &device,
                )?)?;
                print!(
                    "{}",
                    vicreg_core::eval::retrieval_table(&[(format!("{name} (random init)"), &e)])
                );
                return Ok(());
            }
            let (index, _) =
                evaluate::run_index(&run, &a.exp_dir, run.cfg.data.num_workers, &device)?;
            let e = evaluate::evaluate(&index)?;
            if a.gallery > 0 {
                let p = crate::gallery::write(&index, &a.exp_dir, a.gallery, run.cfg.train.seed)?;
                eprintln!("gallery: {}", p.display());
            }
            if index.meta.images.len() + index.meta.captions.len() >= 4 {
                let pics = crate::embed::modality_map(&index, &a.exp_dir.join("test"))?;
                eprintln!(
                    "map of the test images and captions: {} (2-D 5-NN accuracy of the modality {:.1}%)",
                    pics.map.display(),
                    100.0 * pics.knn_2d
                );
            }
            let mut base: Vec<(String, evaluate::Evaluation)> = Vec::new();
            if a.baselines {
                eprintln!("baseline: the same model at random initialisation");
                let rnd = model::load_run(&a.exp_dir, false, &device)?;
                let test = rnd.cfg.open_part(Part::Test)?;
                base.push((
                    format!("{name} (random init)"),
                    evaluate::evaluate(&evaluate::embed(
                        &rnd,
                        test,
                        rnd.cfg.data.num_workers,
                        &device,
                    )?)?,
                ));
                base.push((
                    "chance".into(),
                    evaluate::Evaluation::chance(
                        &index.meta.caption_image,
                        index.meta.images.len(),
                    ),
                ));
            }
            let refs: Vec<(String, &evaluate::Evaluation)> =
                base.iter().map(|(n, e)| (n.clone(), e)).collect();
            let p = evaluate::save(&a.exp_dir, &e, &refs)?;
            eprintln!("results written to {}", p.display());
            let mut rows = vec![(name, &e)];
            rows.extend(refs);
            print!("{}", vicreg_core::eval::retrieval_table(&rows));
            Ok(())
        }
        Some(Command::Retrieve(a)) => {
            let device = parse_device(&a.device)?;
            let run = model::load_run(&a.exp_dir, true, &device)?;
            let (index, built) =
                evaluate::run_index(&run, &a.exp_dir, run.cfg.data.num_workers, &device)?;
            if built {
                eprintln!(
                    "index cached in {}",
                    a.exp_dir.join(evaluate::INDEX_FILE).display()
                );
            }
            match (&a.text, &a.image) {
                (Some(t), None) => {
                    println!("test images nearest to {t:?}:");
                    for (r, h) in retrieve::by_text(&run, &index, t, a.k, &device)?
                        .iter()
                        .enumerate()
                    {
                        println!(
                            "{:>3}. {:.3}  {}  ({})",
                            r + 1,
                            h.score,
                            h.image.display(),
                            h.caption
                        );
                    }
                }
                (None, Some(p)) => {
                    println!("test captions nearest to {}:", p.display());
                    for (r, h) in retrieve::by_image(&run, &index, p, a.k, &device)?
                        .iter()
                        .enumerate()
                    {
                        println!(
                            "{:>3}. {:.3}  {}  ({})",
                            r + 1,
                            h.score,
                            h.caption,
                            h.image.display()
                        );
                    }
                }
                _ => bail!("retrieve needs --text \"a caption\" or --image path.jpg"),
            }
            Ok(())
        }
        Some(Command::Embed(a)) => {
            for f in crate::embed::run(&a)? {
                println!("{}", f.display());
            }
            Ok(())
        }
    }
}

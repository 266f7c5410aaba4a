//! Command-line interface.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use vicreg_core::loss::{EmbeddingNorm, LossKind, VarianceReduction};
use vicreg_core::optim::OptimizerKind;

use crate::config::{limits, parse_device, ImageAugment, PretrainConfig};
use crate::{demo, evaluate, model, pretrain, retrieve};

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
    /// Redraw the charts of a run directory.
    Plot {
        /// The run directory.
        #[arg(long)]
        exp_dir: PathBuf,
    },
    /// The built-in demo (what running with no arguments does).
    Demo(demo::DemoArgs),
    /// Checks a pretraining config file (keys, value ranges, consistency) without running it.
    CheckConfig {
        /// The TOML file (the keys of `pretrain --config`).
        #[arg(long)]
        config: PathBuf,
    },
}

/// Flags of `pretrain`; each overrides the same key of `--config`.
#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// TOML file with the same keys as these flags (e.g. a previous run's config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Require resuming from the checkpoint in --exp-dir (a run dir holding one is resumed anyway).
    #[arg(long)]
    pub resume: bool,
    /// COCO root (annotations/captions_{train,val}2017.json, train2017/, val2017/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
    /// Run directory.
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
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
    #[arg(long)]
    pub freeze_image: bool,
    /// Keep the text encoder fixed (its expander still trains).
    #[arg(long)]
    pub freeze_text: bool,
    /// Epochs. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::EPOCHS))]
    pub epochs: Option<usize>,
    /// Image-caption pairs per optimizer step. Range 1..=1048576.
    #[arg(long, value_parser = limits::int::<usize>(limits::BATCH_SIZE))]
    pub batch_size: Option<usize>,
    /// Base learning rate (peak = base-lr * batch-size / 256); unset: the paper's small-batch values. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub base_lr: Option<f64>,
    /// Weight decay. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub wd: Option<f64>,
    /// lars, sgd or adamw.
    #[arg(long, value_enum)]
    pub optimizer: Option<Opt>,
    /// Warmup epochs of the schedule. Range 0..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::WARMUP_EPOCHS))]
    pub warmup_epochs: Option<usize>,
    /// Loss: vicreg, barlow-twins or simclr (byol / simsiam are refused: they need weight sharing).
    #[arg(long, value_parser = parse_loss)]
    pub loss: Option<LossKind>,
    /// Barlow Twins off-diagonal weight. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative)]
    pub barlow_lambda: Option<f64>,
    /// SimCLR temperature. Finite, > 0.
    #[arg(long, value_parser = limits::finite_positive)]
    pub temperature: Option<f64>,
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
    pub variance_reduction: Option<VarRed>,
    /// Embedding normalisation before the loss: none, standardize, l2.
    #[arg(long, value_enum)]
    pub normalization: Option<Norm>,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = limits::int::<usize>(limits::NUM_WORKERS))]
    pub num_workers: Option<usize>,
    /// Seed of initialisation, data order, caption choice and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Log a metrics line every this many steps. Range 1..=1000000000.
    #[arg(long, value_parser = limits::int::<usize>(limits::LOG_EVERY))]
    pub log_every: Option<usize>,
    /// Also checkpoint every this many steps (0: only at epoch ends). Range 0..=1000000000.
    #[arg(long, value_parser = limits::int::<usize>(limits::CHECKPOINT_EVERY))]
    pub checkpoint_every: Option<usize>,
    /// Clip the global gradient norm (unset: no clipping). Finite, > 0.
    #[arg(long, value_parser = limits::finite_positive)]
    pub clip_grad: Option<f64>,
    /// Fail on the first unreadable image instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// cpu or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Synchronized BatchNorm over all processes (true|false; default: true when several).
    #[arg(long)]
    pub sync_bn: Option<bool>,
    /// Seconds a collective may take before the MPI job is aborted (default 600). Seconds in (0, 604800].
    #[arg(long, value_parser = |s: &str| limits::COLLECTIVE_TIMEOUT.parse(s))]
    pub collective_timeout: Option<f64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VarRed {
    Mean,
    Sum,
}
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Norm {
    None,
    Standardize,
    L2,
}
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Opt {
    Lars,
    Sgd,
    Adamw,
}

/// Parses a `--loss` value (see [`LossKind`]); the pretraining config rejects
/// the kinds that need weight sharing.
pub fn parse_loss(s: &str) -> std::result::Result<LossKind, String> {
    s.parse::<LossKind>().map_err(|e| e.to_string())
}

impl PretrainArgs {
    /// The config file (or the defaults) with every given flag applied.
    pub fn into_config(self) -> Result<(PretrainConfig, bool)> {
        let mut c = match &self.config {
            Some(p) => PretrainConfig::from_toml_file(p)?,
            None => PretrainConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        macro_rules! set_opt {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = Some(v); } )* };
        }
        set!(
            exp_dir,
            image_arch,
            zero_init_residual,
            image_size,
            augment,
            text_encoder,
            text_layers,
            text_hidden,
            text_heads
        );
        set!(
            text_embed,
            text_dropout,
            vocab_size,
            max_len,
            mlp,
            epochs,
            batch_size,
            wd,
            warmup_epochs,
            sim_coeff,
            loss,
            barlow_lambda,
            temperature
        );
        set!(
            std_coeff_image,
            std_coeff_text,
            cov_coeff_image,
            cov_coeff_text,
            num_workers,
            seed,
            log_every,
            checkpoint_every,
            device,
            collective_timeout
        );
        set_opt!(
            data_dir,
            karpathy_split,
            train_images,
            train_captions,
            val_images,
            val_captions,
            mlp_image,
            mlp_text,
            base_lr,
            clip_grad,
            sync_bn
        );
        if self.mlp.is_some() {
            // --mlp sets both branches unless a per-branch flag says otherwise.
            c.mlp_image = self.mlp_image.clone();
            c.mlp_text = self.mlp_text.clone();
        }
        if let Some(v) = self.variance_reduction {
            c.variance_reduction = match v {
                VarRed::Mean => VarianceReduction::Mean,
                VarRed::Sum => VarianceReduction::Sum,
            };
        }
        if let Some(v) = self.normalization {
            c.normalization = match v {
                Norm::None => EmbeddingNorm::None,
                Norm::Standardize => EmbeddingNorm::Standardize,
                Norm::L2 => EmbeddingNorm::L2,
            };
        }
        if let Some(v) = self.optimizer {
            c.optimizer = match v {
                Opt::Lars => OptimizerKind::Lars,
                Opt::Sgd => OptimizerKind::Sgd,
                Opt::Adamw => OptimizerKind::Adamw,
            };
        }
        c.freeze_image |= self.freeze_image;
        c.freeze_text |= self.freeze_text;
        c.strict |= self.strict;
        c.quiet |= self.quiet;
        Ok((c, self.resume))
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
        None => demo::run(demo::DemoArgs::default()),
        Some(Command::Demo(a)) => demo::run(a),
        Some(Command::CheckConfig { config }) => {
            let mut cfg = PretrainConfig::from_toml_file(&config)?;
            cfg.resolve();
            cfg.validate()
                .with_context(|| format!("{}: invalid coco-retrieval config", config.display()))?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Some(Command::Pretrain(a)) => {
            let (cfg, resume) = a.into_config()?;
            pretrain::run(cfg, resume)
        }
        Some(Command::Eval(a)) => {
            let device = parse_device(&a.device)?;
            let run = model::load_run(&a.exp_dir, !a.random_init, &device)?;
            let name = format!("{} + {}", run.cfg.image_arch, run.cfg.text_encoder);
            if a.random_init {
                let test = run.cfg.open_part(crate::data::Part::Test)?;
                let e = evaluate::evaluate(&evaluate::embed(
                    &run,
                    test,
                    run.cfg.num_workers,
                    &device,
                )?)?;
                print!(
                    "{}",
                    evaluate::table(&[(format!("{name} (random init)"), &e)])
                );
                return Ok(());
            }
            let (index, _) = evaluate::run_index(&run, &a.exp_dir, run.cfg.num_workers, &device)?;
            let e = evaluate::evaluate(&index)?;
            let mut base: Vec<(String, evaluate::Evaluation)> = Vec::new();
            if a.baselines {
                eprintln!("baseline: the same model at random initialisation");
                let rnd = model::load_run(&a.exp_dir, false, &device)?;
                let test = rnd.cfg.open_part(crate::data::Part::Test)?;
                base.push((
                    format!("{name} (random init)"),
                    evaluate::evaluate(&evaluate::embed(
                        &rnd,
                        test,
                        rnd.cfg.num_workers,
                        &device,
                    )?)?,
                ));
                base.push((
                    "chance".into(),
                    evaluate::chance_evaluation(&index.meta.caption_image, index.meta.images.len()),
                ));
            }
            let refs: Vec<(String, &evaluate::Evaluation)> =
                base.iter().map(|(n, e)| (n.clone(), e)).collect();
            let p = evaluate::save(&a.exp_dir, &e, &refs)?;
            eprintln!("results written to {}", p.display());
            let mut rows = vec![(name, &e)];
            rows.extend(refs);
            print!("{}", evaluate::table(&rows));
            Ok(())
        }
        Some(Command::Retrieve(a)) => {
            let device = parse_device(&a.device)?;
            let run = model::load_run(&a.exp_dir, true, &device)?;
            let (index, built) =
                evaluate::run_index(&run, &a.exp_dir, run.cfg.num_workers, &device)?;
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
        Some(Command::Plot { exp_dir }) => {
            for f in vicreg_core::engine::plot_run(&exp_dir)? {
                println!("{}", f.display());
            }
            Ok(())
        }
    }
}

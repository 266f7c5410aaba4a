//! The no-argument run: built-in captioned synthetic images in the COCO 2017
//! layout, a short image-text VICReg pretraining of a small ResNet and a small
//! text encoder, then retrieval on the held-out images against the same model
//! at its random initialisation.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
use vicreg_core::engine::ResumeMode;
use vicreg_core::loss::LossKind;
use vicreg_core::optim::OptimizerKind;
use vicreg_core::recipe::{DataSettings, LossSettings};

use crate::config::{ImageAugment, PretrainConfig};
use crate::evaluate;
use crate::model;
use crate::pretrain;
use crate::retrieve;
use datasets::coco::{self as data, Part};
use vicreg_core::parse_device;

/// Settings of the demo (flags of `coco-retrieval demo`).
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the run directory goes (default: runs/coco-retrieval-demo-<unix time>).
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Generated training images (5 captions each).
    #[arg(long, default_value_t = 2000)]
    pub train_images: usize,
    /// Generated test images (val2017 of the generated set).
    #[arg(long, default_value_t = 1000)]
    pub test_images: usize,
    /// Image backbone.
    #[arg(long, default_value = "resnet18")]
    pub image_arch: String,
    /// Crop size of the image views (the generated images are 64 px).
    #[arg(long, default_value_t = 24)]
    pub image_size: u32,
    /// transformer, gru or pretrained:<dir or hub id>.
    #[arg(long, default_value = "transformer")]
    pub text_encoder: String,
    /// Hidden size of the from-scratch text encoder.
    #[arg(long, default_value_t = 128)]
    pub text_hidden: usize,
    /// Layers of the from-scratch transformer.
    #[arg(long, default_value_t = 2)]
    pub text_layers: usize,
    /// Expanders of both branches.
    #[arg(long, default_value = "1024-1024")]
    pub mlp: String,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Optimizer.
    #[arg(long, default_value = "adamw")]
    pub optimizer: OptimizerKind,
    /// Base learning rate (peak = base-lr * batch-size / 256).
    #[arg(long, default_value_t = 0.008)]
    pub base_lr: f64,
    /// Joint-embedding loss: vicreg, barlow-twins or simclr.
    #[arg(long, default_value = "vicreg", value_parser = |s: &str| s.parse::<LossKind>().map_err(|e| e.to_string()))]
    pub loss: LossKind,
    /// Keep the text encoder fixed (e.g. a pretrained one); its expander still trains.
    #[arg(long)]
    pub freeze_text: bool,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    pub num_workers: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs the demo and prints the retrieval table.
pub fn run(args: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let data_dir = datasets::cache_dir().join("synth-captions");
    let synth = SynthCaptionsConfig {
        train_images: args.train_images,
        val_images: args.test_images,
        seed: args.seed,
        ..SynthCaptionsConfig::default()
    };
    generate_synth_coco(&data_dir, &synth)?;
    eprintln!(
        "built-in data: {} ({} train / {} test images of 64 px, 5 captions each; {:.0} s)",
        data_dir.display(),
        args.train_images,
        args.test_images,
        t0.elapsed().as_secs_f64()
    );
    let exp_dir = args
        .exp_dir
        .clone()
        .unwrap_or_else(|| vicreg_core::recipe::timestamped_dir("runs/coco-retrieval-demo"));
    let mut cfg = PretrainConfig {
        data: DataSettings::at(data_dir.clone(), args.num_workers),
        train: PretrainConfig::default().train.demo(
            exp_dir.clone(),
            (args.epochs, args.batch_size),
            args.optimizer,
            args.seed,
        ),
        criterion: LossSettings {
            loss: args.loss,
            ..LossSettings::default()
        },
        image_arch: args.image_arch.clone(),
        image_size: args.image_size,
        augment: ImageAugment::CaptionSafe,
        text_encoder: args.text_encoder.clone(),
        text_hidden: args.text_hidden,
        text_layers: args.text_layers,
        text_heads: 4,
        text_embed: args.text_hidden,
        text_dropout: 0.0,
        max_len: 24,
        mlp: args.mlp.clone(),
        base_lr: Some(args.base_lr),
        freeze_text: args.freeze_text,
        ..PretrainConfig::default()
    };
    cfg.resolve();
    cfg.validate()?;
    let train = data::open(&data_dir, None, Part::Train)?;
    eprintln!(
        "pretraining {} + {} text encoder, expanders {} with {}: {} epochs, batch {}, {:?} base lr {} -> {}",
        cfg.image_arch,
        cfg.text_encoder,
        cfg.mlp,
        cfg.criterion.loss,
        cfg.train.epochs,
        cfg.train.batch_size,
        cfg.train.optimizer,
        cfg.resolved_base_lr(),
        exp_dir.display()
    );
    let out = pretrain::pretrain_on(
        &cfg,
        train,
        ResumeMode::Auto,
        vicreg_core::collective::SingleProcess::group(),
    )?;

    let device = parse_device(&cfg.train.device)?;
    let t_eval = Instant::now();
    let trained = model::load_run(&exp_dir, true, &device)?;
    let (index, _) = evaluate::run_index(&trained, &exp_dir, cfg.data.num_workers, &device)?;
    let e_trained = evaluate::evaluate(&index)?;
    let random = model::load_run(&exp_dir, false, &device)?;
    let test = data::open(&data_dir, None, Part::Test)?;
    let e_random = evaluate::evaluate(&evaluate::embed(
        &random,
        test,
        cfg.data.num_workers,
        &device,
    )?)?;
    let e_chance = evaluate::Evaluation::chance(&index.meta.caption_image, index.meta.images.len());
    let enc = format!("{} + {}", cfg.image_arch, cfg.text_encoder);
    evaluate::save(
        &exp_dir,
        &e_trained,
        &[
            (format!("random init ({enc})"), &e_random),
            ("chance".to_string(), &e_chance),
        ],
    )?;
    let eval_s = t_eval.elapsed().as_secs_f64();

    println!();
    println!(
        "Image-text VICReg on built-in captioned shapes: retrieval on {} held-out images / {} captions (chance R@1: {:.1}% t2i, {:.1}% i2t)",
        e_trained.images,
        e_trained.captions,
        100.0 / e_trained.images as f64,
        100.0 * (e_trained.captions as f64 / e_trained.images as f64) / e_trained.captions as f64
    );
    print!(
        "{}",
        vicreg_core::eval::retrieval_table(&[
            (format!("{} ({enc})", cfg.criterion.loss), &e_trained),
            (format!("random init ({enc})"), &e_random),
            ("chance".to_string(), &e_chance)
        ])
    );
    println!();
    for q in [
        "a large red circle at the top left",
        "a small blue square in the center",
    ] {
        println!("retrieve --text {q:?}:");
        for (r, h) in retrieve::by_text(&trained, &index, q, 3, &device)?
            .iter()
            .enumerate()
        {
            println!("  {}. {:.3}  {}", r + 1, h.score, h.caption);
        }
    }
    println!();
    println!(
        "pretraining: {} steps in {:.0} s ({:.1} pairs/s); evaluation {:.0} s; total {:.0} s",
        out.summary.global_step,
        out.seconds,
        out.pairs_per_s,
        eval_s,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "run directory: {} (config.toml, metrics.jsonl, plots, model.safetensors, {}, {}); try `coco-retrieval retrieve --exp-dir {} --text \"a green star\"`",
        exp_dir.display(),
        evaluate::EVAL_FILE,
        evaluate::INDEX_FILE,
        exp_dir.display()
    );
    Ok(())
}

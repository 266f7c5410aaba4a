//! The no-argument run: built-in synthetic images, a short VICReg pretraining
//! of a small ResNet, then linear probe and k-NN against the same encoder
//! randomly initialised.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_core::engine::ResumeMode;
use vicreg_core::eval::{FinetuneConfig, KnnConfig, LinearProbeConfig};
use vicreg_core::recipe::{DataSettings, TrainSettings};

use crate::config::{AugPreset, PretrainConfig};
use crate::evaluate;
use crate::pretrain;
use datasets::image::splits;
use vicreg_core::parse_device;

/// Settings of the demo (flags of `imagenet demo`).
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the run directory goes (default: runs/imagenet-demo-<unix time>).
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Pretraining epochs (46 steps each; 8 keep the whole demo near 6.5
    /// minutes on 2 idle cores, 10 take ~8 and reach a few points more).
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Training images per class of the generated set (10 classes).
    #[arg(long, default_value_t = 300)]
    pub train_per_class: usize,
    /// Validation images per class.
    #[arg(long, default_value_t = 50)]
    pub val_per_class: usize,
    /// Backbone.
    #[arg(long, default_value = "resnet18")]
    pub arch: String,
    /// Expander.
    #[arg(long, default_value = "1024-1024-1024")]
    pub mlp: String,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Crop size of the views (the generated images are 64 px).
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    pub num_workers: usize,
    /// Optimizer (AdamW learns fastest in a run of a few hundred steps).
    #[arg(long, value_parser = |s: &str| s.parse::<vicreg_core::optim::OptimizerKind>().map_err(|e| e.to_string()), default_value = "adamw")]
    pub optimizer: vicreg_core::optim::OptimizerKind,
    /// Base learning rate (peak = base-lr * batch-size / 256).
    #[arg(long, default_value_t = 8e-3)]
    pub base_lr: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub wd: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also train the same encoder supervised from random init for the same
    /// number of epochs (backbone + linear head, labels of every training
    /// image): an upper reference for the table. Adds ~3 minutes on 2 cores.
    #[arg(long)]
    pub supervised: bool,
}

/// One line of the demo's table.
struct Row {
    name: &'static str,
    top1: f64,
    top5: f64,
    /// k-NN top-1 for k = 20 and 200 (frozen encoders only).
    knn: Option<(f64, f64)>,
    seconds: f64,
}

/// Runs the demo and prints the comparison table.
pub fn run(args: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let data_dir = datasets::cache_dir().join("synth-images");
    let synth = SynthImageConfig {
        train_per_class: args.train_per_class,
        val_per_class: args.val_per_class,
        seed: args.seed,
        ..SynthImageConfig::default()
    };
    let rep = generate_image_folder(&data_dir, &synth)?;
    eprintln!(
        "built-in data: {} ({}; 10 classes x {} train / {} val images, 64 px)",
        data_dir.display(),
        if rep.reused { "reused" } else { "generated" },
        args.train_per_class,
        args.val_per_class
    );
    let exp_dir = args
        .exp_dir
        .clone()
        .unwrap_or_else(|| vicreg_core::recipe::timestamped_dir("runs/imagenet-demo"));
    let mut cfg = PretrainConfig {
        data: DataSettings::at(data_dir.clone(), args.num_workers),
        train: TrainSettings {
            wd: args.wd,
            ..PretrainConfig::default().train.demo(
                exp_dir.clone(),
                (args.epochs, args.batch_size),
                args.optimizer,
                args.seed,
            )
        },
        arch: args.arch.clone(),
        mlp: args.mlp.clone(),
        base_lr: Some(args.base_lr),
        image_size: Some(args.image_size),
        augment: AugPreset::Small,
        online_probe: true,
        ..PretrainConfig::default()
    };
    cfg.resolve(args.image_size);
    cfg.validate()?;
    let source = splits::open_split(&data_dir, "train", false)?;
    eprintln!(
        "pretraining {} + expander {} with VICReg: {} epochs, batch {}, {:?} base lr {} -> {}",
        cfg.arch,
        cfg.mlp,
        cfg.train.epochs,
        cfg.train.batch_size,
        cfg.train.optimizer,
        cfg.resolved_base_lr(),
        exp_dir.display()
    );
    let out = pretrain::pretrain_on(
        &cfg,
        source,
        ResumeMode::Auto,
        vicreg_core::collective::SingleProcess::group(),
    )?;

    let device = parse_device(&cfg.train.device)?;
    let probe = LinearProbeConfig {
        epochs: 100,
        lr: 0.1,
        batch_size: 256,
        ..LinearProbeConfig::paper()
    };
    let knn = KnnConfig::default();
    let mut rows = Vec::new();
    for (name, pretrained) in [("VICReg", Some(exp_dir.as_path())), ("random init", None)] {
        let t = Instant::now();
        let net = evaluate::backbone(&cfg.arch, pretrained, cfg.train.seed, &device)?;
        let (tr, va, names) = evaluate::split_features(
            &net,
            &data_dir,
            args.image_size,
            100.0,
            None,
            cfg.train.seed,
            args.num_workers,
            &device,
        )?;
        let classes = names.len();
        let out_dir = pretrained.map(|p| p.to_path_buf());
        let lin = evaluate::linear_eval(&tr, &va, classes, &probe, out_dir.as_deref())?;
        let k = evaluate::knn_eval(&tr, &va, classes, &knn, out_dir.as_deref())?;
        if let Some(dir) = out_dir.as_deref() {
            evaluate::val_pictures(dir, &va, &names)?;
        }
        let knn_of = |kk: usize| {
            k.iter()
                .find(|(x, _)| *x == kk)
                .map(|(_, v)| *v)
                .unwrap_or(f64::NAN)
        };
        rows.push(Row {
            name,
            top1: lin.top1,
            top5: lin.top5,
            knn: Some((knn_of(20), knn_of(200))),
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    if args.supervised {
        let t = Instant::now();
        let sup_dir = exp_dir.join("supervised");
        std::fs::create_dir_all(&sup_dir)?;
        let fcfg = FinetuneConfig {
            epochs: args.epochs,
            lr_backbone: 0.1,
            lr_head: 0.1,
            weight_decay: 1e-4,
            seed: cfg.train.seed,
        };
        let r = evaluate::finetune_eval(
            &cfg.arch,
            None,
            &data_dir,
            args.image_size,
            100.0,
            None,
            &fcfg,
            args.batch_size,
            args.num_workers,
            &device,
            Some(&sup_dir),
        )?;
        rows.push(Row {
            name: "supervised (reference)",
            top1: r.top1,
            top5: r.top5,
            knn: None,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    println!();
    println!("ImageNet-style VICReg demo on built-in synthetic images (10 classes, chance 10%)");
    println!(
        "| encoder ({}) | linear top-1 | linear top-5 | 20-NN top-1 | 200-NN top-1 | eval time |",
        cfg.arch
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let (k20, k200) = match r.knn {
            Some((a, b)) => (format!("{a:.1}%"), format!("{b:.1}%")),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {:.1}% | {:.1}% | {k20} | {k200} | {:.0} s |",
            r.name, r.top1, r.top5, r.seconds
        );
    }
    println!();
    println!(
        "pretraining: {} steps in {:.0} s ({:.1} pairs/s); total {:.0} s",
        out.summary.global_step,
        out.seconds,
        out.pairs_per_s,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "run directory: {} (config.toml, metrics.jsonl, plots, {}-encoder.safetensors)",
        exp_dir.display(),
        cfg.arch
    );
    Ok(())
}

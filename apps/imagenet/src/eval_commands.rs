//! `imagenet linear-eval` and `imagenet knn-eval`: their flags, and each
//! command from the flags to the printed table (the protocols themselves are
//! in [`crate::evaluate`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Device;
use clap::ValueEnum;
use datasets::image::splits;
use encoders::ImageEncoder;
use vicreg_core::eval::{FinetuneConfig, KnnConfig, LinearProbeConfig, ProbeOptimizer};

use crate::baselines::{self, ImageBaselines};
use crate::config::limits;
use crate::evaluate::{
    backbone, default_out_dir, eval_splits, finetune_eval, knn_eval, knn_gallery, linear_eval,
    resolve_arch, split_features, val_pictures,
};
use crate::model;
use vicreg_core::parse_device;

/// Which weights linear evaluation trains.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Weights {
    /// Frozen backbone, linear classifier only (features extracted once).
    Freeze,
    /// Backbone and classifier trained together.
    Finetune,
}

/// What `linear-eval` and `knn-eval` both take: the data, the backbone and where results go.
#[derive(clap::Args, Debug)]
pub struct EvalTarget {
    /// ImageFolder root (train/ and val/) or a folder of IDX files.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Backbone weights: a run directory, its <arch>-encoder.safetensors, or an official .pth. Omit for a random-init baseline.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Backbone architecture (default: the pretraining run's, else resnet50).
    #[arg(long)]
    pub arch: Option<String>,
    /// Crop size (default: the pretraining run's, else the median shorter side of the training images up to 224; 32 for IDX). Range 1..=4096.
    #[arg(long, value_parser = limits::int::<u32>(limits::IMAGE_SIZE))]
    pub image_size: Option<u32>,
    /// Where results go (default: next to --pretrained).
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = limits::int::<usize>(limits::NUM_WORKERS), default_value_t = 2)]
    pub num_workers: usize,
    /// With --pretrained, also evaluate the baselines (random-init backbone with the same protocol, raw-pixel k-NN, chance) and print one table (default: on for training sets of at most 20,000 images).
    #[arg(long)]
    pub baselines: Option<bool>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(clap::Args, Debug)]
pub struct LinearEvalArgs {
    #[command(flatten)]
    pub target: EvalTarget,
    /// freeze: linear probe on frozen features; finetune: backbone trained too (semi-supervised protocol).
    #[arg(long, value_enum, default_value = "freeze")]
    pub weights: Weights,
    /// Percentage of labelled training images per class (100, 10, 1, ...). In (0, 100].
    #[arg(long, value_parser = |s: &str| limits::PERCENT.parse(s), default_value_t = 100.0)]
    pub train_percent: f64,
    /// File of training image names to use instead of --train-percent (official subset lists).
    #[arg(long)]
    pub train_subset: Option<PathBuf>,
    /// Training epochs of the classifier. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::EPOCHS), default_value_t = 100)]
    pub epochs: usize,
    /// Learning rate of the linear head. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative, default_value_t = 0.02)]
    pub lr_head: f64,
    /// Learning rate of the backbone (finetune only). Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative, default_value_t = 0.0)]
    pub lr_backbone: f64,
    /// Weight decay. Finite, >= 0.
    #[arg(long, value_parser = limits::finite_non_negative, default_value_t = 1e-6)]
    pub wd: f64,
    /// Batch size. Range 1..=1048576.
    #[arg(long, value_parser = limits::int::<usize>(limits::BATCH_SIZE), default_value_t = 256)]
    pub batch_size: usize,
    /// Seed of the head initialisation, data order and subsets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct KnnEvalArgs {
    #[command(flatten)]
    pub target: EvalTarget,
    /// Neighbour counts. Range 1..=100000 each.
    #[arg(long, value_parser = limits::int::<usize>(limits::KNN_K), value_delimiter = ',', default_value = "20,200")]
    pub k: Vec<usize>,
    /// Temperature of the similarity weighting (InstDisc / DINO k-NN). Finite, > 0.
    #[arg(long, value_parser = limits::finite_positive, default_value_t = 0.07)]
    pub temperature: f64,
    /// Also write knn_gallery.html into the results folder: for this many val images (`--gallery` alone: 12) the 5 nearest training images, same class marked (0: no page). Range 0..=1000.
    #[arg(long, value_parser = limits::int::<usize>(0..=1000), default_value_t = 0, num_args = 0..=1, default_missing_value = "12")]
    pub gallery: usize,
}

/// [`EvalTarget`] resolved: device, architecture, crop size, results folder.
struct Resolved {
    device: Device,
    arch: String,
    size: u32,
    out: Option<PathBuf>,
}

impl EvalTarget {
    fn resolve(&self) -> Result<Resolved> {
        let pretrained = self.pretrained.as_deref();
        let size = match self
            .image_size
            .or_else(|| pretrained.and_then(model::image_size_of_run))
        {
            Some(s) => s,
            None => splits::default_image_size(&self.data_dir)?,
        };
        Ok(Resolved {
            device: parse_device(&self.device)?,
            arch: resolve_arch(self.arch.clone(), pretrained),
            size,
            out: self.exp_dir.clone().or_else(|| default_out_dir(pretrained)),
        })
    }

    /// Whether to add the baselines: asked for (or a small set) and a pretrained backbone to compare.
    fn wants_baselines(&self) -> Result<bool> {
        Ok(self.pretrained.is_some() && baselines::wanted(self.baselines, &self.data_dir)?)
    }
}

/// Prints one results table, the pretrained `rows` first, and saves `baselines.json`.
fn print_table(rows: &[String], b: &ImageBaselines, out: Option<&Path>) -> Result<()> {
    println!("| encoder | top-1 | top-5 |");
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    baselines::print_rows(b);
    if let Some(dir) = out {
        baselines::save(dir, b)?;
    }
    Ok(())
}

/// `linear-eval`: the linear probe (or fine-tuning), then the baselines.
pub fn run_linear(a: &LinearEvalArgs) -> Result<()> {
    let t = &a.target;
    let r = t.resolve()?;
    let (device, arch, size, out) = (&r.device, r.arch.as_str(), r.size, r.out.as_deref());
    if a.weights == Weights::Finetune {
        let cfg = FinetuneConfig {
            epochs: a.epochs,
            lr_backbone: a.lr_backbone,
            lr_head: a.lr_head,
            weight_decay: a.wd,
            seed: a.seed,
        };
        let subset = a.train_subset.as_deref();
        let pretrained = t.pretrained.as_deref();
        let (workers, batch) = (t.num_workers, a.batch_size);
        let r = finetune_eval(
            arch,
            pretrained,
            &t.data_dir,
            size,
            a.train_percent,
            subset,
            &cfg,
            batch,
            workers,
            device,
            out,
        )?;
        println!(
            "fine-tuned eval ({arch}, {}% labels, {} epochs): top-1 {:.2}%  top-5 {:.2}%",
            a.train_percent, a.epochs, r.top1, r.top5
        );
        return Ok(());
    }
    let features_of = |net: &ImageEncoder| {
        let subset = a.train_subset.as_deref();
        split_features(
            net,
            &t.data_dir,
            size,
            a.train_percent,
            subset,
            a.seed,
            t.num_workers,
            device,
        )
    };
    let (tr, va, names) = features_of(&backbone(arch, t.pretrained.as_deref(), a.seed, device)?)?;
    let classes = names.len();
    let cfg = LinearProbeConfig {
        epochs: a.epochs,
        lr: a.lr_head,
        weight_decay: a.wd,
        batch_size: a.batch_size,
        optimizer: ProbeOptimizer::Sgd,
        seed: a.seed,
    };
    let r = linear_eval(&tr, &va, classes, &cfg, out)?;
    if let Some(dir) = out {
        val_pictures(dir, &va, &names)?;
    }
    println!(
        "linear eval ({arch}, {} train / {} val, {}% labels): top-1 {:.2}%  top-5 {:.2}%",
        tr.len(),
        va.len(),
        a.train_percent,
        r.top1,
        r.top5
    );
    if t.wants_baselines()? {
        eprintln!("baseline: the same protocol on a randomly initialised {arch}");
        let (rtr, rva, _) = features_of(&backbone(arch, None, a.seed, device)?)?;
        let rr = linear_eval(&rtr, &rva, classes, &cfg, None)?;
        let random = Some((rr.top1, rr.top5));
        let b = baselines::evaluate(&t.data_dir, size, a.seed, t.num_workers, random, None)?;
        let row = format!(
            "| pretrained {arch}, linear | {:.2}% | {:.2}% |",
            r.top1, r.top5
        );
        print_table(&[row], &b, out)?;
    }
    Ok(())
}

/// `knn-eval`: weighted k-NN (and the gallery), then the baselines.
pub fn run_knn(a: &KnnEvalArgs) -> Result<()> {
    let t = &a.target;
    let r = t.resolve()?;
    let (device, arch, size, out) = (&r.device, r.arch.as_str(), r.size, r.out.as_deref());
    let features_of = |net: &ImageEncoder| {
        split_features(
            net,
            &t.data_dir,
            size,
            100.0,
            None,
            0,
            t.num_workers,
            device,
        )
    };
    let (tr, va, names) = features_of(&backbone(arch, t.pretrained.as_deref(), 0, device)?)?;
    let classes = names.len();
    let cfg = KnnConfig {
        ks: a.k.clone(),
        temperature: a.temperature,
        ..KnnConfig::default()
    };
    let res = knn_eval(&tr, &va, classes, &cfg, out)?;
    if let Some(dir) = out {
        val_pictures(dir, &va, &names)?;
        if a.gallery > 0 {
            // The images themselves: the sources the features were made from.
            let (ts, vs, _) = eval_splits(&t.data_dir, 100.0, None, 0)?;
            let p = knn_gallery(dir, &tr, &va, (ts, vs), &names, a.gallery, 0)?;
            eprintln!("gallery: {}", p.display());
        }
    }
    for (k, top1) in &res {
        println!("{k}-NN top-1 ({arch}): {top1:.2}%");
    }
    if t.wants_baselines()? {
        eprintln!("baseline: the same k-NN on a randomly initialised {arch}");
        let (rtr, rva, _) = features_of(&backbone(arch, None, 0, device)?)?;
        let rk = knn_eval(&rtr, &rva, classes, &cfg, None)?;
        let b = baselines::evaluate(&t.data_dir, size, 0, t.num_workers, None, Some(rk))?;
        let rows: Vec<String> = res
            .iter()
            .map(|(k, t)| format!("| pretrained {arch}, {k}-NN | {t:.2}% | |"))
            .collect();
        print_table(&rows, &b, out)?;
    }
    Ok(())
}

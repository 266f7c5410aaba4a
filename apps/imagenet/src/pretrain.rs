//! `imagenet pretrain`: siamese VICReg pretraining of a ResNet.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use datasets::augment::VicregAugConfig;
use datasets::image::{
    collate_multi_crop, collate_two_view, ImageSource, MultiCropDataset, TwoViewDataset,
};
use datasets::loader::{Loader, LoaderConfig};
use datasets::pairs::{collate_labelled, Labelled, PairBatches, SkipLog, SKIPPED_FILE};
use datasets::Dataset;
use vicreg_core::collective::{micro_batch, sync_bn_scope, Collective, Launch};
use vicreg_core::engine::{ResumeMode, RunOutcome, TrainConfig, TrainSummary};

use crate::config::{AugPreset, PretrainConfig};
use crate::variants;
use datasets::image::splits::{self, AnySource};
use vicreg_core::parse_device;

/// The two-view augmentation for `preset` at crop size `size`.
pub fn augmentation(preset: AugPreset, size: u32) -> VicregAugConfig {
    let mut cfg = match preset {
        AugPreset::Auto if size < 96 => VicregAugConfig::small_images(size),
        AugPreset::Small => VicregAugConfig::small_images(size),
        AugPreset::Symmetric => VicregAugConfig::symmetric(),
        AugPreset::Auto | AugPreset::Official => VicregAugConfig::default(),
    };
    cfg.view1.size = size;
    cfg.view2.size = size;
    cfg
}

/// Runs pretraining as one rank of `collective` (`SingleProcess::group()`:
/// alone): this rank loads its shard of
/// every epoch, `batch-size / world` pairs per step, and (with `sync-bn`) every
/// BatchNorm uses the statistics of the global batch. Two views of `--loss`
/// / `--share-weights`, or multi-crop views (VICRegL, multi-crop VICReg:
/// every view of [`PretrainConfig::multi_crop_spec`], colour-augmented as the
/// two-view pipeline of `augment`).
pub fn pretrain_on(
    cfg: &PretrainConfig,
    source: AnySource,
    resume: ResumeMode,
    collective: Arc<dyn Collective>,
) -> Result<RunOutcome> {
    let device = parse_device(&cfg.train.device)?;
    let size = cfg
        .image_size
        .context("image-size must be resolved before pretraining")?;
    let aug = augmentation(cfg.augment, size);
    let num_classes = source.num_classes();
    let dev = device.clone();
    if cfg.is_multi_crop() {
        let dataset = MultiCropDataset::new(source, aug, &cfg.multi_crop_spec()?)?;
        let num_global = dataset.num_global();
        return train_on(
            cfg,
            Labelled::new(dataset, |d, i| d.source().label(i)),
            num_classes,
            resume,
            collective,
            move |views| Ok((collate_multi_crop(views, num_global, &dev)?, ())),
            |train_cfg, collective, batches| {
                variants::fit_multi_crop(cfg, train_cfg, collective, batches, &device)
            },
        );
    }
    train_on(
        cfg,
        Labelled::new(TwoViewDataset::new(source, aug)?, |d, i| {
            d.source().label(i)
        }),
        num_classes,
        resume,
        collective,
        move |views| collate_two_view(views, &dev),
        // The model of `--loss` / `--share-weights` (see variants.rs).
        |train_cfg, collective, batches| {
            variants::fit(cfg, train_cfg, collective, batches, &device)
        },
    )
}

/// This rank's batches of `dataset` (items stacked by `collate`, labels
/// kept for the online probe), trained by `fit` under `sync-bn`, timed.
fn train_on<S, X, Y>(
    cfg: &PretrainConfig,
    dataset: Labelled<S>,
    num_classes: usize,
    resume: ResumeMode,
    collective: Arc<dyn Collective>,
    collate: impl Fn(Vec<S::Item>) -> datasets::Result<(X, Y)> + Send + Sync + 'static,
    fit: impl FnOnce(
        TrainConfig,
        Arc<dyn Collective>,
        &mut PairBatches<Labelled<S>, (X, Y, Vec<usize>), X, Y>,
    ) -> Result<TrainSummary>,
) -> Result<RunOutcome>
where
    S: Dataset + 'static,
    X: Send + 'static,
    Y: Send + 'static,
{
    let n_images = dataset.len();
    let world = collective.world_size();
    let micro = micro_batch(cfg.train.batch_size, world, cfg.accumulate)?;
    let loader = Loader::new(
        Arc::new(dataset),
        LoaderConfig::pretraining(micro, &cfg.data, cfg.train.seed, collective.as_ref()),
        move |items| collate_labelled(items, &collate),
    )
    .with_context(|| format!("{n_images} training images"))?;
    let mut batches = PairBatches::labelled(
        loader,
        SkipLog::new(Some(&cfg.train.exp_dir), collective.rank()),
    );
    let train_cfg = cfg.train(resume, num_classes);
    let start = Instant::now();
    let _sync = sync_bn_scope(cfg.train.sync_bn, &collective);
    let summary = fit(train_cfg, collective, &mut batches)?;
    Ok(RunOutcome::new(
        summary,
        start,
        cfg.train.batch_size,
        batches.skips().total(),
    ))
}

/// `imagenet pretrain` on `cfg.data.data_dir` (resolved here).
pub fn run(mut cfg: PretrainConfig, resume: ResumeMode) -> Result<()> {
    let dir = cfg.data.data_dir.clone().context(
        "pretrain needs --data-dir (run `imagenet` with no arguments for the built-in demo)",
    )?;
    cfg.resolve(splits::default_image_size(&dir)?);
    cfg.validate()?;
    // Under a launcher, `--device cuda` becomes this rank's GPU (cuda:<local rank>).
    let launch = Launch::for_run(&mut cfg.train, cfg.accumulate)?;
    let result = run_as(&cfg, &dir, resume, &launch);
    launch.finish(result)
}

/// The body of [`run`] for one rank of `launch`.
fn run_as(
    cfg: &PretrainConfig,
    dir: &std::path::Path,
    resume: ResumeMode,
    launch: &Launch,
) -> Result<()> {
    let rank0 = launch.rank() == 0;
    let source = splits::open_split(dir, "train", cfg.data.strict)?;
    if rank0 {
        eprintln!(
            "pretraining {} ({}) on {} ({} images, {} classes), crops {}, {}, base lr {}, {} epochs -> {}",
            cfg.arch,
            cfg.criterion.loss,
            dir.display(),
            source.len(),
            source.num_classes(),
            if cfg.is_multi_crop() {
                cfg.multi_crop_spec()?.spec()
            } else {
                format!("2x{} px", cfg.image_size.unwrap_or(0))
            },
            launch.describe_batch(&cfg.train),
            cfg.resolved_base_lr(),
            cfg.train.epochs,
            cfg.train.exp_dir.display()
        );
    }
    let out = pretrain_on(cfg, source, resume, launch.collective())?;
    out.print_on_rank0(
        launch.rank(),
        "images",
        &cfg.train.exp_dir.join(SKIPPED_FILE),
    );
    Ok(())
}

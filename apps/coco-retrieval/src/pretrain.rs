//! `coco-retrieval pretrain`: VICReg between an image branch and a text
//! branch with their own weights, on COCO image-caption pairs.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Tensor;
use datasets::augment::VicregAugConfig;
use datasets::coco::{
    collate_image_tokens, CocoCaptions, CocoPretrain, SingleViewConfig, SingleViewTransform,
};
use datasets::loader::{Loader, LoaderConfig};
use datasets::pairs::{PairBatches, SkipLog, SKIPPED_FILE};
use vicreg_core::collective::{micro_batch, sync_bn_scope, Collective, Launch};
use vicreg_core::engine::{PairBatch, ResumeMode, RunOutcome, Trainer};
use vicreg_core::loss::build_loss;
use vicreg_core::optim::{build_optimizer, ParamGroup};
use vicreg_core::ParamStore;

use crate::config::{ImageAugment, PretrainConfig};
use crate::model::{self, MODEL_FILE};
use crate::text::{self, text_batch};
use datasets::coco::Part;
use vicreg_core::parse_device;

/// The single image view of pretraining at crop size `size`.
pub fn image_view(aug: ImageAugment, size: u32) -> SingleViewConfig {
    match aug {
        ImageAugment::CaptionSafe => SingleViewConfig::caption_safe(size),
        ImageAugment::Official => {
            let base = if size < 96 {
                VicregAugConfig::small_images(size)
            } else {
                VicregAugConfig::default()
            };
            let mut view = base.view1;
            view.size = size;
            SingleViewConfig {
                view,
                normalize: base.normalize,
                channels: base.channels,
            }
        }
    }
}

/// Runs pretraining with a resolved `cfg` on the captioned images `train`
/// as one rank of `collective` (`SingleProcess::group()`: alone): this rank loads
/// `batch-size / world` pairs of each global batch; BatchNorm statistics are
/// synchronized over the ranks when `sync-bn` says so; rank 0 trains the
/// tokenizer and writes the run directory, the other ranks read its tokenizer.
pub fn pretrain_on(
    cfg: &PretrainConfig,
    train: CocoCaptions,
    resume: ResumeMode,
    collective: Arc<dyn Collective>,
) -> Result<RunOutcome> {
    let device = parse_device(&cfg.train.device)?;
    let (rank, world) = (collective.rank(), collective.world_size());
    let micro = micro_batch(cfg.train.batch_size, world, 1)?;
    let n_images = train.len();
    let prepared = {
        let (captions, _) = train.flat_captions();
        if rank == 0 {
            let p = text::prepare(cfg, &captions, true)?;
            collective.barrier()?;
            p
        } else {
            collective.barrier()?;
            text::prepare(cfg, &captions, false)?
        }
    };
    let tokenizer = text::caption_tokenizer(&prepared.tokenizer, cfg.max_len)?;
    let frozen_captions = if cfg.freeze_text {
        text::token_sequences(&tokenizer, &train.flat_captions().0)?
    } else {
        Vec::new()
    };
    let view = SingleViewTransform::new(image_view(cfg.augment, cfg.image_size))?;
    let dataset = CocoPretrain::new(Arc::new(train), view, tokenizer);
    let dev = device.clone();
    let loader = Loader::new(
        Arc::new(dataset),
        LoaderConfig::pretraining(micro, &cfg.data, cfg.train.seed, collective.as_ref()),
        move |items| collate_image_tokens(items, &dev),
    )
    .with_context(|| {
        format!(
            "{n_images} training images, batch size {}",
            cfg.train.batch_size
        )
    })?;
    if loader.steps_per_epoch() == 0 {
        anyhow::bail!(
            "{n_images} training images are fewer than one batch of {}",
            cfg.train.batch_size
        );
    }
    // Branch A: the `(B, 3, S, S)` image view; branch B: one caption per
    // image (drawn per epoch), cut to the batch's longest caption.
    let mut pairs = PairBatches::new(
        loader,
        SkipLog::new(Some(&cfg.train.exp_dir), rank),
        |(images, ids, mask): (Tensor, Tensor, Tensor)| {
            let n = images.dims().first().copied().unwrap_or(0);
            let text = text_batch(&ids, &mask).map_err(|e| {
                datasets::Error::Core(vicreg_core::Error::invalid(format!("{e:#}")))
            })?;
            Ok(PairBatch::new(images, text, n))
        },
    );

    let store = ParamStore::new(cfg.train.seed);
    let net = model::build(cfg, &prepared.arch, &store, &device)?;
    if let Some(w) = &prepared.weights {
        let r = encoders::text::load_bert_weights(
            &store,
            model::TEXT_ENCODER.trim_end_matches('.'),
            w,
        )?;
        eprintln!(
            "text encoder: {} tensors loaded from {}",
            r.loaded,
            w.display()
        );
    }
    if cfg.freeze_text {
        text::precompute_frozen(&net, frozen_captions, cfg.train.epochs * n_images, &device)?;
    }
    let vars = model::optimized_vars(cfg, &store);
    eprintln!(
        "model: {} parameters, {} trained{}",
        model::count(&store.trainable_vars()),
        model::count(&vars),
        match (cfg.freeze_image, cfg.freeze_text) {
            (true, true) => " (both encoders frozen: expanders only)",
            (true, false) => " (image encoder frozen)",
            (false, true) => " (text encoder frozen)",
            _ => "",
        }
    );
    let optimizer = build_optimizer(
        cfg.train.optimizer,
        vec![ParamGroup::new(vars)],
        cfg.train.wd,
    )?;
    let loss = build_loss(cfg.criterion.loss, &cfg.loss_config())?;
    let mut trainer = Trainer::builder(&net, &store, cfg.train(resume))
        .loss(loss)
        .collective(collective.clone())
        .run_dir(&cfg.train.exp_dir, cfg)
        .optimizer(optimizer)
        .export("image", model::IMAGE_ENCODER)
        .export("text", model::TEXT_ENCODER)
        .build()?;
    let start = Instant::now();
    let _sync = sync_bn_scope(cfg.train.sync_bn, &collective);
    let summary = trainer.fit(&mut pairs)?;
    if rank == 0 {
        store.save_safetensors(&cfg.train.exp_dir.join(MODEL_FILE))?;
    }
    Ok(RunOutcome::new(
        summary,
        start,
        cfg.train.batch_size,
        pairs.skips().total(),
    ))
}

/// `coco-retrieval pretrain` on `cfg.data.data_dir`.
pub fn run(mut cfg: PretrainConfig, resume: ResumeMode) -> Result<()> {
    if cfg.data.data_dir.is_none() && cfg.train_captions.is_none() {
        anyhow::bail!(
            "pretrain needs --data-dir or --train-images with --train-captions (run `coco-retrieval` with no arguments for the built-in demo)"
        );
    }
    cfg.resolve();
    cfg.validate()?;
    // Under `mpirun -np N` (binary built with the cargo feature `mpi`): one
    // rank of N; `--device cuda` becomes this rank's GPU.
    let launch = Launch::for_run(&mut cfg.train, 1)?;
    let result = run_as(&cfg, resume, &launch);
    launch.finish(result)
}

/// The body of [`run`] for one rank of `launch`.
fn run_as(cfg: &PretrainConfig, resume: ResumeMode, launch: &Launch) -> Result<()> {
    let rank0 = launch.rank() == 0;
    let train = cfg.open_part(Part::Train)?;
    let from = match (&cfg.train_captions, &cfg.data.data_dir) {
        (Some(c), _) => c.display().to_string(),
        (None, Some(d)) => d.display().to_string(),
        (None, None) => String::new(),
    };
    if rank0 {
        eprintln!(
        "pretraining {} + {} text encoder on {} ({} images, {} captions), crops {} px, {}, base lr {}, {} epochs -> {}",
        cfg.image_arch,
        cfg.text_encoder,
        from,
        train.len(),
        train.num_captions(),
        cfg.image_size,
        launch.describe_batch(&cfg.train),
        cfg.resolved_base_lr(),
        cfg.train.epochs,
        cfg.train.exp_dir.display()
    );
    }
    let out = pretrain_on(cfg, train, resume, launch.collective())?;
    out.print_on_rank0(
        launch.rank(),
        "images",
        &cfg.train.exp_dir.join(SKIPPED_FILE),
    );
    Ok(())
}

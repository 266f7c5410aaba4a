//! `esc50-audio pretrain`: VICReg on ESC-50 clips (wave-spec or wave-wave).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use datasets::audio::{
    clip_names, collate_waveform_pairs, open_index, Esc50Index, Esc50Pretrain, ESC50_FOLDS,
};
use datasets::loader::{Loader, LoaderConfig};
use datasets::pairs::{collate_labelled, Labelled, PairBatches, SkipLog, SKIPPED_FILE};
use vicreg_core::collective::{micro_batch, sync_bn_scope, Collective, Launch};
use vicreg_core::engine::{ResumeMode, RunOutcome};

use crate::config::{parse_device, PretrainConfig};
use crate::variants;

/// Name of the file listing the clips a run was pretrained on (one per line).
pub const PRETRAIN_CLIPS: &str = "pretrain_clips.txt";

/// The folds pretraining reads: all but `test_fold`, or all five.
pub fn pretrain_folds(test_fold: Option<u8>) -> Result<Vec<u8>> {
    Ok(match test_fold {
        Some(f) => datasets::audio::train_fold_list(f)?,
        None => (1..=ESC50_FOLDS).collect(),
    })
}

/// Runs pretraining as one rank of `collective` (`SingleProcess::group()`:
/// alone): this rank loads
/// `batch-size / world` clips of each global batch (its shard of the epoch's
/// order); BatchNorm statistics are synchronized over the ranks when
/// `sync-bn` says so; rank 0 writes the run directory.
pub fn pretrain_on(
    cfg: &PretrainConfig,
    index: Arc<Esc50Index>,
    resume: ResumeMode,
    collective: Arc<dyn Collective>,
) -> Result<RunOutcome> {
    let world = collective.world_size();
    let rank = collective.rank();
    let micro = micro_batch(cfg.train.batch_size, world, 1)?;
    let device = parse_device(&cfg.train.device)?;
    let folds = pretrain_folds(cfg.test_fold)?;
    let names = clip_names(&index, &folds)?;
    let num_classes = index.num_classes();
    let views = cfg.audio.train_views();
    let dataset = Labelled::new(
        Esc50Pretrain::new(index, &folds, cfg.audio.sample_rate, views)?,
        |d, i| d.target(i) as usize,
    );
    let dev = device.clone();
    let loader = Loader::new(
        Arc::new(dataset),
        LoaderConfig::pretraining(micro, &cfg.data, cfg.train.seed, collective.as_ref()),
        move |items| collate_labelled(items, |views| collate_waveform_pairs(views, &dev)),
    )
    .with_context(|| format!("{} pretraining clips (folds {folds:?})", names.len()))?;
    if loader.steps_per_epoch() == 0 {
        anyhow::bail!(
            "{} pretraining clips (folds {folds:?}) make no full batch of {}; lower --batch-size",
            names.len(),
            cfg.train.batch_size
        );
    }
    let mut pairs = PairBatches::labelled(loader, SkipLog::new(Some(&cfg.train.exp_dir), rank));

    let train_cfg = cfg.train(resume, num_classes);
    std::fs::create_dir_all(&cfg.train.exp_dir)
        .with_context(|| format!("creating {}", cfg.train.exp_dir.display()))?;
    if rank == 0 {
        write_clip_list(&cfg.train.exp_dir, &names)?;
    }
    let start = Instant::now();
    let _sync = sync_bn_scope(cfg.train.sync_bn, &collective);
    // The model of `--loss` / `--pairing` / `--share-weights` (see variants.rs).
    let summary = variants::fit(cfg, train_cfg, collective, &mut pairs, &device)?;
    Ok(RunOutcome::new(
        summary,
        start,
        cfg.train.batch_size,
        pairs.skips().total(),
    ))
}

fn write_clip_list(dir: &Path, names: &[String]) -> Result<()> {
    let mut text = names.join("\n");
    text.push('\n');
    vicreg_core::io::write_atomic(&dir.join(PRETRAIN_CLIPS), text.as_bytes())
        .with_context(|| format!("writing {}", dir.join(PRETRAIN_CLIPS).display()))
}

/// True when `dir` holds a finished run of `cfg`'s pairing (every encoder exported).
pub fn is_complete(dir: &Path, cfg: &PretrainConfig) -> bool {
    cfg.pairing
        .branches()
        .iter()
        .all(|b| dir.join(format!("{b}-encoder.safetensors")).is_file())
}

/// Prints the one-line description of a run about to start.
pub fn announce(cfg: &PretrainConfig, index: &Esc50Index) -> Result<()> {
    let folds = pretrain_folds(cfg.test_fold)?;
    let n = index.select_folds(&folds)?.len();
    eprintln!(
        "pretraining {:?} ({:?} wave encoder{}) on {} ({} clips of folds {:?}, {} classes), {} s at {} Hz, batch {}, {:?} lr {}, {} epochs -> {}",
        cfg.pairing,
        cfg.wave_arch,
        if cfg.pairing == crate::config::Pairing::WaveSpec {
            format!(", {} on {} mels", cfg.spec_arch, cfg.mel().n_mels)
        } else {
            String::new()
        },
        index.root().display(),
        n,
        folds,
        index.num_classes(),
        cfg.audio.clip_seconds,
        cfg.audio.sample_rate,
        cfg.train.batch_size,
        cfg.train.optimizer,
        cfg.lr,
        cfg.train.epochs,
        cfg.train.exp_dir.display()
    );
    Ok(())
}

/// `esc50-audio pretrain`.
pub fn run(mut cfg: PretrainConfig, resume: ResumeMode) -> Result<()> {
    let dir = cfg.data.data_dir.clone().context(
        "pretrain needs --data-dir (run `esc50-audio` with no arguments for the built-in demo)",
    )?;
    cfg.resolve();
    cfg.validate()?;
    // Under `mpirun -np N` (binary built with the cargo feature `mpi`): one
    // rank of N; `--device cuda` becomes this rank's GPU.
    let launch = Launch::for_run(&mut cfg.train, 1)?;
    let result = run_as(&cfg, &dir, resume, &launch);
    launch.finish(result)
}

/// The body of [`run`] for one rank of `launch`.
fn run_as(cfg: &PretrainConfig, dir: &Path, resume: ResumeMode, launch: &Launch) -> Result<()> {
    let rank0 = launch.rank() == 0;
    let index = open_index(dir)?;
    if rank0 {
        announce(cfg, &index)?;
        if launch.world() > 1 {
            eprintln!("{}", launch.describe_batch(&cfg.train));
        }
    }
    let out = pretrain_on(cfg, index, resume, launch.collective())?;
    out.print_on_rank0(
        launch.rank(),
        "clips",
        &cfg.train.exp_dir.join(SKIPPED_FILE),
    );
    Ok(())
}

//! `esc50-audio eval`: linear probe on frozen representations, 5-fold
//! cross-validation (`folds`) or the single 1600/400 split (`split`).
//!
//! Leak-freedom: for the run that holds out fold `k`, the encoder must have
//! been pretrained with `test-fold = k` (checked on its config.toml, or
//! pretrained here into `<exp-dir>/fold-k`), and the probe is trained on the
//! other four folds only. The clip lists of both stages are written to the
//! results JSON so the separation can be audited.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::Device;
use datasets::audio::Esc50Index;
use serde::Serialize;
use vicreg_core::eval::{linear_probe, Features, LinearProbeConfig};

use crate::config::{parse_device, PretrainConfig};
use crate::data::{self, fold_plan, FoldRun, Protocol};
use crate::head::{self, Head, HeadMeta};
use crate::model::{BranchSel, Encoders};
use crate::pretrain;

/// Where the encoders come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitKind {
    /// The VICReg-pretrained encoders of the run directory (pretrained per fold if needed).
    Pretrained,
    /// The same architecture, randomly initialised (the baseline).
    Random,
}

/// Settings of one evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Protocol.
    pub protocol: Protocol,
    /// Representations to probe (features are extracted once for all).
    pub branches: Vec<BranchSel>,
    /// Pretrained or random encoders.
    pub init: InitKind,
    /// Probe settings.
    pub probe: LinearProbeConfig,
    /// Data directory (default: the run's).
    pub data_dir: Option<PathBuf>,
    /// Clips per feature-extraction batch.
    pub batch_size: usize,
    /// Loader threads.
    pub workers: usize,
    /// Device.
    pub device: String,
}

/// The result of one held-out fold.
#[derive(Clone, Debug, Serialize)]
pub struct FoldResult {
    /// Held-out fold.
    pub test_fold: u8,
    /// Folds of the probe's training clips (and of pretraining).
    pub train_folds: Vec<u8>,
    /// Run directory of the encoders (none for random init).
    pub run_dir: Option<PathBuf>,
    /// Top-1 on the test fold (%).
    pub top1: f64,
    /// Top-5 on the test fold (%).
    pub top5: f64,
    /// Top-1 on the probe's training clips (%).
    pub train_top1: f64,
    /// Clips the probe was trained on.
    pub probe_train_clips: Vec<String>,
    /// Clips it was tested on.
    pub test_clips: Vec<String>,
}

/// A whole evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Protocol.
    pub protocol: Protocol,
    /// Representation.
    pub branch: BranchSel,
    /// Encoder initialisation.
    pub init: InitKind,
    /// Per-fold results.
    pub folds: Vec<FoldResult>,
    /// Mean top-1 over folds (%).
    pub mean_top1: f64,
    /// Standard deviation of top-1 over folds (percentage points).
    pub std_top1: f64,
    /// Probe settings.
    pub probe: LinearProbeConfig,
}

/// Mean and population std.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
    )
}

/// Train (the fold run's four folds) and test features of `enc`.
pub fn fold_features(
    enc: &Encoders,
    cfg: &PretrainConfig,
    index: &Arc<Esc50Index>,
    run: &FoldRun,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Result<(Features, Features)> {
    let batches = |folds: &[u8]| {
        data::eval_batches(
            index.clone(),
            folds,
            cfg.sample_rate,
            cfg.clip_len(),
            batch_size,
            workers,
            device,
        )
    };
    let train = enc.features(batches(&run.train_folds)?)?;
    let test = enc.features(batches(&[run.test_fold])?)?;
    Ok((train, test))
}

/// Probe + saved head for one fold: accuracy from the core's linear probe on
/// standardised features; with `head_dir`, the `classify` head is trained on
/// the same features and written there.
#[allow(clippy::too_many_arguments)]
pub fn probe_fold(
    train: &Features,
    test: &Features,
    index: &Esc50Index,
    run: &FoldRun,
    sel: BranchSel,
    probe: &LinearProbeConfig,
    run_dir: Option<&Path>,
    head_dir: Option<&Path>,
) -> Result<FoldResult> {
    let classes = index.num_classes();
    let (tr, te) = head::standardize(train, test)?;
    let r = linear_probe(&tr, &te, classes, probe)?;
    if let Some(dir) = head_dir {
        let h = Head::fit(train, classes, probe)?;
        let meta = HeadMeta {
            branch: sel,
            classes: index.classes().to_vec(),
            train_folds: run.train_folds.clone(),
            train_top1: h.accuracy(train)?,
        };
        h.save(dir, &meta)?;
    }
    Ok(FoldResult {
        test_fold: run.test_fold,
        train_folds: run.train_folds.clone(),
        run_dir: run_dir.map(Path::to_path_buf),
        top1: r.top1,
        top5: r.top5,
        train_top1: r.train_top1,
        probe_train_clips: data::clip_names(index, &run.train_folds)?,
        test_clips: data::clip_names(index, &[run.test_fold])?,
    })
}

/// The run directory holding encoders pretrained without `run.test_fold`:
/// `exp` itself when it was pretrained with that test fold, else
/// `<exp>/fold-k` (pretrained now if it is missing or unfinished).
pub fn fold_run_dir(
    exp: &Path,
    base: &PretrainConfig,
    run: &FoldRun,
    data_dir: &Path,
) -> Result<PathBuf> {
    if base.test_fold == Some(run.test_fold) && pretrain::is_complete(exp, base) {
        return Ok(exp.to_path_buf());
    }
    let dir = exp.join(format!("fold-{}", run.test_fold));
    if dir.join("config.toml").is_file() {
        let c = PretrainConfig::of_run(&dir)?;
        if c.test_fold != Some(run.test_fold) {
            bail!(
                "{}: pretrained with test-fold {:?}, but this directory must hold fold {} out",
                dir.display(),
                c.test_fold,
                run.test_fold
            );
        }
        if pretrain::is_complete(&dir, &c) {
            return Ok(dir);
        }
    }
    let mut cfg = base.clone();
    cfg.test_fold = Some(run.test_fold);
    cfg.exp_dir = dir.clone();
    cfg.data_dir = Some(data_dir.to_path_buf());
    cfg.resolve();
    cfg.validate()?;
    let index = data::open_index(data_dir)?;
    pretrain::announce(&cfg, &index)?;
    pretrain::pretrain_on(&cfg, index, false)?;
    Ok(dir)
}

/// Runs an evaluation of run directory `exp` and writes
/// `<exp>/eval-<protocol>-<branch>[-random].json` for each branch. With
/// pretrained encoders, each fold's run directory also gets the `classify`
/// head of each branch.
pub fn run(exp: &Path, opts: &EvalOptions) -> Result<Vec<EvalReport>> {
    if opts.branches.is_empty() {
        bail!("no --branch to evaluate");
    }
    let need = Encoders::union(&opts.branches);
    let base = PretrainConfig::of_run(exp)?;
    let data_dir = match opts.data_dir.clone().or_else(|| base.data_dir.clone()) {
        Some(d) => d,
        None => bail!(
            "{}: its config has no data-dir; pass --data-dir",
            exp.display()
        ),
    };
    let device = parse_device(&opts.device)?;
    let index = data::open_index(&data_dir)?;
    if opts.init == InitKind::Pretrained
        && opts.protocol == Protocol::Split
        && base.test_fold != Some(5)
    {
        bail!(
            "{}: pretrained with test-fold {:?}, so its encoders have seen fold 5, the test fold of the split protocol; \
             pretrain with --test-fold 5 (or use --protocol folds)",
            exp.display(),
            base.test_fold
        );
    }
    let mut folds: Vec<Vec<FoldResult>> = vec![Vec::new(); opts.branches.len()];
    for run in fold_plan(opts.protocol)? {
        let (enc, run_dir) = match opts.init {
            InitKind::Random => (Encoders::random(&base, need, base.seed, &device)?, None),
            InitKind::Pretrained => {
                let dir = fold_run_dir(exp, &base, &run, &data_dir)?;
                let cfg = PretrainConfig::of_run(&dir)?;
                if cfg.test_fold != Some(run.test_fold) {
                    bail!(
                        "{}: encoders were pretrained with test-fold {:?}, expected {}",
                        dir.display(),
                        cfg.test_fold,
                        run.test_fold
                    );
                }
                (Encoders::load(&dir, &cfg, need, &device)?, Some(dir))
            }
        };
        eprintln!(
            "fold {}: extracting {} features ({} encoders, {}-d)",
            run.test_fold,
            need.name(),
            match opts.init {
                InitKind::Pretrained => "pretrained",
                InitKind::Random => "random-init",
            },
            enc.dim()
        );
        let (train, test) = fold_features(
            &enc,
            &base,
            &index,
            &run,
            opts.batch_size,
            opts.workers,
            &device,
        )?;
        for (i, &b) in opts.branches.iter().enumerate() {
            let (tr, te) = (enc.select(&train, b)?, enc.select(&test, b)?);
            let r = probe_fold(
                &tr,
                &te,
                &index,
                &run,
                b,
                &opts.probe,
                run_dir.as_deref(),
                run_dir.as_deref(),
            )?;
            eprintln!(
                "fold {}, {}: top-1 {:.2}% (probe train {:.2}%)",
                r.test_fold,
                b.name(),
                r.top1,
                r.train_top1
            );
            folds[i].push(r);
        }
    }
    let mut reports = Vec::new();
    for (folds, &b) in folds.into_iter().zip(&opts.branches) {
        let (mean_top1, std_top1) = mean_std(&folds.iter().map(|f| f.top1).collect::<Vec<_>>());
        let report = EvalReport {
            protocol: opts.protocol,
            branch: b,
            init: opts.init,
            folds,
            mean_top1,
            std_top1,
            probe: opts.probe.clone(),
        };
        data::write_json(
            &exp.join(results_name("eval", opts.protocol, b, opts.init)),
            &report,
        )?;
        reports.push(report);
    }
    Ok(reports)
}

/// `<kind>-<protocol>-<branch>[-random].json`.
pub fn results_name(kind: &str, protocol: Protocol, branch: BranchSel, init: InitKind) -> String {
    let p = match protocol {
        Protocol::Folds => "folds",
        Protocol::Split => "split",
    };
    let r = if init == InitKind::Random {
        "-random"
    } else {
        ""
    };
    format!("{kind}-{p}-{}{r}.json", branch.name())
}

/// Prints the per-fold table of a report.
pub fn print_report(title: &str, r: &EvalReport) {
    println!("{title}");
    println!("| test fold | probe train clips | test clips | top-1 | top-5 |");
    println!("|---|---|---|---|---|");
    for f in &r.folds {
        println!(
            "| {} | {} | {} | {:.1}% | {:.1}% |",
            f.test_fold,
            f.probe_train_clips.len(),
            f.test_clips.len(),
            f.top1,
            f.top5
        );
    }
    if r.folds.len() > 1 {
        println!(
            "| mean | | | {:.1}% (std {:.1}) | |",
            r.mean_top1, r.std_top1
        );
    }
}

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
use vicreg_core::recipe::AppConfig;

use anyhow::{bail, Result};
use candle_core::Device;
use datasets::audio::{
    clip_names, eval_batches, fold_plan, open_index, Esc50Index, EvalPlan, EvalView, FoldRun,
    Protocol,
};
use serde::Serialize;
use vicreg_core::eval::{
    chance, mean_std, standardize, BaselineRow, Features, LinearHead, ProbeSettings,
};

use crate::baselines::Baselines;
use crate::config::{parse_device, PretrainConfig};
use crate::head::{self, HeadMeta};
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
    pub probe: ProbeSettings,
    /// What the encoders see of a clip (default: the run's `eval-view`).
    pub view: Option<EvalView>,
    /// Also evaluate the baselines (random init, log-mel statistics, chance).
    pub baselines: bool,
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
    /// Weight decay of the probe (chosen on held-out training clips unless fixed).
    pub probe_wd: f64,
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
    /// What the encoders saw of each clip.
    pub view: EvalView,
    /// Per-fold results.
    pub folds: Vec<FoldResult>,
    /// Mean top-1 over folds (%).
    pub mean_top1: f64,
    /// Standard deviation of top-1 over folds (percentage points).
    pub std_top1: f64,
    /// Probe settings.
    pub probe: ProbeSettings,
    /// The baselines, when they were evaluated alongside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baselines: Option<Baselines>,
}

/// Train (the fold run's four folds) and test features of `enc`, the clips
/// shown as `plan` says.
pub fn fold_features(
    enc: &Encoders,
    plan: &EvalPlan,
    index: &Arc<Esc50Index>,
    run: &FoldRun,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Result<(Features, Features)> {
    let batches =
        |folds: &[u8]| eval_batches(index.clone(), folds, plan, batch_size, workers, device);
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
    view: EvalView,
    probe: &ProbeSettings,
    run_dir: Option<&Path>,
    head_dir: Option<&Path>,
) -> Result<FoldResult> {
    let classes = index.num_classes();
    let (tr, te) = standardize(train, test)?;
    let (r, used) = probe.run(&tr, &te, classes)?;
    if let Some(dir) = head_dir {
        let h = LinearHead::fit(train, classes, &used)?;
        let meta = HeadMeta {
            branch: sel,
            classes: index.classes().to_vec(),
            train_folds: run.train_folds.clone(),
            train_top1: h.accuracy(train)?,
            view,
        };
        head::save(&h, dir, &meta)?;
    }
    Ok(FoldResult {
        test_fold: run.test_fold,
        train_folds: run.train_folds.clone(),
        run_dir: run_dir.map(Path::to_path_buf),
        top1: r.top1,
        top5: r.top5,
        train_top1: r.train_top1,
        probe_wd: used.weight_decay,
        probe_train_clips: clip_names(index, &run.train_folds)?,
        test_clips: clip_names(index, &[run.test_fold])?,
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
    cfg.train.exp_dir = dir.clone();
    cfg.data.data_dir = Some(data_dir.to_path_buf());
    cfg.resolve();
    cfg.validate()?;
    let index = open_index(data_dir)?;
    pretrain::announce(&cfg, &index)?;
    pretrain::pretrain_on(
        &cfg,
        index,
        vicreg_core::engine::ResumeMode::Auto,
        vicreg_core::collective::SingleProcess::group(),
    )?;
    Ok(dir)
}

/// Runs an evaluation of run directory `exp` and writes
/// `<exp>/eval-<protocol>-<branch>[-random][-<view>].json` for each branch
/// (`-<view>` for views other than `full`). With pretrained encoders, each
/// fold's run directory also gets the `classify` head of each branch, and with
/// `baselines` every report carries the baselines (random-init encoders, log-mel
/// statistics, chance), also written to `<exp>/eval-<protocol>-baselines[-<view>].json`.
pub fn run(exp: &Path, opts: &EvalOptions) -> Result<Vec<EvalReport>> {
    let base = PretrainConfig::of_run(exp)?;
    let with_default;
    let opts = if opts.branches.is_empty() {
        with_default = EvalOptions {
            branches: vec![BranchSel::default_for(base.pairing)],
            ..opts.clone()
        };
        &with_default
    } else {
        opts
    };
    let data_dir = match opts.data_dir.clone().or_else(|| base.data.data_dir.clone()) {
        Some(d) => d,
        None => bail!(
            "{}: its config has no data-dir; pass --data-dir",
            exp.display()
        ),
    };
    let index = open_index(&data_dir)?;
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
    let view = opts.view.unwrap_or(base.audio.eval_view);
    let plan = base.audio.eval_plan(&index, view)?;
    let mut reports = probe_encoders(exp, &base, &data_dir, &index, &plan, opts, opts.init)?;
    if opts.baselines && opts.init == InitKind::Pretrained {
        let b = baselines(&base, &data_dir, &index, &plan, opts)?;
        vicreg_core::io::write_json(
            &exp.join(format!(
                "eval-{}-baselines{}.json",
                opts.protocol.name(),
                view_suffix(view)
            )),
            &b,
        )?;
        for r in &mut reports {
            r.baselines = Some(b.clone());
        }
    }
    for r in &reports {
        vicreg_core::io::write_json(
            &exp.join(results_name(
                "eval",
                opts.protocol,
                r.branch,
                opts.init,
                view,
            )),
            r,
        )?;
    }
    Ok(reports)
}

/// Linear probes of the `init` encoders on every fold run of the protocol.
fn probe_encoders(
    exp: &Path,
    base: &PretrainConfig,
    data_dir: &Path,
    index: &Arc<Esc50Index>,
    plan: &EvalPlan,
    opts: &EvalOptions,
    init: InitKind,
) -> Result<Vec<EvalReport>> {
    let need = Encoders::union(&opts.branches);
    let device = parse_device(&opts.device)?;
    let mut folds: Vec<Vec<FoldResult>> = vec![Vec::new(); opts.branches.len()];
    for run in fold_plan(opts.protocol)? {
        let (enc, run_dir) = match init {
            InitKind::Random => (
                Encoders::random(base, need, base.train.seed, &device)?,
                None,
            ),
            InitKind::Pretrained => {
                let dir = fold_run_dir(exp, base, &run, data_dir)?;
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
            "fold {}: extracting {} features ({} encoders, {}-d, {} view)",
            run.test_fold,
            need.name(),
            match init {
                InitKind::Pretrained => "pretrained",
                InitKind::Random => "random-init",
            },
            enc.dim(),
            plan.view.name()
        );
        let (train, test) = fold_features(
            &enc,
            plan,
            index,
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
                index,
                &run,
                b,
                plan.view,
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
            if let Some(dir) = run_dir.as_deref() {
                test_pictures(dir, &format!("test-{}", b.name()), &tr, &te, index)?;
            }
        }
    }
    let mut reports = Vec::new();
    for (folds, &b) in folds.into_iter().zip(&opts.branches) {
        let (mean_top1, std_top1) = mean_std(&folds.iter().map(|f| f.top1).collect::<Vec<_>>());
        let report = EvalReport {
            protocol: opts.protocol,
            branch: b,
            init,
            view: plan.view,
            folds,
            mean_top1,
            std_top1,
            probe: opts.probe.clone(),
            baselines: None,
        };
        reports.push(report);
    }
    Ok(reports)
}

/// Random-init encoders (same branches, view and probe), log-mel statistics, chance.
fn baselines(
    base: &PretrainConfig,
    data_dir: &Path,
    index: &Arc<Esc50Index>,
    plan: &EvalPlan,
    opts: &EvalOptions,
) -> Result<Baselines> {
    // Random init never reads a run directory (no fold runs are looked up).
    let random = probe_encoders(
        Path::new(""),
        base,
        data_dir,
        index,
        plan,
        opts,
        InitKind::Random,
    )?;
    let random_init = random
        .iter()
        .map(|r| {
            let f: Vec<(f64, f64)> = r.folds.iter().map(|f| (f.top1, f.top5)).collect();
            BaselineRow::from_folds(format!("random-init {}", r.branch.name()), &f)
        })
        .collect();
    let mel = base.mel();
    let mut lm = Vec::new();
    for run in fold_plan(opts.protocol)? {
        let (tr, te) = crate::baselines::logmel_fold(
            index,
            &run,
            plan,
            &mel,
            base.audio.active_db,
            opts.batch_size,
            opts.workers,
        )?;
        let (tr, te) = standardize(&tr, &te)?;
        let (r, _) = opts.probe.run(&tr, &te, index.num_classes())?;
        eprintln!(
            "fold {}, log-mel statistics: top-1 {:.2}% (probe train {:.2}%)",
            run.test_fold, r.top1, r.train_top1
        );
        lm.push((r.top1, r.top5));
    }
    let (c1, c5) = chance(index.num_classes());
    Ok(Baselines {
        random_init,
        logmel_statistics: BaselineRow::from_folds(
            format!("log-mel statistics (mean, std of {} bands)", mel.n_mels),
            &lm,
        ),
        chance_top1: c1,
        chance_top5: c5,
    })
}

fn view_suffix(view: EvalView) -> String {
    match view {
        EvalView::Full => String::new(),
        v => format!("-{}", v.name()),
    }
}

/// Prints one table: the pretrained representations, then every baseline.
pub fn print_summary(reports: &[EvalReport]) {
    let Some(b) = reports.iter().find_map(|r| r.baselines.as_ref()) else {
        return;
    };
    println!("pretrained vs baselines (mean over folds, same probe):");
    println!("| representation | top-1 | top-5 |");
    println!("|---|---|---|");
    for r in reports {
        let top5 = r.folds.iter().map(|f| f.top5).sum::<f64>() / r.folds.len().max(1) as f64;
        println!(
            "| pretrained {} ({} view) | {:.1}% | {:.1}% |",
            r.branch.name(),
            r.view.name(),
            r.mean_top1,
            top5
        );
    }
    for row in b
        .random_init
        .iter()
        .chain(std::iter::once(&b.logmel_statistics))
    {
        println!(
            "| {} | {:.1}% | {:.1}% |",
            row.name, row.mean_top1, row.mean_top5
        );
    }
    println!("| chance | {:.1}% | {:.1}% |", b.chance_top1, b.chance_top5);
}

/// `<kind>-<protocol>-<branch>[-random][-<view>].json` (no view suffix for `full`).
pub fn results_name(
    kind: &str,
    protocol: Protocol,
    branch: BranchSel,
    init: InitKind,
    view: EvalView,
) -> String {
    let r = if init == InitKind::Random {
        "-random"
    } else {
        ""
    };
    format!(
        "{kind}-{}-{}{r}{}.json",
        protocol.name(),
        branch.name(),
        view_suffix(view)
    )
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

/// The t-SNE map of a fold's test representations (training representations
/// added when the test fold is small, so the map has structure to show)
/// coloured by class, and the collapse pictures, into `dir` as
/// `<prefix>-map.svg`, `<prefix>-std.svg`, `<prefix>-correlation.svg`.
fn test_pictures(
    dir: &Path,
    prefix: &str,
    train: &Features,
    test: &Features,
    index: &Esc50Index,
) -> Result<()> {
    let f = if test.len() >= 200 {
        test.clone()
    } else {
        Features::new(
            candle_core::Tensor::cat(&[&train.x, &test.x], 0)?,
            train.labels.iter().chain(&test.labels).copied().collect(),
        )?
    };
    if f.len() < 4 {
        return Ok(());
    }
    let pics = vicreg_core::insight::draw_pictures(
        dir,
        prefix,
        &f.x,
        &f.labels,
        index.classes(),
        &vicreg_core::insight::TsneConfig::default(),
    )?;
    eprintln!(
        "map of {} clips: {} (2-D 5-NN accuracy {:.1}%)",
        pics.points,
        pics.map.display(),
        100.0 * pics.knn_2d
    );
    Ok(())
}

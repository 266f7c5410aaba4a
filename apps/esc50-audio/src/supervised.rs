//! `esc50-audio supervised`: the baseline row of the paper's table — the same
//! encoder trained from random initialisation with labels and cross-entropy
//! (encoder + linear head, SGD momentum 0.9, cosine schedule, via
//! `vicreg_core::eval::finetune`), on the training folds only, tested on the
//! held-out fold after the last epoch.
//!
//! Each fold's run directory gets `config.toml` (the encoder settings, with
//! its `test-fold`), `<branch>-encoder.safetensors`, `supervised.jsonl`
//! (per-epoch accuracies) and a `classify` head fitted on the trained
//! encoder's frozen features of the training folds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use datasets::audio::{
    eval_batches, fold_plan, open_index, to_labelled, train_loader, Esc50Index, EvalInput,
    EvalPlan, EvalView, FoldRun, Protocol,
};
use vicreg_core::eval::{finetune, EpochAccuracy, FinetuneConfig, LabelledBatches};
use vicreg_core::model::Encoder;
use vicreg_core::ParamStore;

use crate::config::{parse_device, PretrainConfig};
use crate::evaluate::{self, EvalReport, InitKind};
use crate::model::{self, BranchSel, Encoders};

/// Settings of a supervised run.
#[derive(Clone, Debug)]
pub struct SupervisedOptions {
    /// Protocol.
    pub protocol: Protocol,
    /// Which encoder (wave or spec).
    pub branch: BranchSel,
    /// Epochs.
    pub epochs: usize,
    /// Clips per step.
    pub batch_size: usize,
    /// Peak learning rate of encoder and head.
    pub lr: f64,
    /// Weight decay.
    pub wd: f64,
    /// Probe settings of the saved `classify` head.
    pub probe: vicreg_core::eval::ProbeSettings,
    /// What the encoder sees of a test clip (default: the config's `eval-view`);
    /// the network's own per-epoch accuracy uses the whole clip for `windows`.
    pub view: Option<EvalView>,
    /// Loader threads.
    pub workers: usize,
}

/// Trains `enc` (variables in `store`) on `run.train_folds`, testing on `run.test_fold` after each epoch.
#[allow(clippy::too_many_arguments)]
fn train_encoder<E: Encoder<Input = Tensor>>(
    enc: &E,
    store: &ParamStore,
    cfg: &PretrainConfig,
    index: &Arc<Esc50Index>,
    run: &FoldRun,
    opts: &SupervisedOptions,
    plan: &EvalPlan,
    log: &Path,
    device: &Device,
) -> Result<EpochAccuracy> {
    let loader = train_loader(
        index.clone(),
        &run.train_folds,
        cfg.audio.sample_rate,
        cfg.audio.train_views(),
        opts.batch_size,
        opts.workers,
        cfg.train.seed,
        device,
    )?;
    let steps = loader.steps_per_epoch();
    let mut train = |epoch: usize| -> vicreg_core::Result<LabelledBatches<'static, Tensor>> {
        Ok(Box::new(
            loader.iter_epoch(epoch as u64, 0).map(to_labelled),
        ))
    };
    let net_plan = EvalPlan {
        view: match plan.view {
            EvalView::Windows => EvalView::Full,
            v => v,
        },
        ..plan.clone()
    };
    let (idx, bs, w, dev) = (index.clone(), opts.batch_size, opts.workers, device.clone());
    let test_fold = [run.test_fold];
    let mut eval = || -> vicreg_core::Result<LabelledBatches<'static, Tensor>> {
        let it = eval_batches(idx.clone(), &test_fold, &net_plan, bs, w, &dev)
            .map_err(|e| vicreg_core::Error::invalid(format!("{e:#}")))?;
        Ok(Box::new(it.map(|r| match r? {
            (EvalInput::Clips(x), y) => Ok((x, y)),
            (EvalInput::Windows(..), _) => Err(vicreg_core::Error::invalid(
                "supervised accuracy takes whole clips",
            )),
        })))
    };
    let fcfg = FinetuneConfig {
        epochs: opts.epochs,
        lr_backbone: opts.lr,
        lr_head: opts.lr,
        weight_decay: opts.wd,
        seed: cfg.train.seed,
    };
    let _ = std::fs::remove_file(log);
    let mut on_epoch = |a: &EpochAccuracy| -> vicreg_core::Result<()> {
        use std::io::Write;
        if !cfg.train.quiet {
            eprintln!(
                "  epoch {}: train loss {:.4}, test top-1 {:.2}%",
                a.epoch + 1,
                a.train_loss,
                a.top1
            );
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| vicreg_core::Error::io(log, e))?;
        let line = serde_json::json!({"epoch": a.epoch, "train_loss": a.train_loss, "top1": a.top1, "top5": a.top5});
        writeln!(f, "{line}").map_err(|e| vicreg_core::Error::io(log, e))
    };
    Ok(finetune(
        enc,
        store.trainable_vars(),
        index.num_classes(),
        steps,
        &mut train,
        &mut eval,
        &fcfg,
        &mut on_epoch,
    )?)
}

/// Runs the supervised baseline; `template` supplies the data directory, the
/// run directory and the encoder / audio settings. Writes
/// `<exp-dir>/supervised-<protocol>-<branch>.json`.
pub fn run(template: &PretrainConfig, opts: &SupervisedOptions) -> Result<EvalReport> {
    if opts.branch == BranchSel::Both {
        bail!("supervised trains one encoder: --branch wave or spec");
    }
    if opts.batch_size < 2 {
        bail!("supervised --batch-size must be at least 2 (BatchNorm)");
    }
    let data_dir = template
        .data
        .data_dir
        .clone()
        .context("supervised needs --data-dir")?;
    let device = parse_device(&template.train.device)?;
    let index = open_index(&data_dir)?;
    let plan = template
        .audio
        .eval_plan(&index, opts.view.unwrap_or(template.audio.eval_view))?;
    let exp = template.train.exp_dir.clone();
    let mut folds = Vec::new();
    for run in fold_plan(opts.protocol)? {
        let dir: PathBuf = match opts.protocol {
            Protocol::Split => exp.clone(),
            Protocol::Folds => exp.join(format!("fold-{}", run.test_fold)),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cfg = template.clone();
        cfg.test_fold = Some(run.test_fold);
        cfg.train.exp_dir = dir.clone();
        cfg.resolve();
        cfg.validate()?;
        let text = toml::to_string(&cfg)?;
        vicreg_core::io::write_atomic(&dir.join("config.toml"), text.as_bytes())?;
        eprintln!(
            "supervised {} encoder, fold {} held out: {} epochs on folds {:?} -> {}",
            opts.branch.name(),
            run.test_fold,
            opts.epochs,
            run.train_folds,
            dir.display()
        );
        let store = ParamStore::new(cfg.train.seed);
        let vb = store.var_builder(DType::F32, &device);
        let log = dir.join("supervised.jsonl");
        let file = dir.join(format!("{}-encoder.safetensors", opts.branch.name()));
        let (acc, enc) = if opts.branch == BranchSel::Wave {
            let net = model::wave_encoder(&cfg, vb)?;
            let acc = train_encoder(&net, &store, &cfg, &index, &run, opts, &plan, &log, &device)?;
            (
                acc,
                Encoders {
                    wave: Some((net, store.clone())),
                    spec: None,
                },
            )
        } else {
            let net = model::spec_encoder(&cfg, vb)?;
            let acc = train_encoder(&net, &store, &cfg, &index, &run, opts, &plan, &log, &device)?;
            (
                acc,
                Encoders {
                    wave: None,
                    spec: Some((net, store.clone())),
                },
            )
        };
        store.save_safetensors(&file)?;
        let (train, test) = evaluate::fold_features(
            &enc,
            &plan,
            &index,
            &run,
            opts.batch_size,
            opts.workers,
            &device,
        )?;
        let mut r = evaluate::probe_fold(
            &train,
            &test,
            &index,
            &run,
            opts.branch,
            plan.view,
            &opts.probe,
            Some(&dir),
            Some(&dir),
        )?;
        // The supervised network's own accuracy (encoder + jointly trained head).
        r.top1 = acc.top1;
        r.top5 = acc.top5;
        eprintln!("fold {}: supervised top-1 {:.2}%", run.test_fold, r.top1);
        folds.push(r);
    }
    let (mean_top1, std_top1) =
        vicreg_core::eval::mean_std(&folds.iter().map(|f| f.top1).collect::<Vec<_>>());
    let report = EvalReport {
        protocol: opts.protocol,
        branch: opts.branch,
        init: InitKind::Random,
        view: plan.view,
        folds,
        mean_top1,
        std_top1,
        probe: opts.probe.clone(),
        baselines: None,
    };
    vicreg_core::io::write_json(
        &exp.join(evaluate::results_name(
            "supervised",
            opts.protocol,
            opts.branch,
            InitKind::Pretrained,
            plan.view,
        )),
        &report,
    )?;
    Ok(report)
}

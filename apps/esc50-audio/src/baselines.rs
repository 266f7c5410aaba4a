//! The baselines `eval` reports beside every pretrained evaluation, so a user
//! sees at once whether pretraining helped: the same encoders at random
//! initialisation (same view, same probe), log-mel statistics with the same
//! linear probe, and chance.
//!
//! Log-mel statistics: `encoders::audio::logmel_statistics` of the run's
//! log-mel front end over whole clips (`2 * n_mels` features per clip, the
//! frames within `active-db` of the loudest), rows and chance from
//! `vicreg_core::eval`.

use std::sync::Arc;

use anyhow::Result;
use candle_core::Device;
use datasets::audio::{eval_batches, Esc50Index, EvalInput, EvalPlan, EvalView, FoldRun};
use encoders::audio::{logmel_statistics, LogMelConfig, LogMelSpectrogram};
use serde::Serialize;
use vicreg_core::eval::{BaselineRow, Features};

/// Every baseline of one evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct Baselines {
    /// The same encoders, randomly initialised (one row per evaluated branch).
    pub random_init: Vec<BaselineRow>,
    /// Log-mel statistics + linear probe.
    pub logmel_statistics: BaselineRow,
    /// Chance top-1 (%): 100 / classes.
    pub chance_top1: f64,
    /// Chance top-5 (%): 100 * min(5, classes) / classes.
    pub chance_top5: f64,
}

/// Log-mel statistics of the clips of `folds` (whole clips, as the `full` view).
pub fn logmel_features(
    index: &Arc<Esc50Index>,
    folds: &[u8],
    plan: &EvalPlan,
    mel: &LogMelConfig,
    active_db: f64,
    batch_size: usize,
    workers: usize,
) -> Result<Features> {
    let front = LogMelSpectrogram::new(mel)?;
    let full = EvalPlan {
        view: EvalView::Full,
        ..plan.clone()
    };
    let batches = eval_batches(
        index.clone(),
        folds,
        &full,
        batch_size,
        workers,
        &Device::Cpu,
    )?;
    Ok(vicreg_core::eval::extract_with(
        |x: &EvalInput| match x {
            EvalInput::Clips(t) => logmel_statistics(&front, t, active_db)
                .map_err(|e| vicreg_core::Error::invalid(format!("{e:#}"))),
            EvalInput::Windows(..) => Err(vicreg_core::Error::invalid(
                "log-mel statistics take whole clips",
            )),
        },
        batches,
    )?)
}

/// Train and test log-mel statistics of a fold run.
pub fn logmel_fold(
    index: &Arc<Esc50Index>,
    run: &FoldRun,
    plan: &EvalPlan,
    mel: &LogMelConfig,
    active_db: f64,
    batch_size: usize,
    workers: usize,
) -> Result<(Features, Features)> {
    let f = |folds: &[u8]| logmel_features(index, folds, plan, mel, active_db, batch_size, workers);
    Ok((f(&run.train_folds)?, f(&[run.test_fold])?))
}

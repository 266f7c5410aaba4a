//! The baselines `eval` reports beside every pretrained evaluation, so a user
//! sees at once whether pretraining helped: the same encoders at random
//! initialisation (same view, same probe), log-mel statistics with the same
//! linear probe, and chance.
//!
//! Log-mel statistics: the run's log-mel front end (decibels, before the
//! network's normalisation) over the whole clip; for each mel band the mean
//! and the standard deviation over the frames that hold sound (a frame's
//! mean mel power within `active-db` of the loudest frame's; all frames when
//! none does): `2 * n_mels` features per clip.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{Device, Tensor};
use datasets::audio::{Esc50Index, EvalView};
use encoders::audio::{LogMelConfig, LogMelSpectrogram};
use serde::Serialize;
use vicreg_core::eval::Features;

use crate::data::{self, EvalInput, EvalPlan, FoldRun};

/// One baseline's accuracy.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineRow {
    /// What it is, e.g. `random-init wave` or `log-mel statistics (2 x 64)`.
    pub name: String,
    /// Mean top-1 over folds (%).
    pub mean_top1: f64,
    /// Mean top-5 over folds (%).
    pub mean_top5: f64,
    /// Top-1 of each fold (%), in protocol order.
    pub fold_top1: Vec<f64>,
}

impl BaselineRow {
    /// A row from per-fold `(top1, top5)`.
    pub fn from_folds(name: String, folds: &[(f64, f64)]) -> Self {
        let n = folds.len().max(1) as f64;
        Self {
            name,
            mean_top1: folds.iter().map(|f| f.0).sum::<f64>() / n,
            mean_top5: folds.iter().map(|f| f.1).sum::<f64>() / n,
            fold_top1: folds.iter().map(|f| f.0).collect(),
        }
    }
}

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

/// `(n, 2 * n_mels)` log-mel statistics of one `(n, samples)` batch.
fn batch_statistics(front: &LogMelSpectrogram, x: &Tensor, active_db: f64) -> Result<Tensor> {
    let rows = x.to_vec2::<f32>()?;
    let n_mels = front.config().n_mels;
    let mut out = Vec::with_capacity(rows.len() * 2 * n_mels);
    for clip in &rows {
        out.extend(front.statistics(clip, active_db)?);
    }
    Ok(Tensor::from_vec(
        out,
        (rows.len(), 2 * n_mels),
        &Device::Cpu,
    )?)
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
    let batches = data::eval_batches(
        index.clone(),
        folds,
        &full,
        batch_size,
        workers,
        &Device::Cpu,
    )?;
    Ok(vicreg_core::eval::extract_with(
        |x: &EvalInput| match x {
            EvalInput::Clips(t) => batch_statistics(&front, t, active_db)
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

/// Chance `(top-1, top-5)` in % for `classes` classes.
pub fn chance(classes: usize) -> (f64, f64) {
    let c = classes.max(1) as f64;
    (100.0 / c, 100.0 * (classes.min(5) as f64) / c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_see_only_the_sound_of_a_padded_clip() {
        let mel = LogMelConfig {
            sample_rate: 8000.0,
            n_fft: 256,
            hop_length: 64,
            win_length: 256,
            n_mels: 8,
            ..LogMelConfig::esc50()
        };
        let front = LogMelSpectrogram::new(&mel).unwrap();
        // A tone in the first fifth of the clip, then digital silence; and the tone alone.
        let tone: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let mut padded = tone.clone();
        padded.resize(8000, 0.0);
        let a = batch_statistics(
            &front,
            &Tensor::from_vec(padded, (1, 8000), &Device::Cpu).unwrap(),
            -30.0,
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
        let b = batch_statistics(
            &front,
            &Tensor::from_vec(tone, (1, 1600), &Device::Cpu).unwrap(),
            -30.0,
        )
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
        // Band means over the sound agree whether or not the silence is there.
        for m in 0..8 {
            assert!(
                (a[0][m] - b[0][m]).abs() < 3.0,
                "band {m}: {} vs {}",
                a[0][m],
                b[0][m]
            );
        }
        assert_eq!(chance(10), (10.0, 50.0));
        assert_eq!(chance(3).1, 100.0);
    }
}

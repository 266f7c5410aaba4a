//! ESC-50 data for the app: opening the index, which folds each stage of a
//! protocol may read (the leak-free plans), and labelled waveform batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use datasets::audio::{
    collate_labelled_waveforms, collate_windowed, train_fold_list, wav_seconds, ActivityConfig,
    AudioViewConfig, Esc50Index, Esc50Labelled, Esc50Windows, EvalView, ESC50_FOLDS,
};
use datasets::loader::{Loader, LoaderConfig};
use serde::Serialize;

/// Opens `<dir>/meta/esc50.csv`, with a hint on the expected layout when it is missing.
pub fn open_index(dir: &Path) -> Result<Arc<Esc50Index>> {
    if !dir.is_dir() {
        bail!(
            "data directory {} does not exist or is not a directory",
            dir.display()
        );
    }
    let csv = dir.join("meta").join("esc50.csv");
    if !csv.is_file() {
        bail!(
            "{}: missing; expected the ESC-50 layout (meta/esc50.csv with columns \
             filename,fold,target,category,esc10,src_file,take and audio/*.wav)",
            csv.display()
        );
    }
    Ok(Arc::new(Esc50Index::load(dir)?))
}

/// The folds one evaluation run may use: the encoder is pretrained on
/// `train_folds` only, the probe is trained on `train_folds` and tested on
/// `test_fold`, which nothing else ever reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FoldRun {
    /// The held-out fold (1..=5).
    pub test_fold: u8,
    /// The other four folds.
    pub train_folds: Vec<u8>,
}

impl FoldRun {
    /// The run that holds out `test_fold`.
    pub fn holding_out(test_fold: u8) -> Result<Self> {
        Ok(Self {
            test_fold,
            train_folds: train_fold_list(test_fold)?,
        })
    }
}

/// The evaluation protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// 5-fold cross-validation: five runs, each holding out one fold.
    Folds,
    /// One split: folds 1-4 (1600 clips) vs fold 5 (400 clips).
    Split,
}

/// The runs of a protocol, in order.
pub fn fold_plan(protocol: Protocol) -> Result<Vec<FoldRun>> {
    match protocol {
        Protocol::Folds => (1..=ESC50_FOLDS).map(FoldRun::holding_out).collect(),
        Protocol::Split => Ok(vec![FoldRun::holding_out(ESC50_FOLDS)?]),
    }
}

/// The file names of the clips of `folds`, in index order.
pub fn clip_names(index: &Esc50Index, folds: &[u8]) -> Result<Vec<String>> {
    Ok(index
        .select_folds(folds)?
        .into_iter()
        .map(|i| index.clips()[i].filename.clone())
        .collect())
}

/// The longest clip evaluation shows an encoder whole, seconds (longer clips
/// are centre-cropped to it, with a note on stderr).
pub const MAX_EVAL_SECONDS: f64 = 60.0;

/// How evaluation turns every clip of a data set into encoder input: the view,
/// the length every clip is padded or cropped to (`full_len`: the longest clip
/// of the set, at least one training window) and the training window.
#[derive(Clone, Debug)]
pub struct EvalPlan {
    /// The view.
    pub view: EvalView,
    /// Samples each clip is centre-padded / cropped to before `full` or `windows`.
    pub full_len: usize,
    /// Samples of a training view (`center` crops and `windows` use it).
    pub window_len: usize,
    /// What counts as sound (`windows`).
    pub activity: ActivityConfig,
    /// Model sample rate, Hz.
    pub sample_rate: u32,
}

impl EvalPlan {
    /// The plan of `view` for the clips of `index` under run config `cfg`
    /// (reads every wav header once to find the longest clip).
    pub fn new(
        cfg: &crate::config::PretrainConfig,
        index: &Esc50Index,
        view: EvalView,
    ) -> Result<Self> {
        let window_len = cfg.clip_len();
        let mut longest = 0.0f64;
        if view != EvalView::Center {
            for c in index.clips() {
                longest = longest.max(wav_seconds(&index.audio_path(c))?);
            }
        }
        if longest > MAX_EVAL_SECONDS {
            eprintln!(
                "note: the longest clip is {longest:.1} s; evaluation shows encoders at most {MAX_EVAL_SECONDS} s (centred)"
            );
            longest = MAX_EVAL_SECONDS;
        }
        let full_len = ((longest * cfg.sample_rate as f64).ceil() as usize).max(window_len);
        Ok(Self {
            view,
            full_len,
            window_len,
            activity: cfg.activity(),
            sample_rate: cfg.sample_rate,
        })
    }

    /// The encoder input of one decoded clip (`classify`): a `(1, L)` clip or
    /// `(W, window_len)` windows with `(1, W)` weights.
    pub fn input_of(&self, wave: &[f32], device: &Device) -> Result<EvalInput> {
        use datasets::audio::augment::center_crop_or_pad;
        Ok(match self.view {
            EvalView::Center => {
                let x = center_crop_or_pad(wave, self.window_len);
                EvalInput::Clips(Tensor::from_vec(x, (1, self.window_len), device)?)
            }
            EvalView::Full => {
                let len = wave
                    .len()
                    .clamp(self.window_len, self.full_len.max(self.window_len));
                let x = center_crop_or_pad(wave, len);
                EvalInput::Clips(Tensor::from_vec(x, (1, len), device)?)
            }
            EvalView::Windows => {
                let (w, wt) = self.activity.eval_windows(wave, self.window_len);
                let n = w.len();
                EvalInput::Windows(
                    Tensor::from_vec(w.concat(), (n, self.window_len), device)?,
                    Tensor::from_vec(wt, (1, n), device)?,
                )
            }
        })
    }
}

/// A batch as evaluation feeds it to frozen encoders.
#[derive(Clone, Debug)]
pub enum EvalInput {
    /// `(B, L)` waveforms (`full` and `center` views).
    Clips(Tensor),
    /// `(B * W, window_len)` windows, clip after clip, and `(B, W)` 0/1 weights
    /// (`windows` view: a clip's representation is the weighted mean of its windows').
    Windows(Tensor, Tensor),
}

/// Labelled evaluation batches: `(input, labels)` in index order.
pub type EvalBatches = Box<dyn Iterator<Item = vicreg_core::Result<(EvalInput, Vec<usize>)>>>;

/// Labelled evaluation batches of the clips of `folds`, unaugmented, in index
/// order, shown to the encoders as `plan` says.
pub fn eval_batches(
    index: Arc<Esc50Index>,
    folds: &[u8],
    plan: &EvalPlan,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Result<EvalBatches> {
    let dev = device.clone();
    let cfg = LoaderConfig {
        batch_size,
        num_workers: workers,
        shuffle: false,
        drop_last: false,
        policy: datasets::image::BadSamplePolicy::Strict,
        ..LoaderConfig::default()
    };
    if plan.view == EvalView::Windows {
        let ds = Esc50Windows::new(
            index,
            folds,
            plan.sample_rate,
            plan.full_len,
            plan.window_len,
            plan.activity,
        )?;
        let wl = plan.window_len;
        let loader = Loader::new(Arc::new(ds), cfg, move |items| {
            collate_windowed(items, wl, &dev)
        })?;
        return Ok(Box::new(loader.iter_epoch(0, 0).map(|r| {
            let (x, w, y) = r.map_err(|e| vicreg_core::Error::invalid(e.to_string()))?;
            Ok((EvalInput::Windows(x, w), targets(&y)?))
        })));
    }
    let len = match plan.view {
        EvalView::Center => plan.window_len,
        _ => plan.full_len,
    };
    let ds = Esc50Labelled::new(index, folds, plan.sample_rate, AudioViewConfig::eval(len))?;
    let loader = Loader::new(Arc::new(ds), cfg, move |items| {
        collate_labelled_waveforms(items, &dev)
    })?;
    Ok(Box::new(loader.iter_epoch(0, 0).map(|r| {
        let (x, y) = to_labelled(r)?;
        Ok((EvalInput::Clips(x), y))
    })))
}

fn targets(y: &Tensor) -> vicreg_core::Result<Vec<usize>> {
    Ok(y.to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

/// A loader of augmented labelled clips of `folds` (supervised training),
/// shuffled per epoch; the last incomplete batch is kept unless it has one clip.
#[allow(clippy::too_many_arguments)]
pub fn train_loader(
    index: Arc<Esc50Index>,
    folds: &[u8],
    sample_rate: u32,
    views: AudioViewConfig,
    batch_size: usize,
    workers: usize,
    seed: u64,
    device: &Device,
) -> Result<Loader<Esc50Labelled, (Tensor, Tensor)>> {
    let ds = Esc50Labelled::new(index, folds, sample_rate, views)?;
    let n = datasets::Dataset::len(&ds);
    let dev = device.clone();
    Ok(Loader::new(
        Arc::new(ds),
        LoaderConfig {
            batch_size,
            num_workers: workers,
            seed,
            shuffle: true,
            // BatchNorm in train mode cannot use a batch of one.
            drop_last: n % batch_size == 1,
            // Supervised baselines see every clip or fail naming the bad one.
            policy: datasets::image::BadSamplePolicy::Strict,
            ..LoaderConfig::default()
        },
        move |items| collate_labelled_waveforms(items, &dev),
    )?)
}

/// `(waveforms, targets)` -> `(waveforms, labels)`, errors converted for the core.
pub fn to_labelled(
    r: datasets::Result<(Tensor, Tensor)>,
) -> vicreg_core::Result<(Tensor, Vec<usize>)> {
    let (x, y) = r.map_err(|e| vicreg_core::Error::invalid(e.to_string()))?;
    Ok((
        x,
        y.to_vec1::<u32>()?
            .into_iter()
            .map(|v| v as usize)
            .collect(),
    ))
}

/// The cache folder of built-in data: `$VICREG_CACHE`, else `~/.cache/vicreg-rs`, else `./.cache`.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VICREG_CACHE") {
        return PathBuf::from(d);
    }
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() => PathBuf::from(h).join(".cache").join("vicreg-rs"),
        _ => PathBuf::from(".cache"),
    }
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    vicreg_core::io::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_keeps_its_test_fold_out_of_training() {
        for p in [Protocol::Folds, Protocol::Split] {
            for run in fold_plan(p).unwrap() {
                assert!(!run.train_folds.contains(&run.test_fold));
                assert_eq!(run.train_folds.len(), 4);
            }
        }
        let folds: Vec<u8> = fold_plan(Protocol::Folds)
            .unwrap()
            .iter()
            .map(|r| r.test_fold)
            .collect();
        assert_eq!(folds, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            fold_plan(Protocol::Split).unwrap(),
            vec![FoldRun {
                test_fold: 5,
                train_folds: vec![1, 2, 3, 4]
            }]
        );
    }
}

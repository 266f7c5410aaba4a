//! Labelled batches of a set in the ESC-50 layout as evaluation and
//! supervised training feed them to encoders: how every clip becomes encoder
//! input under an [`EvalView`] ([`EvalPlan`], [`EvalInput`]), the unaugmented
//! evaluation batches of some folds ([`eval_batches`]), and the shuffled,
//! augmented batches of a supervised baseline ([`train_loader`]).
//!
//! Waveforms are `f32` at the model's rate; lengths are in samples; labels
//! are the index's targets (`0..num_classes`).

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::audio::activity::{ActivityConfig, EvalView};
use crate::audio::augment::{center_crop_or_pad, AudioViewConfig};
use crate::audio::dataset::{
    collate_labelled_waveforms, collate_windowed, Esc50Labelled, Esc50Windows,
};
use crate::audio::esc50::Esc50Index;
use crate::audio::wav::wav_seconds;
use crate::image::BadSamplePolicy;
use crate::loader::{labels_of, to_labelled, Loader, LoaderConfig};
use crate::Result;

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
    /// The plan of `view` for the clips of `index` with training windows of
    /// `window_len` samples at `sample_rate` Hz (reads every wav header once
    /// to find the longest clip, except for `center`, which needs none).
    pub fn new(
        index: &Esc50Index,
        view: EvalView,
        window_len: usize,
        sample_rate: u32,
        activity: ActivityConfig,
    ) -> Result<Self> {
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
        let full_len = ((longest * sample_rate as f64).ceil() as usize).max(window_len);
        Ok(Self {
            view,
            full_len,
            window_len,
            activity,
            sample_rate,
        })
    }

    /// The plan for single files of any length (`classify`): no set to
    /// measure, so `full` shows up to [`MAX_EVAL_SECONDS`].
    pub fn for_files(
        view: EvalView,
        window_len: usize,
        sample_rate: u32,
        activity: ActivityConfig,
    ) -> Self {
        Self {
            view,
            full_len: (MAX_EVAL_SECONDS * sample_rate as f64) as usize,
            window_len,
            activity,
            sample_rate,
        }
    }

    /// The encoder input of one decoded clip: a `(1, L)` clip or
    /// `(W, window_len)` windows with `(1, W)` weights.
    pub fn input_of(&self, wave: &[f32], device: &Device) -> Result<EvalInput> {
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
/// order, shown to the encoders as `plan` says. Every clip must load
/// ([`BadSamplePolicy::Strict`]).
pub fn eval_batches(
    index: Arc<Esc50Index>,
    folds: &[u8],
    plan: &EvalPlan,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Result<EvalBatches> {
    let dev = device.clone();
    let cfg = LoaderConfig::evaluation(batch_size, workers);
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
            let (x, w, y) = r?;
            Ok((EvalInput::Windows(x, w), labels_of(&y)?))
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

/// A loader of augmented labelled clips of `folds` (supervised training),
/// shuffled per epoch with `seed`; the last incomplete batch is kept unless
/// it has one clip (BatchNorm in train mode cannot use a batch of one).
/// Every clip must load ([`BadSamplePolicy::Strict`]).
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
    let n = crate::Dataset::len(&ds);
    let dev = device.clone();
    Loader::new(
        Arc::new(ds),
        LoaderConfig {
            batch_size,
            num_workers: workers,
            seed,
            shuffle: true,
            drop_last: n % batch_size == 1,
            policy: BadSamplePolicy::Strict,
            ..LoaderConfig::default()
        },
        move |items| collate_labelled_waveforms(items, &dev),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(view: EvalView) -> EvalPlan {
        EvalPlan::for_files(view, 100, 1000, ActivityConfig::for_rate(1000, -30.0))
    }

    #[test]
    fn input_of_follows_the_view() {
        // 250 samples: a tone in the first 50, then digital silence.
        let mut wave: Vec<f32> = (0..50).map(|i| (i as f32 * 0.5).sin()).collect();
        wave.resize(250, 0.0);
        let d = Device::Cpu;
        match plan(EvalView::Center).input_of(&wave, &d).unwrap() {
            EvalInput::Clips(x) => assert_eq!(x.dims(), &[1, 100]),
            EvalInput::Windows(..) => panic!("center is one clip"),
        }
        match plan(EvalView::Full).input_of(&wave, &d).unwrap() {
            EvalInput::Clips(x) => assert_eq!(x.dims(), &[1, 250]),
            EvalInput::Windows(..) => panic!("full is one clip"),
        }
        match plan(EvalView::Windows).input_of(&wave, &d).unwrap() {
            EvalInput::Windows(x, w) => {
                let n = w.dim(1).unwrap();
                assert_eq!(x.dims(), &[n, 100]);
                assert_eq!(n, ActivityConfig::window_count(250, 100));
                // The sound is in the first window only; the silent ones weigh 0.
                let w: Vec<f32> = w.squeeze(0).unwrap().to_vec1().unwrap();
                assert_eq!(w[0], 1.0);
                assert_eq!(*w.last().unwrap(), 0.0);
            }
            EvalInput::Clips(..) => panic!("windows are windows"),
        }
        // A file shorter than a window is padded to one window.
        match plan(EvalView::Full).input_of(&wave[..40], &d).unwrap() {
            EvalInput::Clips(x) => assert_eq!(x.dims(), &[1, 100]),
            EvalInput::Windows(..) => panic!("full is one clip"),
        }
    }
}

//! ESC-50 datasets implementing [`Dataset`]: two-view pretraining and labelled clips.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use vicreg_core::SeededRng;

use crate::audio::activity::ActivityConfig;
use crate::audio::augment::{
    center_crop_or_pad, mix_background, random_crop_or_pad, AudioViewConfig,
};
use crate::audio::esc50::Esc50Index;
use crate::audio::wav::load_wav;
use crate::{Dataset, Error, Result};

/// The clips of some folds of an ESC-50 index, decoded at `sample_rate`.
#[derive(Clone, Debug)]
struct FoldSubset {
    index: Arc<Esc50Index>,
    rows: Vec<usize>,
    sample_rate: u32,
}

impl FoldSubset {
    fn new(index: Arc<Esc50Index>, folds: &[u8], sample_rate: u32) -> Result<Self> {
        if sample_rate == 0 {
            return Err(Error::Config("sample_rate must be > 0".into()));
        }
        let rows = index.select_folds(folds)?;
        if rows.is_empty() {
            return Err(Error::Layout(format!(
                "{}: no clips in folds {folds:?}",
                index.root().display()
            )));
        }
        Ok(Self {
            index,
            rows,
            sample_rate,
        })
    }

    fn load(&self, i: usize) -> Result<(Vec<f32>, u32)> {
        let row = *self.rows.get(i).ok_or_else(|| {
            Error::Config(format!(
                "index {i} out of range for {} clips",
                self.rows.len()
            ))
        })?;
        let clip = &self.index.clips()[row];
        let wave = load_wav(&self.index.audio_path(clip), self.sample_rate)?;
        Ok((wave, clip.target))
    }

    fn name(&self, i: usize) -> Option<String> {
        let clip = self.index.clips().get(*self.rows.get(i)?)?;
        Some(self.index.audio_path(clip).display().to_string())
    }
}

/// ESC-50 two-view pretraining: `Item = (view_a, view_b)`, two independently augmented
/// waveforms of `views.clip_len` samples at `sample_rate` Hz. Labels are not used.
#[derive(Clone, Debug)]
pub struct Esc50Pretrain {
    subset: FoldSubset,
    views: AudioViewConfig,
}

impl Esc50Pretrain {
    /// The clips of `folds` (1..=5), resampled to `sample_rate`, augmented with `views`.
    pub fn new(
        index: Arc<Esc50Index>,
        folds: &[u8],
        sample_rate: u32,
        views: AudioViewConfig,
    ) -> Result<Self> {
        views.validate()?;
        Ok(Self {
            subset: FoldSubset::new(index, folds, sample_rate)?,
            views,
        })
    }

    /// Target of sample `i` (for diagnostics; not part of the item).
    pub fn target(&self, i: usize) -> u32 {
        self.subset.index.clips()[self.subset.rows[i]].target
    }
}

impl Dataset for Esc50Pretrain {
    type Item = (Vec<f32>, Vec<f32>);

    fn len(&self) -> usize {
        self.subset.rows.len()
    }

    /// Two views; then, for each view in turn, with probability `mix_prob`
    /// another clip of the subset (drawn uniformly, never this one) is decoded,
    /// cropped uniformly to the view's length and mixed in at `mix_db`.
    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let (wave, _) = self.subset.load(index)?;
        let mut a = self.views.apply(&wave, rng);
        let mut b = self.views.apply(&wave, rng);
        let n = self.subset.rows.len();
        if self.views.mix_prob > 0.0 && n > 1 {
            for v in [&mut a, &mut b] {
                if rng.bernoulli(self.views.mix_prob) {
                    let j = (index + 1 + rng.below(n - 1)) % n;
                    let db = rng.uniform_range(self.views.mix_db.0, self.views.mix_db.1);
                    let (other, _) = self.subset.load(j)?;
                    let bg = random_crop_or_pad(&other, v.len(), rng);
                    mix_background(v, &bg, db);
                }
            }
        }
        Ok((a, b))
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        self.subset.name(index)
    }
}

/// Labelled ESC-50 clips: `Item = (waveform, target)`, the waveform `views.clip_len`
/// samples long. Use [`AudioViewConfig::eval`] for deterministic centred clips.
#[derive(Clone, Debug)]
pub struct Esc50Labelled {
    subset: FoldSubset,
    views: AudioViewConfig,
}

impl Esc50Labelled {
    /// The clips of `folds` (1..=5), resampled to `sample_rate`, passed through `views`.
    pub fn new(
        index: Arc<Esc50Index>,
        folds: &[u8],
        sample_rate: u32,
        views: AudioViewConfig,
    ) -> Result<Self> {
        views.validate()?;
        Ok(Self {
            subset: FoldSubset::new(index, folds, sample_rate)?,
            views,
        })
    }

    /// Number of classes of the underlying index.
    pub fn num_classes(&self) -> usize {
        self.subset.index.num_classes()
    }

    /// Targets of all samples, in order.
    pub fn targets(&self) -> Vec<u32> {
        self.subset
            .rows
            .iter()
            .map(|&r| self.subset.index.clips()[r].target)
            .collect()
    }
}

impl Dataset for Esc50Labelled {
    type Item = (Vec<f32>, u32);

    fn len(&self) -> usize {
        self.subset.rows.len()
    }

    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let (wave, target) = self.subset.load(index)?;
        Ok((self.views.apply(&wave, rng), target))
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        self.subset.name(index)
    }
}

/// Labelled ESC-50 clips cut into evaluation windows: `Item = (windows, weights,
/// target)`. Each clip is centre-padded or cropped to `full_len` samples, then cut
/// by [`ActivityConfig::eval_windows`] into `window_count` windows of
/// `window_len` samples (flattened, window after window) with a 0/1 weight each
/// (1: the window holds sound). Every clip gives the same number of windows.
#[derive(Clone, Debug)]
pub struct Esc50Windows {
    subset: FoldSubset,
    full_len: usize,
    window_len: usize,
    activity: ActivityConfig,
}

impl Esc50Windows {
    /// The clips of `folds` at `sample_rate`, as windows of `window_len` samples
    /// over `full_len` samples.
    pub fn new(
        index: Arc<Esc50Index>,
        folds: &[u8],
        sample_rate: u32,
        full_len: usize,
        window_len: usize,
        activity: ActivityConfig,
    ) -> Result<Self> {
        activity.validate()?;
        if window_len == 0 || full_len == 0 {
            return Err(Error::Config("window and clip lengths must be > 0".into()));
        }
        Ok(Self {
            subset: FoldSubset::new(index, folds, sample_rate)?,
            full_len,
            window_len,
            activity,
        })
    }

    /// Windows per clip.
    pub fn window_count(&self) -> usize {
        ActivityConfig::window_count(self.full_len, self.window_len)
    }

    /// Samples per window.
    pub fn window_len(&self) -> usize {
        self.window_len
    }
}

impl Dataset for Esc50Windows {
    type Item = (Vec<f32>, Vec<f32>, u32);

    fn len(&self) -> usize {
        self.subset.rows.len()
    }

    fn get(&self, index: usize, _rng: &mut SeededRng) -> Result<Self::Item> {
        let (wave, target) = self.subset.load(index)?;
        let clip = center_crop_or_pad(&wave, self.full_len);
        let (windows, weights) = self.activity.eval_windows(&clip, self.window_len);
        Ok((windows.concat(), weights, target))
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        self.subset.name(index)
    }
}

/// Collate for [`Esc50Windows`]: `(windows (B * W, window_len) f32, weights (B, W) f32,
/// targets (B,) u32)`.
pub fn collate_windowed(
    items: Vec<(Vec<f32>, Vec<f32>, u32)>,
    window_len: usize,
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let b = items.len();
    let w = items
        .first()
        .map(|x| x.1.len())
        .ok_or_else(|| Error::Config("collate: empty batch".into()))?;
    let mut x = Vec::with_capacity(b * w * window_len);
    let mut wt = Vec::with_capacity(b * w);
    let mut y = Vec::with_capacity(b);
    for (windows, weights, target) in items {
        if weights.len() != w || windows.len() != w * window_len {
            return Err(Error::Config(format!(
                "collate: clips with different window counts in a batch ({w} vs {})",
                weights.len()
            )));
        }
        x.extend(windows);
        wt.extend(weights);
        y.push(target);
    }
    Ok((
        Tensor::from_vec(x, (b * w, window_len), dev)?,
        Tensor::from_vec(wt, (b, w), dev)?,
        Tensor::from_vec(y, b, dev)?,
    ))
}

fn stack_waves<'a>(
    waves: impl ExactSizeIterator<Item = &'a Vec<f32>>,
    dev: &Device,
) -> Result<Tensor> {
    let b = waves.len();
    let mut len = None;
    let mut data = Vec::new();
    for w in waves {
        match len {
            None => {
                len = Some(w.len());
                data.reserve(b * w.len());
            }
            Some(l) if l != w.len() => {
                return Err(Error::Config(format!(
                    "collate: waveform lengths differ in a batch: {l} vs {}",
                    w.len()
                )))
            }
            _ => {}
        }
        data.extend_from_slice(w);
    }
    let l = len.ok_or_else(|| Error::Config("collate: empty batch".into()))?;
    Ok(Tensor::from_vec(data, (b, l), dev)?)
}

/// Collate for [`Esc50Pretrain`]: `(view_a (B, L) f32, view_b (B, L) f32)`.
pub fn collate_waveform_pairs(
    items: Vec<(Vec<f32>, Vec<f32>)>,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    Ok((
        stack_waves(items.iter().map(|x| &x.0), dev)?,
        stack_waves(items.iter().map(|x| &x.1), dev)?,
    ))
}

/// Collate for [`Esc50Labelled`]: `(waveforms (B, L) f32, targets (B,) u32)`.
pub fn collate_labelled_waveforms(
    items: Vec<(Vec<f32>, u32)>,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let x = stack_waves(items.iter().map(|x| &x.0), dev)?;
    let y: Vec<u32> = items.iter().map(|x| x.1).collect();
    let n = y.len();
    Ok((x, Tensor::from_vec(y, n, dev)?))
}

//! Waveform augmentations for VICReg views: random crop/pad to a fixed clip length,
//! random gain, additive coloured Gaussian noise at a random SNR, random time shift,
//! and (in the pretraining dataset) another clip mixed in as background.
//!
//! All randomness comes from the `&mut SeededRng` argument; the order of draws is fixed
//! (crop, gain, noise, shift), so a given RNG state always gives the same view.

use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

use crate::audio::activity::{ActivityConfig, CropPolicy};
pub use crate::audio::crop::{center_crop_or_pad, random_crop_or_pad};
use crate::{Error, Result};

/// How [`time_shift`] fills the samples shifted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ShiftMode {
    /// Samples leaving one end re-enter at the other.
    #[default]
    Circular,
    /// Samples shifted in are zero.
    ZeroFill,
}

/// Augmentation parameters of one audio view. Lengths are in samples at the model's rate;
/// ranges are inclusive-exclusive `[lo, hi)`; probabilities in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioViewConfig {
    /// Output length in samples. Longer inputs are cropped, shorter ones zero-padded.
    pub clip_len: usize,
    /// Random crop position (true) or centred crop/pad (false).
    pub random_crop: bool,
    /// Where random crops go: around sound (default) or anywhere.
    pub crop: CropPolicy,
    /// What counts as sound for [`CropPolicy::Active`] (frame length in samples, threshold).
    pub activity: ActivityConfig,
    /// Probability of a random speed change (resampling: pitch and tempo move
    /// together), applied with the crop: a window of `clip_len * factor`
    /// samples is cropped and resampled to `clip_len`.
    pub speed_prob: f64,
    /// Speed factor range `[lo, hi)`, drawn log-uniformly (1: unchanged;
    /// 1.25: a major third up and 25 % faster).
    pub speed: (f64, f64),
    /// Probability of applying a random gain.
    pub gain_prob: f64,
    /// Gain range in dB.
    pub gain_db: (f64, f64),
    /// Probability of adding Gaussian noise.
    pub noise_prob: f64,
    /// Signal-to-noise ratio range in dB (signal power = mean square of the clip).
    pub noise_snr_db: (f64, f64),
    /// Largest pole of the one-pole low-pass that colours the noise, in [0, 1):
    /// each noisy view draws a pole uniformly in `[0, noise_colour_max]` (0: white;
    /// 0.9 and up: brown-ish). 0 keeps the noise white.
    pub noise_colour_max: f64,
    /// Probability of mixing another clip of the data set in as background
    /// (applied by [`Esc50Pretrain`](crate::audio::Esc50Pretrain); a view's own
    /// sound stays the loudest).
    pub mix_prob: f64,
    /// Level of the mixed-in clip relative to the view, dB range (RMS ratio).
    pub mix_db: (f64, f64),
    /// Probability of a random time shift.
    pub shift_prob: f64,
    /// Largest shift as a fraction of `clip_len` (shift drawn uniformly in `[-max, max]`).
    pub shift_max_frac: f64,
    /// Circular or zero-filled shift.
    pub shift_mode: ShiftMode,
}

impl Default for AudioViewConfig {
    /// One second at 16 kHz, crops around sound (20 ms frames within 30 dB of the
    /// loudest), +-6 dB gain (p 0.8), noise at 5-30 dB SNR (p 0.5), circular
    /// shift up to 25 % (p 0.5).
    fn default() -> Self {
        Self {
            clip_len: 16_000,
            random_crop: true,
            crop: CropPolicy::Active,
            activity: ActivityConfig::default(),
            speed_prob: 0.0,
            speed: (0.8, 1.25),
            gain_prob: 0.8,
            gain_db: (-6.0, 6.0),
            noise_prob: 0.5,
            noise_snr_db: (5.0, 30.0),
            noise_colour_max: 0.0,
            mix_prob: 0.0,
            mix_db: (-20.0, -6.0),
            shift_prob: 0.5,
            shift_max_frac: 0.25,
            shift_mode: ShiftMode::Circular,
        }
    }
}

impl AudioViewConfig {
    /// The default augmentations with a given clip length.
    pub fn with_clip_len(clip_len: usize) -> Self {
        Self {
            clip_len,
            ..Self::default()
        }
    }

    /// No augmentation: a centred crop or pad to `clip_len` (evaluation).
    pub fn eval(clip_len: usize) -> Self {
        Self {
            clip_len,
            random_crop: false,
            speed_prob: 0.0,
            gain_prob: 0.0,
            noise_prob: 0.0,
            shift_prob: 0.0,
            mix_prob: 0.0,
            ..Self::default()
        }
    }

    /// Checks ranges and probabilities.
    pub fn validate(&self) -> Result<()> {
        if self.clip_len == 0 {
            return Err(Error::Config("audio clip_len must be > 0".into()));
        }
        self.activity.validate()?;
        for (name, p) in [
            ("speed_prob", self.speed_prob),
            ("gain_prob", self.gain_prob),
            ("noise_prob", self.noise_prob),
            ("shift_prob", self.shift_prob),
            ("mix_prob", self.mix_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!("{name} = {p} outside [0, 1]")));
            }
        }
        if !(0.0..1.0).contains(&self.noise_colour_max) {
            return Err(Error::Config(format!(
                "noise_colour_max = {} outside [0, 1)",
                self.noise_colour_max
            )));
        }
        let (slo, shi) = self.speed;
        if !(slo.is_finite() && shi.is_finite() && slo > 0.0 && slo <= shi && shi <= 4.0) {
            return Err(Error::Config(format!(
                "speed = ({slo}, {shi}) is not a range 0 < lo <= hi <= 4"
            )));
        }
        for (name, (lo, hi)) in [
            ("gain_db", self.gain_db),
            ("noise_snr_db", self.noise_snr_db),
            ("mix_db", self.mix_db),
        ] {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(Error::Config(format!(
                    "{name} = ({lo}, {hi}) is not a finite range lo <= hi"
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.shift_max_frac) {
            return Err(Error::Config(format!(
                "shift_max_frac = {} outside [0, 1]",
                self.shift_max_frac
            )));
        }
        Ok(())
    }

    /// Produces one view of `wave` (length `clip_len`). Draws, in order: the crop (an active
    /// frame and an offset, or one offset), then for each of gain / noise / shift a Bernoulli
    /// and its parameters (only when applied).
    pub fn apply(&self, wave: &[f32], rng: &mut SeededRng) -> Vec<f32> {
        // A speed factor f reads a window of clip_len * f source samples.
        let factor = if self.speed_prob > 0.0 && rng.bernoulli(self.speed_prob) {
            let (lo, hi) = (self.speed.0.ln(), self.speed.1.ln());
            rng.uniform_range(lo, hi).exp()
        } else {
            1.0
        };
        let len = ((self.clip_len as f64 * factor).round() as usize).max(1);
        let x = if self.random_crop {
            match self.crop {
                CropPolicy::Active => self.activity.active_crop(wave, len, rng),
                CropPolicy::Uniform => random_crop_or_pad(wave, len, rng),
            }
        } else {
            center_crop_or_pad(wave, len)
        };
        let mut x = if len == self.clip_len {
            x
        } else {
            stretch_linear(&x, self.clip_len)
        };
        if self.gain_prob > 0.0 && rng.bernoulli(self.gain_prob) {
            let db = rng.uniform_range(self.gain_db.0, self.gain_db.1);
            apply_gain_db(&mut x, db);
        }
        if self.noise_prob > 0.0 && rng.bernoulli(self.noise_prob) {
            let snr = rng.uniform_range(self.noise_snr_db.0, self.noise_snr_db.1);
            if self.noise_colour_max > 0.0 {
                let pole = rng.uniform_range(0.0, self.noise_colour_max);
                add_coloured_noise_snr(&mut x, snr, pole, rng);
            } else {
                add_noise_snr(&mut x, snr, rng);
            }
        }
        if self.shift_prob > 0.0 && rng.bernoulli(self.shift_prob) {
            let max = (self.shift_max_frac * x.len() as f64).floor() as i64;
            let shift = rng.below((2 * max + 1) as usize) as i64 - max;
            x = time_shift(&x, shift, self.shift_mode);
        }
        x
    }
}

/// Resamples `x` to `len` samples by linear interpolation (end points kept):
/// played at the same rate, a shorter result sounds higher and faster.
pub fn stretch_linear(x: &[f32], len: usize) -> Vec<f32> {
    if x.is_empty() || len == 0 {
        return vec![0.0; len];
    }
    if len == 1 || x.len() == 1 {
        return vec![x[0]; len];
    }
    let scale = (x.len() - 1) as f64 / (len - 1) as f64;
    (0..len)
        .map(|i| {
            let t = i as f64 * scale;
            let j = (t.floor() as usize).min(x.len() - 2);
            let a = t - j as f64;
            (x[j] as f64 * (1.0 - a) + x[j + 1] as f64 * a) as f32
        })
        .collect()
}

/// Multiplies by `10^(db / 20)`.
pub fn apply_gain_db(x: &mut [f32], db: f64) {
    let g = 10f64.powf(db / 20.0) as f32;
    x.iter_mut().for_each(|v| *v *= g);
}

/// Adds white Gaussian noise with power `P / 10^(snr_db / 10)`, `P` the mean square of `x`.
/// A silent clip (P = 0) is left unchanged (the SNR is undefined).
pub fn add_noise_snr(x: &mut [f32], snr_db: f64, rng: &mut SeededRng) {
    if x.is_empty() {
        return;
    }
    let p = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    if p <= 0.0 {
        return;
    }
    let sigma = (p / 10f64.powf(snr_db / 10.0)).sqrt();
    x.iter_mut()
        .for_each(|v| *v += (sigma * rng.normal()) as f32);
}

/// Adds Gaussian noise coloured by a one-pole low-pass `y[n] = pole * y[n-1] + w[n]`
/// (`pole` in [0, 1): 0 is white), scaled to power `P / 10^(snr_db / 10)`, `P` the
/// mean square of `x`. A silent clip is left unchanged.
pub fn add_coloured_noise_snr(x: &mut [f32], snr_db: f64, pole: f64, rng: &mut SeededRng) {
    if x.is_empty() {
        return;
    }
    let p = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    if p <= 0.0 {
        return;
    }
    let pole = pole.clamp(0.0, 0.999);
    let mut y = 0.0f64;
    let noise: Vec<f64> = (0..x.len())
        .map(|_| {
            y = pole * y + rng.normal();
            y
        })
        .collect();
    let q = noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64;
    if q <= 0.0 {
        return;
    }
    let scale = (p / 10f64.powf(snr_db / 10.0) / q).sqrt();
    for (v, n) in x.iter_mut().zip(&noise) {
        *v += (scale * n) as f32;
    }
}

/// Adds `background` (cropped or zero-padded to `x`'s length by the caller) at an RMS
/// `level_db` relative to `x`'s RMS. Nothing is added when either is silent.
pub fn mix_background(x: &mut [f32], background: &[f32], level_db: f64) {
    let rms = |v: &[f32]| {
        (v.iter().map(|&a| (a as f64) * (a as f64)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    let (rx, rb) = (rms(x), rms(background));
    if rx <= 0.0 || rb <= 0.0 {
        return;
    }
    let g = (rx / rb * 10f64.powf(level_db / 20.0)) as f32;
    for (v, b) in x.iter_mut().zip(background) {
        *v += g * b;
    }
}

/// Shifts by `shift` samples (positive = later in time): `out[i] = x[i - shift]`, with the
/// vacated samples taken circularly or set to zero.
pub fn time_shift(x: &[f32], shift: i64, mode: ShiftMode) -> Vec<f32> {
    let n = x.len() as i64;
    if n == 0 {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let j = i - shift;
            match mode {
                ShiftMode::Circular => x[j.rem_euclid(n) as usize],
                ShiftMode::ZeroFill => {
                    if (0..n).contains(&j) {
                        x[j as usize]
                    } else {
                        0.0
                    }
                }
            }
        })
        .collect()
}

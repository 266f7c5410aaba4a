//! Waveform augmentations for VICReg views: random crop/pad to a fixed clip length,
//! random gain, additive Gaussian noise at a random SNR, random time shift.
//!
//! All randomness comes from the `&mut SeededRng` argument; the order of draws is fixed
//! (crop, gain, noise, shift), so a given RNG state always gives the same view.

use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

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
    /// Probability of applying a random gain.
    pub gain_prob: f64,
    /// Gain range in dB.
    pub gain_db: (f64, f64),
    /// Probability of adding Gaussian noise.
    pub noise_prob: f64,
    /// Signal-to-noise ratio range in dB (signal power = mean square of the clip).
    pub noise_snr_db: (f64, f64),
    /// Probability of a random time shift.
    pub shift_prob: f64,
    /// Largest shift as a fraction of `clip_len` (shift drawn uniformly in `[-max, max]`).
    pub shift_max_frac: f64,
    /// Circular or zero-filled shift.
    pub shift_mode: ShiftMode,
}

impl Default for AudioViewConfig {
    /// One second at 16 kHz, +-6 dB gain (p 0.8), noise at 5-30 dB SNR (p 0.5),
    /// circular shift up to 25 % (p 0.5).
    fn default() -> Self {
        Self {
            clip_len: 16_000,
            random_crop: true,
            gain_prob: 0.8,
            gain_db: (-6.0, 6.0),
            noise_prob: 0.5,
            noise_snr_db: (5.0, 30.0),
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
            gain_prob: 0.0,
            noise_prob: 0.0,
            shift_prob: 0.0,
            ..Self::default()
        }
    }

    /// Checks ranges and probabilities.
    pub fn validate(&self) -> Result<()> {
        if self.clip_len == 0 {
            return Err(Error::Config("audio clip_len must be > 0".into()));
        }
        for (name, p) in [
            ("gain_prob", self.gain_prob),
            ("noise_prob", self.noise_prob),
            ("shift_prob", self.shift_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!("{name} = {p} outside [0, 1]")));
            }
        }
        for (name, (lo, hi)) in [
            ("gain_db", self.gain_db),
            ("noise_snr_db", self.noise_snr_db),
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

    /// Produces one view of `wave` (length `clip_len`). Draws, in order: crop offset, then for
    /// each of gain / noise / shift a Bernoulli and its parameters (only when applied).
    pub fn apply(&self, wave: &[f32], rng: &mut SeededRng) -> Vec<f32> {
        let mut x = if self.random_crop {
            random_crop_or_pad(wave, self.clip_len, rng)
        } else {
            center_crop_or_pad(wave, self.clip_len)
        };
        if self.gain_prob > 0.0 && rng.bernoulli(self.gain_prob) {
            let db = rng.uniform_range(self.gain_db.0, self.gain_db.1);
            apply_gain_db(&mut x, db);
        }
        if self.noise_prob > 0.0 && rng.bernoulli(self.noise_prob) {
            let snr = rng.uniform_range(self.noise_snr_db.0, self.noise_snr_db.1);
            add_noise_snr(&mut x, snr, rng);
        }
        if self.shift_prob > 0.0 && rng.bernoulli(self.shift_prob) {
            let max = (self.shift_max_frac * x.len() as f64).floor() as i64;
            let shift = rng.below((2 * max + 1) as usize) as i64 - max;
            x = time_shift(&x, shift, self.shift_mode);
        }
        x
    }
}

/// Crops a random window of `len` samples, or, when `wave` is shorter, places it at a random
/// offset inside `len` zeros.
pub fn random_crop_or_pad(wave: &[f32], len: usize, rng: &mut SeededRng) -> Vec<f32> {
    let n = wave.len();
    if n >= len {
        let start = rng.below(n - len + 1);
        wave[start..start + len].to_vec()
    } else {
        let off = rng.below(len - n + 1);
        let mut out = vec![0.0; len];
        out[off..off + n].copy_from_slice(wave);
        out
    }
}

/// Centred crop to `len` samples, or centred zero-padding when `wave` is shorter.
pub fn center_crop_or_pad(wave: &[f32], len: usize) -> Vec<f32> {
    let n = wave.len();
    if n >= len {
        let start = (n - len) / 2;
        wave[start..start + len].to_vec()
    } else {
        let off = (len - n) / 2;
        let mut out = vec![0.0; len];
        out[off..off + n].copy_from_slice(wave);
        out
    }
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

//! Mel scales and triangular mel filterbanks.
//!
//! Conventions (those of librosa and torchaudio):
//! - [`MelScale::Htk`]: `mel = 2595 * log10(1 + hz / 700)`.
//! - [`MelScale::Slaney`] (Auditory Toolbox): linear below 1 kHz,
//!   `mel = 3 * hz / 200`, logarithmic above, `mel = 15 + 27 * ln(hz / 1000) / ln(6.4)`.
//! - Filter `m` (0-based) is a triangle over FFT-bin frequencies
//!   `k * sample_rate / n_fft`, `k = 0..=n_fft/2`, with feet at edges `m` and
//!   `m + 2` and apex (weight 1) at edge `m + 1`, where the `n_mels + 2` edges
//!   are equally spaced on the mel scale from `fmin` to `fmax`.
//! - [`MelNorm::Slaney`] divides each triangle by half its width in Hz
//!   (`2 / (edge[m+2] - edge[m])`), making its area about constant;
//!   [`MelNorm::None`] keeps apex weight 1 (torchaudio's default; librosa's
//!   default is Slaney scale with Slaney norm).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which Hz <-> mel mapping to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MelScale {
    /// `2595 * log10(1 + hz / 700)` (HTK, torchaudio's default).
    Htk,
    /// Linear below 1 kHz, logarithmic above (Slaney, librosa's default).
    #[default]
    Slaney,
}

/// Normalisation of the mel triangles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MelNorm {
    /// Apex weight 1.
    None,
    /// Each triangle scaled by `2 / (upper_edge_hz - lower_edge_hz)` (constant area).
    #[default]
    Slaney,
}

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP; // 15

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

impl MelScale {
    /// Frequency in Hz -> mel.
    pub fn hz_to_mel(self, hz: f64) -> f64 {
        match self {
            MelScale::Htk => 2595.0 * (1.0 + hz / 700.0).log10(),
            MelScale::Slaney => {
                if hz < SLANEY_MIN_LOG_HZ {
                    hz / SLANEY_F_SP
                } else {
                    SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
                }
            }
        }
    }

    /// Mel -> frequency in Hz (inverse of [`MelScale::hz_to_mel`]).
    pub fn mel_to_hz(self, mel: f64) -> f64 {
        match self {
            MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
            MelScale::Slaney => {
                if mel < SLANEY_MIN_LOG_MEL {
                    mel * SLANEY_F_SP
                } else {
                    SLANEY_MIN_LOG_HZ * (slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL)).exp()
                }
            }
        }
    }
}

/// A bank of `n_mels` triangular filters over the `n_fft / 2 + 1` bins of a
/// real FFT, stored sparsely (each filter's first non-zero bin and its weights).
#[derive(Clone, Debug)]
pub struct MelFilterbank {
    n_freqs: usize,
    edges_hz: Vec<f64>,
    rows: Vec<(usize, Vec<f32>)>,
}

impl MelFilterbank {
    /// Builds the filterbank. Needs `n_fft >= 2`, `n_mels >= 1`,
    /// `0 <= fmin < fmax <= sample_rate / 2`.
    pub fn new(
        sample_rate: f64,
        n_fft: usize,
        n_mels: usize,
        fmin: f64,
        fmax: f64,
        scale: MelScale,
        norm: MelNorm,
    ) -> Result<Self> {
        let nyquist = sample_rate / 2.0;
        if sample_rate.is_nan() || sample_rate <= 0.0 || n_fft < 2 || n_mels == 0 {
            return Err(Error::config(format!(
                "mel filterbank: need sample_rate > 0, n_fft >= 2, n_mels >= 1 (got {sample_rate}, {n_fft}, {n_mels})"
            )));
        }
        let ok = fmin >= 0.0 && fmin < fmax && fmax <= nyquist * (1.0 + 1e-9);
        if !ok {
            return Err(Error::config(format!(
                "mel filterbank: need 0 <= fmin < fmax <= sample_rate / 2 = {nyquist} (got fmin {fmin}, fmax {fmax})"
            )));
        }
        let n_freqs = n_fft / 2 + 1;
        let (mel_lo, mel_hi) = (scale.hz_to_mel(fmin), scale.hz_to_mel(fmax));
        let edges_hz: Vec<f64> = (0..n_mels + 2)
            .map(|i| scale.mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64))
            .collect();
        let bin_hz = |k: usize| k as f64 * sample_rate / n_fft as f64;
        let mut rows = Vec::with_capacity(n_mels);
        for m in 0..n_mels {
            let (lo, c, hi) = (edges_hz[m], edges_hz[m + 1], edges_hz[m + 2]);
            let scale_by = match norm {
                MelNorm::None => 1.0,
                MelNorm::Slaney => 2.0 / (hi - lo),
            };
            let weights: Vec<(usize, f32)> = (0..n_freqs)
                .filter_map(|k| {
                    let f = bin_hz(k);
                    let w = ((f - lo) / (c - lo)).min((hi - f) / (hi - c)).max(0.0);
                    (w > 0.0).then_some((k, (w * scale_by) as f32))
                })
                .collect();
            match (weights.first(), weights.last()) {
                (Some(&(first, _)), Some(&(last, _))) => {
                    // Zero weights inside the support cannot occur for a triangle, but keep the row dense between ends.
                    let mut row = vec![0f32; last - first + 1];
                    for (k, w) in weights {
                        row[k - first] = w;
                    }
                    rows.push((first, row));
                }
                _ => rows.push((0, Vec::new())),
            }
        }
        Ok(Self {
            n_freqs,
            edges_hz,
            rows,
        })
    }

    /// Number of filters.
    pub fn n_mels(&self) -> usize {
        self.rows.len()
    }

    /// Number of FFT bins each filter spans (`n_fft / 2 + 1`).
    pub fn n_freqs(&self) -> usize {
        self.n_freqs
    }

    /// The `n_mels + 2` filter edges in Hz; filter `m` peaks at `edges_hz()[m + 1]`.
    pub fn edges_hz(&self) -> &[f64] {
        &self.edges_hz
    }

    /// The filters as a dense `(n_mels, n_freqs)` row-major matrix.
    pub fn dense(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows.len() * self.n_freqs];
        for (m, (first, row)) in self.rows.iter().enumerate() {
            out[m * self.n_freqs + first..m * self.n_freqs + first + row.len()]
                .copy_from_slice(row);
        }
        out
    }

    /// Filters with no FFT bin under them (too narrow for the FFT resolution:
    /// raise `n_fft` or lower `n_mels`).
    pub fn empty_filters(&self) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|&m| self.rows[m].1.is_empty())
            .collect()
    }

    /// `out[m] = sum_k filter[m][k] * spectrum[k]` for one `n_freqs` spectrum.
    pub fn apply(&self, spectrum: &[f32], out: &mut [f32]) {
        debug_assert_eq!(spectrum.len(), self.n_freqs);
        for (o, (first, row)) in out.iter_mut().zip(&self.rows) {
            *o = row
                .iter()
                .zip(&spectrum[*first..])
                .map(|(w, s)| w * s)
                .sum();
        }
    }
}

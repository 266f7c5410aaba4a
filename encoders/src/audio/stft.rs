//! Short-time power spectra of one clip with a periodic Hann window.
//!
//! Conventions (`torch.stft` / librosa with `normalized=False`):
//! - window: periodic Hann of `win_length` samples,
//!   `w[n] = 0.5 - 0.5 * cos(2 pi n / win_length)`, zero-padded on both sides
//!   (centred) to `n_fft` when `win_length < n_fft`;
//! - frame `t` covers samples `t * hop .. t * hop + n_fft` of the signal, which
//!   with `center` is first padded by `n_fft / 2` zeros on each side (the
//!   "constant" padding of librosa 0.10; torchaudio pads by reflection), so
//!   frame `t` is centred on sample `t * hop` and there are
//!   `1 + samples / hop` frames (even `n_fft`);
//! - power: `|X[k]|^2` of the unnormalised DFT `X[k] = sum_n x[n] w[n] e^{-2 pi i k n / n_fft}`,
//!   `k = 0..=n_fft/2`. A full-scale sine at an exact bin frequency gives
//!   `(A * sum(w) / 2)^2` in that bin.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::{Error, Result};

/// A planned real FFT with its window and framing.
#[derive(Clone)]
pub struct PowerStft {
    n_fft: usize,
    hop: usize,
    center: bool,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for PowerStft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerStft")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("center", &self.center)
            .field(
                "win_length",
                &self.window.iter().filter(|w| **w != 0.0).count(),
            )
            .finish()
    }
}

impl PowerStft {
    /// Plans an STFT. Needs `1 <= win_length <= n_fft`, `hop >= 1`, `n_fft >= 2`.
    pub fn new(n_fft: usize, hop: usize, win_length: usize, center: bool) -> Result<Self> {
        if n_fft < 2 || hop == 0 || win_length == 0 || win_length > n_fft {
            return Err(Error::config(format!(
                "stft: need n_fft >= 2, hop >= 1 and 1 <= win_length <= n_fft (got n_fft {n_fft}, hop {hop}, win_length {win_length})"
            )));
        }
        let offset = (n_fft - win_length) / 2;
        let mut window = vec![0f32; n_fft];
        for n in 0..win_length {
            let phase = 2.0 * std::f64::consts::PI * n as f64 / win_length as f64;
            window[offset + n] = (0.5 - 0.5 * phase.cos()) as f32;
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        Ok(Self {
            n_fft,
            hop,
            center,
            window,
            fft,
        })
    }

    /// Number of frequency bins (`n_fft / 2 + 1`).
    pub fn n_freqs(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// The `n_fft`-long analysis window (periodic Hann, centred).
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Number of frames for a clip of `samples` samples (0 when it is shorter
    /// than `n_fft` without `center`).
    pub fn num_frames(&self, samples: usize) -> usize {
        let padded = samples + if self.center { 2 * (self.n_fft / 2) } else { 0 };
        if padded < self.n_fft {
            0
        } else {
            (padded - self.n_fft) / self.hop + 1
        }
    }

    /// `(frames, n_freqs)` row-major power spectra of `clip`.
    pub fn power(&self, clip: &[f32]) -> Vec<f32> {
        let frames = self.num_frames(clip.len());
        let n_freqs = self.n_freqs();
        let pad = if self.center {
            (self.n_fft / 2) as isize
        } else {
            0
        };
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut out = vec![0f32; frames * n_freqs];
        for t in 0..frames {
            let start = (t * self.hop) as isize - pad;
            for (n, (slot, w)) in input.iter_mut().zip(&self.window).enumerate() {
                let i = start + n as isize;
                *slot = if i >= 0 && (i as usize) < clip.len() {
                    clip[i as usize] * w
                } else {
                    0.0
                };
            }
            // The buffers come from this plan's own make_*_vec: their lengths always fit.
            #[allow(clippy::expect_used)]
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers come from the same plan");
            for (o, c) in out[t * n_freqs..(t + 1) * n_freqs]
                .iter_mut()
                .zip(&spectrum)
            {
                *o = c.re * c.re + c.im * c.im;
            }
        }
        out
    }
}

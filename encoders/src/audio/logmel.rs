//! The log-mel spectrogram front end: `(batch, samples)` waveforms ->
//! `(batch, 1, n_mels, frames)` images in [0, 1].
//!
//! Pipeline per clip (all on the CPU in f32, clips in parallel with rayon):
//! 1. power STFT with a periodic Hann window ([`PowerStft`] conventions);
//! 2. mel filterbank ([`MelFilterbank`] conventions, HTK or Slaney scale);
//! 3. decibels `10 * log10(max(mel_power, amin))` with no reference scaling
//!    (`ref = 1`), then the `top_db` floor: values below `max_dB - top_db`
//!    (the clip's own maximum) are raised to it (librosa `power_to_db`);
//! 4. normalisation to [0, 1] ([`Normalization`]): by default per clip,
//!    `(x - min) / (max - min)` over the whole clip, which with the 80 dB floor
//!    maps the loudest cell to 1 and anything 80 dB or more below it to 0 (the
//!    paper feeds "mel spectrograms in [0, 1]" without more detail); a clip with
//!    no dynamic range (e.g. digital silence) maps to 0 everywhere.
//!
//! The output is a fresh tensor: no gradient flows back to the waveform.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::mel::{MelFilterbank, MelNorm, MelScale};
use super::stft::PowerStft;
use crate::{Error, Result};

/// How decibel values are mapped to the network's input range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Normalization {
    /// Per clip: `(x - min) / (max - min)`; 0 everywhere when `max == min`.
    #[default]
    MinMax,
    /// Fixed range: `clamp((x - min_db) / (max_db - min_db), 0, 1)`.
    FixedRange {
        /// dB value mapped to 0.
        min_db: f64,
        /// dB value mapped to 1.
        max_db: f64,
    },
    /// Keep decibels (after the `top_db` floor).
    Decibels,
}

/// Configuration of a [`LogMelSpectrogram`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogMelConfig {
    /// Sample rate of the waveforms in Hz.
    pub sample_rate: f64,
    /// FFT size in samples.
    pub n_fft: usize,
    /// Hop between frames in samples.
    pub hop_length: usize,
    /// Hann window length in samples (`<= n_fft`).
    pub win_length: usize,
    /// Pad `n_fft / 2` zeros on both sides so frame `t` is centred on sample `t * hop`.
    pub center: bool,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest filter edge in Hz.
    pub fmin: f64,
    /// Highest filter edge in Hz; `None` means `sample_rate / 2`.
    pub fmax: Option<f64>,
    /// Hz <-> mel mapping.
    pub mel_scale: MelScale,
    /// Filter normalisation.
    pub mel_norm: MelNorm,
    /// Power floor before the logarithm (1e-10 = -100 dB).
    pub amin: f64,
    /// Dynamic range kept below each clip's maximum, in dB; `None` keeps all.
    pub top_db: Option<f64>,
    /// Mapping of decibels to the output range.
    pub normalization: Normalization,
}

impl Default for LogMelConfig {
    fn default() -> Self {
        Self::esc50()
    }
}

impl LogMelConfig {
    /// ESC-50 clips at their native 44.1 kHz: 2048-point FFT (46 ms), hop 512
    /// (11.6 ms; 431 frames for 5 s), 128 Slaney mel bands 0-22050 Hz with
    /// Slaney norm (librosa defaults), 80 dB range, per-clip min-max to [0, 1].
    pub fn esc50() -> Self {
        Self {
            sample_rate: 44_100.0,
            n_fft: 2048,
            hop_length: 512,
            win_length: 2048,
            center: true,
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            amin: 1e-10,
            top_db: Some(80.0),
            normalization: Normalization::MinMax,
        }
    }

    /// 16 kHz audio: 1024-point FFT (64 ms), hop 256 (16 ms), 64 mel bands.
    pub fn esc50_16k() -> Self {
        Self {
            sample_rate: 16_000.0,
            n_fft: 1024,
            hop_length: 256,
            win_length: 1024,
            n_mels: 64,
            ..Self::esc50()
        }
    }

    /// The upper filter edge in Hz.
    pub fn fmax_hz(&self) -> f64 {
        self.fmax.unwrap_or(self.sample_rate / 2.0)
    }
}

/// The log-mel front end (see the module docs for every convention).
#[derive(Clone, Debug)]
pub struct LogMelSpectrogram {
    cfg: LogMelConfig,
    stft: PowerStft,
    filterbank: MelFilterbank,
}

impl LogMelSpectrogram {
    /// Plans the STFT and builds the filterbank; fails on unusable settings,
    /// including mel bands too narrow to cover any FFT bin.
    pub fn new(cfg: &LogMelConfig) -> Result<Self> {
        if cfg.amin.is_nan() || cfg.amin <= 0.0 {
            return Err(Error::config(format!(
                "log-mel: amin must be > 0, got {}",
                cfg.amin
            )));
        }
        if let Some(t) = cfg.top_db {
            if t.is_nan() || t < 0.0 {
                return Err(Error::config(format!(
                    "log-mel: top_db must be >= 0, got {t}"
                )));
            }
        }
        if let Normalization::FixedRange { min_db, max_db } = cfg.normalization {
            if max_db.is_nan() || min_db.is_nan() || max_db <= min_db {
                return Err(Error::config(format!(
                    "log-mel: fixed range needs max_db > min_db, got {min_db}..{max_db}"
                )));
            }
        }
        let stft = PowerStft::new(cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.center)?;
        let filterbank = MelFilterbank::new(
            cfg.sample_rate,
            cfg.n_fft,
            cfg.n_mels,
            cfg.fmin,
            cfg.fmax_hz(),
            cfg.mel_scale,
            cfg.mel_norm,
        )?;
        let empty = filterbank.empty_filters();
        if !empty.is_empty() {
            return Err(Error::config(format!(
                "log-mel: mel bands {empty:?} cover no FFT bin (n_fft {} too small for {} mels)",
                cfg.n_fft, cfg.n_mels
            )));
        }
        Ok(Self {
            cfg: cfg.clone(),
            stft,
            filterbank,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LogMelConfig {
        &self.cfg
    }

    /// The mel filterbank.
    pub fn filterbank(&self) -> &MelFilterbank {
        &self.filterbank
    }

    /// Number of frames produced for clips of `samples` samples.
    pub fn num_frames(&self, samples: usize) -> usize {
        self.stft.num_frames(samples)
    }

    /// `(n_mels, frames)` row-major mel power of one clip (before the logarithm).
    pub fn mel_power(&self, clip: &[f32]) -> Result<Vec<f32>> {
        let frames = self.stft.num_frames(clip.len());
        if frames == 0 {
            return Err(Error::invalid(format!(
                "log-mel: a clip of {} samples is shorter than n_fft = {} (center = false)",
                clip.len(),
                self.cfg.n_fft
            )));
        }
        if let Some(i) = clip.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "log-mel: sample {i} is not finite ({})",
                clip[i]
            )));
        }
        let n_freqs = self.stft.n_freqs();
        let n_mels = self.cfg.n_mels;
        let power = self.stft.power(clip);
        let mut mel = vec![0f32; n_mels * frames];
        let mut column = vec![0f32; n_mels];
        for t in 0..frames {
            self.filterbank
                .apply(&power[t * n_freqs..(t + 1) * n_freqs], &mut column);
            for (m, v) in column.iter().enumerate() {
                mel[m * frames + t] = *v;
            }
        }
        Ok(mel)
    }

    /// `(n_mels, frames)` decibels of one clip: `10 log10(max(p, amin))`, then the `top_db` floor.
    pub fn mel_db(&self, clip: &[f32]) -> Result<Vec<f32>> {
        let amin = self.cfg.amin;
        let mut db: Vec<f32> = self
            .mel_power(clip)?
            .into_iter()
            .map(|p| (10.0 * (p as f64).max(amin).log10()) as f32)
            .collect();
        if let Some(top_db) = self.cfg.top_db {
            let floor = db.iter().cloned().fold(f32::NEG_INFINITY, f32::max) - top_db as f32;
            db.iter_mut().for_each(|x| *x = x.max(floor));
        }
        Ok(db)
    }

    /// Log-mel statistics of one clip, the classic hand-made audio baseline:
    /// for each mel band the mean and then the standard deviation of its
    /// decibels ([`Self::mel_db`]) over the frames that hold sound (a frame's
    /// mean mel power within `active_db` decibels of the loudest frame's; all
    /// frames when none is), `[mean_0 .. mean_{n-1}, std_0 .. std_{n-1}]`.
    pub fn statistics(&self, clip: &[f32], active_db: f64) -> Result<Vec<f32>> {
        let n_mels = self.cfg.n_mels;
        let power = self.mel_power(clip)?;
        let db = self.mel_db(clip)?;
        let frames = power.len() / n_mels;
        let level: Vec<f64> = (0..frames)
            .map(|t| {
                (0..n_mels)
                    .map(|m| power[m * frames + t] as f64)
                    .sum::<f64>()
                    / n_mels as f64
            })
            .collect();
        let peak = level.iter().cloned().fold(0.0, f64::max);
        let floor = peak * 10f64.powf(active_db / 10.0);
        let mut active: Vec<usize> = (0..frames)
            .filter(|&t| level[t] > 0.0 && level[t] >= floor)
            .collect();
        if active.is_empty() {
            active = (0..frames).collect();
        }
        let k = active.len() as f64;
        let mut out = Vec::with_capacity(2 * n_mels);
        let mut stds = Vec::with_capacity(n_mels);
        for m in 0..n_mels {
            let v: Vec<f64> = active.iter().map(|&t| db[m * frames + t] as f64).collect();
            let mean = v.iter().sum::<f64>() / k;
            let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / k;
            out.push(mean as f32);
            stds.push(var.sqrt() as f32);
        }
        out.extend(stds);
        Ok(out)
    }

    /// `(n_mels, frames)` network input of one clip ([`LogMelConfig::normalization`] applied).
    pub fn clip(&self, clip: &[f32]) -> Result<Vec<f32>> {
        let mut x = self.mel_db(clip)?;
        match self.cfg.normalization {
            Normalization::Decibels => {}
            Normalization::MinMax => {
                let (lo, hi) = x
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                let range = hi - lo;
                x.iter_mut()
                    .for_each(|v| *v = if range > 0.0 { (*v - lo) / range } else { 0.0 });
            }
            Normalization::FixedRange { min_db, max_db } => {
                let (lo, range) = (min_db as f32, (max_db - min_db) as f32);
                x.iter_mut()
                    .for_each(|v| *v = ((*v - lo) / range).clamp(0.0, 1.0));
            }
        }
        Ok(x)
    }

    /// `(batch, samples)` waveforms (any float dtype, any device) ->
    /// `(batch, 1, n_mels, frames)` f32 on the input's device.
    pub fn forward(&self, waves: &Tensor) -> Result<Tensor> {
        let (batch, samples) = waves.dims2().map_err(|_| {
            Error::invalid(format!(
                "log-mel: expected (batch, samples) waveforms, got shape {:?}",
                waves.dims()
            ))
        })?;
        let frames = self.num_frames(samples);
        let clips: Vec<Vec<f32>> = waves
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2()?;
        let images: Vec<Vec<f32>> = clips
            .par_iter()
            .enumerate()
            .map(|(i, c)| {
                self.clip(c).map_err(|e| match e {
                    Error::InvalidInput(m) => Error::invalid(format!("clip {i}: {m}")),
                    e => e,
                })
            })
            .collect::<Result<_>>()?;
        let data: Vec<f32> = images.into_iter().flatten().collect();
        let out = Tensor::from_vec(data, (batch, 1, self.cfg.n_mels, frames), &Device::Cpu)?;
        Ok(out.to_device(waves.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statistics are taken over the frames that hold sound: padding a tone
    /// with digital silence (as real ESC-50 clips are) leaves them unchanged.
    #[test]
    fn statistics_ignore_digital_silence() {
        let front = LogMelSpectrogram::new(&LogMelConfig::esc50_16k()).unwrap();
        let n_mels = front.config().n_mels;
        let tone: Vec<f32> = (0..8000)
            .map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 16000.0).sin())
            .collect();
        let mut padded = tone.clone();
        padded.extend(std::iter::repeat_n(0.0, 24_000));
        let a = front.statistics(&tone, -30.0).unwrap();
        let b = front.statistics(&padded, -30.0).unwrap();
        assert_eq!((a.len(), b.len()), (2 * n_mels, 2 * n_mels));
        let max_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(max_diff < 1.5, "means/stds moved by {max_diff} dB");
        // A quiet background (-60 dB) is left out at -30 dB, but counted when
        // the threshold admits it, and then it drags the means down.
        let mut noisy = tone.clone();
        noisy.extend((0..24_000).map(|i| if i % 2 == 0 { 5e-4 } else { -5e-4 }));
        let quiet = front.statistics(&noisy, -30.0).unwrap();
        assert!(quiet.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1.5));
        let all = front.statistics(&noisy, -120.0).unwrap();
        assert!(all[..n_mels]
            .iter()
            .zip(&a[..n_mels])
            .any(|(x, y)| y - x > 10.0));
    }
}

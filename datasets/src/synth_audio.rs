//! Built-in synthetic sound classes written in the real ESC-50 layout
//! (`meta/esc50.csv` + `audio/*.wav`, 16-bit mono), so the ESC-50 reader loads them.
//!
//! Ten classes (the first `num_classes` are used): pure tone, upward chirp, downward chirp,
//! noise bursts, harmonic stack, amplitude tremolo, click train, siren (slow FM), rumble
//! (brown noise) and beeps. Every clip has a random onset, duration, pitch and loudness,
//! plus a white/brown background noise at a random SNR. Clip `k` of class `c` is a pure
//! function of `(seed, c, k)`; file names follow ESC-50: `{fold}-{src}-A-{target}.wav`.

use std::f64::consts::PI;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

use crate::audio::esc50::{Esc50Index, ESC50_FOLDS, ESC50_HEADER};
use crate::audio::wav::write_wav_mono16;
use crate::synth_marker::{is_complete, prepare_dir, write_marker};
use crate::{Error, Result};

/// Class names, indexed by target.
pub const SYNTH_AUDIO_CLASSES: [&str; 10] = [
    "pure_tone",
    "chirp_up",
    "chirp_down",
    "noise_burst",
    "harmonic_stack",
    "am_tremolo",
    "click_train",
    "siren",
    "rumble",
    "beeps",
];

/// Parameters of the synthetic ESC-50-like dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthAudioConfig {
    /// Number of classes, 1..=10 (the first ones of [`SYNTH_AUDIO_CLASSES`]).
    pub num_classes: usize,
    /// Clips per class in each of the 5 folds.
    pub clips_per_class_per_fold: usize,
    /// Sample rate of the written files, Hz.
    pub sample_rate: u32,
    /// Clip length, seconds.
    pub clip_seconds: f64,
    /// Peak level of the sound event, dBFS range.
    pub level_db: (f64, f64),
    /// Event-to-background SNR range, dB.
    pub snr_db: (f64, f64),
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SynthAudioConfig {
    /// 10 classes x 5 folds x 8 clips = 400 clips of 1 s at 16 kHz (about 13 MB).
    fn default() -> Self {
        Self {
            num_classes: 10,
            clips_per_class_per_fold: 8,
            sample_rate: 16_000,
            clip_seconds: 1.0,
            level_db: (-20.0, -3.0),
            snr_db: (6.0, 30.0),
            seed: 0,
        }
    }
}

impl SynthAudioConfig {
    /// A tiny set for tests: 4 classes x 5 folds x 2 clips of 0.25 s at 8 kHz.
    pub fn tiny() -> Self {
        Self {
            num_classes: 4,
            clips_per_class_per_fold: 2,
            sample_rate: 8_000,
            clip_seconds: 0.25,
            ..Self::default()
        }
    }

    /// Samples per clip.
    pub fn clip_len(&self) -> usize {
        (self.clip_seconds * self.sample_rate as f64).round() as usize
    }

    fn validate(&self) -> Result<()> {
        if !(1..=SYNTH_AUDIO_CLASSES.len()).contains(&self.num_classes) {
            return Err(Error::Config(format!(
                "num_classes = {} outside 1..=10",
                self.num_classes
            )));
        }
        if self.clips_per_class_per_fold == 0 {
            return Err(Error::Config("clips_per_class_per_fold must be > 0".into()));
        }
        if self.sample_rate < 4_000 {
            return Err(Error::Config(format!(
                "sample_rate = {} Hz below 4000 Hz",
                self.sample_rate
            )));
        }
        if !(self.clip_seconds.is_finite() && self.clip_seconds >= 0.1) {
            return Err(Error::Config(format!(
                "clip_seconds = {} below 0.1 s",
                self.clip_seconds
            )));
        }
        for (name, (lo, hi)) in [("level_db", self.level_db), ("snr_db", self.snr_db)] {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(Error::Config(format!(
                    "{name} = ({lo}, {hi}) is not a range lo <= hi"
                )));
            }
        }
        if self.level_db.1 > 0.0 {
            return Err(Error::Config("level_db must stay <= 0 dBFS".into()));
        }
        Ok(())
    }
}

/// Generates (or reuses) the dataset at `root` and returns its loaded index.
///
/// A root whose marker holds the same config is reused without touching the files; an
/// older or interrupted generation is replaced; a root with foreign files is refused.
pub fn generate_synth_esc50(root: &Path, cfg: &SynthAudioConfig) -> Result<Esc50Index> {
    cfg.validate()?;
    if !is_complete(root, cfg)? {
        prepare_dir(root, &["meta", "audio"])?;
        write_all(root, cfg)?;
        write_marker(root, cfg)?;
    }
    Esc50Index::load(root)
}

struct ClipSpec {
    fold: u8,
    target: usize,
    k: usize,
    filename: String,
    src: u64,
}

fn write_all(root: &Path, cfg: &SynthAudioConfig) -> Result<()> {
    let audio = root.join("audio");
    let meta = root.join("meta");
    for d in [&audio, &meta] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut specs = Vec::new();
    for fold in 1..=ESC50_FOLDS {
        for target in 0..cfg.num_classes {
            for j in 0..cfg.clips_per_class_per_fold {
                let k = (fold as usize - 1) * cfg.clips_per_class_per_fold + j;
                let src = 100_000 + (target * 10_000 + k) as u64;
                specs.push(ClipSpec {
                    fold,
                    target,
                    k,
                    filename: format!("{fold}-{src}-A-{target}.wav"),
                    src,
                });
            }
        }
    }
    specs.par_iter().try_for_each(|s| {
        let wave = synth_clip(cfg, s.target, s.k);
        write_wav_mono16(&audio.join(&s.filename), &wave, cfg.sample_rate)
    })?;
    let csv_path = meta.join("esc50.csv");
    let mut w = csv::Writer::from_path(&csv_path)
        .map_err(|e| Error::bad_file(&csv_path, format!("cannot create: {e}")))?;
    let werr = |e: csv::Error| Error::bad_file(&csv_path, format!("write failed: {e}"));
    w.write_record(ESC50_HEADER).map_err(werr)?;
    for s in &specs {
        w.write_record([
            s.filename.clone(),
            s.fold.to_string(),
            s.target.to_string(),
            SYNTH_AUDIO_CLASSES[s.target].to_string(),
            "True".to_string(),
            s.src.to_string(),
            "A".to_string(),
        ])
        .map_err(werr)?;
    }
    w.flush().map_err(|e| Error::io(&csv_path, e))
}

fn log_uniform(rng: &mut SeededRng, lo: f64, hi: f64) -> f64 {
    (rng.uniform_range(lo.ln(), hi.ln())).exp()
}

/// Raised-cosine attack/release envelope over `n` samples.
fn envelope(n: usize, attack: usize, release: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let a = if i < attack {
                0.5 - 0.5 * (PI * i as f64 / attack as f64).cos()
            } else {
                1.0
            };
            let j = n - 1 - i;
            let r = if j < release {
                0.5 - 0.5 * (PI * j as f64 / release as f64).cos()
            } else {
                1.0
            };
            a * r
        })
        .collect()
}

/// A sine whose instantaneous frequency is `freq(t)` Hz (phase integrated sample by sample).
fn fm_sine(n: usize, sr: f64, phase0: f64, freq: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut phase = phase0;
    (0..n)
        .map(|i| {
            let v = phase.sin();
            phase += 2.0 * PI * freq(i as f64 / sr) / sr;
            v
        })
        .collect()
}

/// Brown (integrated, leaky) noise normalised to unit peak.
fn brown_noise(n: usize, rng: &mut SeededRng) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            acc = 0.995 * acc + rng.normal();
            acc
        })
        .collect();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    v.iter_mut().for_each(|x| *x -= mean);
    normalise_peak(&mut v);
    v
}

fn normalise_peak(v: &mut [f64]) {
    let peak = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if peak > 0.0 {
        v.iter_mut().for_each(|x| *x /= peak);
    }
}

/// The sound event of class `target` over `n` samples (peak 1).
fn event(target: usize, n: usize, sr: f64, rng: &mut SeededRng) -> Vec<f64> {
    let dur = n as f64 / sr;
    let nyq = sr / 2.0;
    let phase0 = rng.uniform_range(0.0, 2.0 * PI);
    let mut v = match target {
        0 => {
            let f = log_uniform(rng, 250.0, 2000.0f64.min(0.4 * nyq));
            fm_sine(n, sr, phase0, |_| f)
        }
        1 | 2 => {
            let lo = log_uniform(rng, 200.0, 700.0);
            let hi = (lo * rng.uniform_range(2.0, 4.0)).min(0.8 * nyq);
            let (f0, f1) = if target == 1 { (lo, hi) } else { (hi, lo) };
            fm_sine(n, sr, phase0, |t| f0 * (f1 / f0).powf(t / dur))
        }
        3 => {
            let mut v = vec![0.0; n];
            let bursts = 1 + rng.below(3);
            for _ in 0..bursts {
                let len = ((rng.uniform_range(0.05, 0.2) * sr) as usize).clamp(1, n);
                let start = rng.below(n - len + 1);
                let env = envelope(len, len / 10 + 1, len / 4 + 1);
                for (i, e) in env.iter().enumerate() {
                    v[start + i] += e * rng.normal();
                }
            }
            v
        }
        4 => {
            let f0 = log_uniform(rng, 100.0, 400.0);
            let kmax = 6 + rng.below(5);
            let phases: Vec<f64> = (0..kmax)
                .map(|_| rng.uniform_range(0.0, 2.0 * PI))
                .collect();
            (0..n)
                .map(|i| {
                    let t = i as f64 / sr;
                    (1..=kmax)
                        .filter(|&k| k as f64 * f0 < 0.9 * nyq)
                        .map(|k| (2.0 * PI * k as f64 * f0 * t + phases[k - 1]).sin() / k as f64)
                        .sum()
                })
                .collect()
        }
        5 => {
            let f = log_uniform(rng, 300.0, 1500.0f64.min(0.4 * nyq));
            let m = rng.uniform_range(0.7, 1.0);
            let fm = rng.uniform_range(4.0, 12.0);
            let c = fm_sine(n, sr, phase0, |_| f);
            (0..n)
                .map(|i| c[i] * (1.0 + m * (2.0 * PI * fm * i as f64 / sr).sin()) / (1.0 + m))
                .collect()
        }
        6 => {
            let period = ((rng.uniform_range(0.015, 0.08) * sr) as usize).max(2);
            let decay = rng.uniform_range(0.0005, 0.002) * sr;
            let offset = rng.below(period);
            (0..n)
                .map(|i| {
                    // Click k starts at offset + (k - 1) * period; clicks alternate in sign.
                    let shifted = i + period - offset;
                    let (click, since) = (shifted / period, shifted % period);
                    let sign = if click.is_multiple_of(2) { 1.0 } else { -1.0 };
                    sign * (-(since as f64) / decay).exp()
                })
                .collect()
        }
        7 => {
            let fc = log_uniform(rng, 400.0, 1200.0f64.min(0.3 * nyq));
            let beta = rng.uniform_range(0.2, 0.4);
            let fv = rng.uniform_range(0.7, 3.0).max(1.0 / dur);
            let ph = rng.uniform_range(0.0, 2.0 * PI);
            fm_sine(n, sr, phase0, |t| {
                fc * (1.0 + beta * (2.0 * PI * fv * t + ph).sin())
            })
        }
        8 => brown_noise(n, rng),
        9 => {
            let f = log_uniform(rng, 500.0, 2500.0f64.min(0.4 * nyq));
            let count = 2 + rng.below(4);
            let slot = n / count;
            let len = ((rng.uniform_range(0.3, 0.6) * slot as f64) as usize).max(1);
            let tone = fm_sine(n, sr, phase0, |_| f);
            let env = envelope(len, len / 8 + 1, len / 8 + 1);
            let mut v = vec![0.0; n];
            for b in 0..count {
                for (i, e) in env.iter().enumerate() {
                    let j = b * slot + i;
                    if j < n {
                        v[j] = tone[j] * e;
                    }
                }
            }
            v
        }
        _ => unreachable!("target checked by validate"),
    };
    normalise_peak(&mut v);
    v
}

/// Clip `k` of class `target` (`cfg.clip_len()` samples in [-1, 1]); a pure function of
/// `(cfg.seed, target, k)` and the config.
pub fn synth_clip(cfg: &SynthAudioConfig, target: usize, k: usize) -> Vec<f32> {
    let mut rng = SeededRng::derive(cfg.seed, &[0xA0D1_0000, target as u64, k as u64]);
    let n = cfg.clip_len();
    let sr = cfg.sample_rate as f64;
    // Event: 40-90 % of the clip, random onset, short raised-cosine edges.
    let len = ((rng.uniform_range(0.4, 0.9) * n as f64) as usize).clamp(1, n);
    let onset = rng.below(n - len + 1);
    let mut ev = event(target, len, sr, &mut rng);
    let edge = ((0.01 * sr) as usize).clamp(1, len / 2 + 1);
    for (x, e) in ev.iter_mut().zip(envelope(len, edge, edge)) {
        *x *= e;
    }
    let level = 10f64.powf(rng.uniform_range(cfg.level_db.0, cfg.level_db.1) / 20.0);
    let mut out = vec![0.0f64; n];
    for (i, x) in ev.iter().enumerate() {
        out[onset + i] = level * x;
    }
    // Background: a white/brown mix at a random SNR relative to the event's power.
    let p_event = out.iter().map(|x| x * x).sum::<f64>() / n as f64;
    let snr = rng.uniform_range(cfg.snr_db.0, cfg.snr_db.1);
    let mix = rng.uniform();
    let brown = brown_noise(n, &mut rng);
    let mut bg: Vec<f64> = brown
        .iter()
        .map(|b| mix * b + (1.0 - mix) * rng.normal() * 0.3)
        .collect();
    let p_bg = bg.iter().map(|x| x * x).sum::<f64>() / n as f64;
    if p_bg > 0.0 && p_event > 0.0 {
        let g = (p_event / 10f64.powf(snr / 10.0) / p_bg).sqrt();
        bg.iter_mut().for_each(|x| *x *= g);
    }
    out.iter()
        .zip(&bg)
        .map(|(s, b)| (s + b).clamp(-1.0, 1.0) as f32)
        .collect()
}

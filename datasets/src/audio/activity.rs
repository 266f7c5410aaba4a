//! Where the sound is in a clip: frame activity, crops that contain sound, and
//! the windows that evaluation averages over.
//!
//! Real recordings are often padded with digital silence (ESC-50: 5 s clips
//! holding 0.5-2 s of sound). A frame is *active* when its RMS is within
//! `threshold_db` of the loudest frame's RMS and above [`SILENCE_RMS`]
//! (digital silence is never active). Frames are [`ActivityConfig::frame_len`]
//! samples, laid end to end from sample 0 (a last partial frame counts).

use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

use crate::audio::crop::{center_crop_or_pad, random_crop_or_pad};
use crate::{Error, Result};

/// RMS at or below which a frame is silence whatever the clip's level
/// (about -100 dBFS: 16-bit digital silence and dither stay below it).
pub const SILENCE_RMS: f64 = 1e-5;

/// How training crops are placed in a clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CropPolicy {
    /// A window that contains an active frame drawn uniformly among the clip's
    /// active frames (uniform placement when the clip has none).
    #[default]
    Active,
    /// Uniform placement over the whole clip (silence included).
    Uniform,
}

/// What a frozen encoder sees of a whole clip at evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EvalView {
    /// The whole clip in one forward pass (padded to the longest clip of the set;
    /// the encoders end in global average pooling, so any length works).
    #[default]
    Full,
    /// The mean of the representations of training-length windows (hop: half a
    /// window) that hold sound; all windows when none does.
    Windows,
    /// One centred crop of the training length (the old behaviour; it can miss
    /// the sound of a padded clip).
    Center,
}

impl std::str::FromStr for CropPolicy {
    type Err = String;

    /// `active` or `uniform`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "uniform" => Ok(Self::Uniform),
            _ => Err(format!("unknown crop policy `{s}` (active or uniform)")),
        }
    }
}

impl std::str::FromStr for EvalView {
    type Err = String;

    /// `full`, `windows` or `center`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "full" => Ok(Self::Full),
            "windows" => Ok(Self::Windows),
            "center" => Ok(Self::Center),
            _ => Err(format!("unknown eval view `{s}` (full, windows or center)")),
        }
    }
}

impl EvalView {
    /// The name used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            EvalView::Full => "full",
            EvalView::Windows => "windows",
            EvalView::Center => "center",
        }
    }
}

/// Frame activity settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityConfig {
    /// Frame length in samples (at the model's rate).
    pub frame_len: usize,
    /// A frame is active when its RMS is at least the loudest frame's RMS times
    /// `10^(threshold_db / 20)`; `threshold_db` <= 0.
    pub threshold_db: f64,
}

impl Default for ActivityConfig {
    /// 20 ms frames at 16 kHz, frames within 30 dB of the loudest.
    fn default() -> Self {
        Self {
            frame_len: 320,
            threshold_db: -30.0,
        }
    }
}

impl ActivityConfig {
    /// 20 ms frames at `sample_rate` Hz with the given threshold.
    pub fn for_rate(sample_rate: u32, threshold_db: f64) -> Self {
        Self {
            frame_len: ((sample_rate as usize) / 50).max(1),
            threshold_db,
        }
    }

    /// Checks the frame length and the threshold.
    pub fn validate(&self) -> Result<()> {
        if self.frame_len == 0 {
            return Err(Error::Config("activity frame_len must be > 0".into()));
        }
        if !(self.threshold_db.is_finite() && (-200.0..=0.0).contains(&self.threshold_db)) {
            return Err(Error::Config(format!(
                "activity threshold_db = {} outside [-200, 0]",
                self.threshold_db
            )));
        }
        Ok(())
    }

    /// Activity of each frame of `wave` (see the module docs).
    pub fn active_frames(&self, wave: &[f32]) -> Vec<bool> {
        let rms: Vec<f64> = wave
            .chunks(self.frame_len.max(1))
            .map(|f| {
                (f.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / f.len() as f64).sqrt()
            })
            .collect();
        let peak = rms.iter().cloned().fold(0.0, f64::max);
        let floor = (peak * 10f64.powf(self.threshold_db / 20.0)).max(SILENCE_RMS);
        rms.iter().map(|&r| r > SILENCE_RMS && r >= floor).collect()
    }

    /// A crop of `len` samples that contains an active frame drawn uniformly
    /// among the active frames, the window placed uniformly among the positions
    /// that hold that frame (clamped to the clip). A clip shorter than `len` is
    /// placed at a random offset in zeros (all of it is kept); a clip with no
    /// active frame is cropped uniformly. Draws: one frame index, one offset.
    pub fn active_crop(&self, wave: &[f32], len: usize, rng: &mut SeededRng) -> Vec<f32> {
        let n = wave.len();
        if n <= len {
            return random_crop_or_pad(wave, len, rng);
        }
        let active: Vec<usize> = self
            .active_frames(wave)
            .iter()
            .enumerate()
            .filter(|(_, &a)| a)
            .map(|(i, _)| i)
            .collect();
        if active.is_empty() {
            return random_crop_or_pad(wave, len, rng);
        }
        let f = active[rng.below(active.len())];
        // The frame's first sample must fall inside the window: start in [s0 - len + 1, s0].
        let s0 = f * self.frame_len;
        let lo = (s0 + 1).saturating_sub(len);
        let hi = s0.min(n - len);
        let lo = lo.min(hi);
        let start = lo + rng.below(hi - lo + 1);
        wave[start..start + len].to_vec()
    }

    /// The evaluation windows of `wave`: windows of `len` samples every
    /// `len / 2` samples (the last one aligned to the clip's end), each with
    /// weight 1 when it holds an active frame, else 0; when no window holds
    /// one, all weigh 1. A clip shorter than `len` is one centred, zero-padded
    /// window. Returns `(windows, weights)`.
    pub fn eval_windows(&self, wave: &[f32], len: usize) -> (Vec<Vec<f32>>, Vec<f32>) {
        let n = wave.len();
        if n <= len {
            return (vec![center_crop_or_pad(wave, len)], vec![1.0]);
        }
        let hop = (len / 2).max(1);
        let mut starts: Vec<usize> = (0..=(n - len)).step_by(hop).collect();
        if starts.last() != Some(&(n - len)) {
            starts.push(n - len);
        }
        let active = self.active_frames(wave);
        let fl = self.frame_len.max(1);
        let mut weights: Vec<f32> = starts
            .iter()
            .map(|&s| {
                let (a, b) = (s / fl, (s + len).div_ceil(fl).min(active.len()));
                f32::from(u8::from(active[a..b].iter().any(|&x| x)))
            })
            .collect();
        if weights.iter().all(|&w| w == 0.0) {
            weights.iter_mut().for_each(|w| *w = 1.0);
        }
        let windows = starts.iter().map(|&s| wave[s..s + len].to_vec()).collect();
        (windows, weights)
    }

    /// The number of windows [`eval_windows`](Self::eval_windows) makes of a clip of `n` samples.
    pub fn window_count(n: usize, len: usize) -> usize {
        if n <= len {
            return 1;
        }
        let hop = (len / 2).max(1);
        let k = (n - len) / hop + 1;
        k + usize::from((k - 1) * hop != n - len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 s at 1 kHz: a 100-sample tone at `at`, digital silence elsewhere.
    fn padded(at: usize) -> Vec<f32> {
        let mut w = vec![0.0f32; 1000];
        for (i, v) in w[at..at + 100].iter_mut().enumerate() {
            *v = (i as f32 * 0.3).sin() * 0.5;
        }
        w
    }

    #[test]
    fn digital_silence_is_never_active() {
        let a = ActivityConfig {
            frame_len: 10,
            threshold_db: -200.0,
        };
        let f = a.active_frames(&padded(100));
        assert_eq!(f.iter().filter(|&&x| x).count(), 10);
        assert!(f[10..20].iter().all(|&x| x));
    }

    #[test]
    fn active_crops_always_hold_the_sound() {
        let a = ActivityConfig {
            frame_len: 10,
            threshold_db: -30.0,
        };
        let w = padded(50);
        let mut rng = SeededRng::new(3);
        for _ in 0..500 {
            let c = a.active_crop(&w, 200, &mut rng);
            assert_eq!(c.len(), 200);
            assert!(c.iter().any(|&v| v != 0.0), "a crop missed the sound");
        }
        // Uniform crops of the same clip often miss it.
        let misses = (0..500)
            .filter(|_| {
                random_crop_or_pad(&w, 200, &mut rng)
                    .iter()
                    .all(|&v| v == 0.0)
            })
            .count();
        assert!(misses > 100, "{misses}");
    }

    #[test]
    fn eval_windows_cover_the_clip_and_weigh_the_sound() {
        let a = ActivityConfig {
            frame_len: 10,
            threshold_db: -30.0,
        };
        let w = padded(0);
        let (wins, wts) = a.eval_windows(&w, 300);
        assert_eq!(wins.len(), ActivityConfig::window_count(1000, 300));
        // starts 0, 150, 300, 450, 600 and the end-aligned 700.
        assert_eq!(wins.len(), 6);
        assert_eq!(wts, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&wins[5][..], &w[700..]);
        let (one, w1) = a.eval_windows(&w[..100], 300);
        assert_eq!((one.len(), one[0].len(), w1), (1, 300, vec![1.0]));
        for n in [301, 450, 451, 1000, 1234] {
            let (wins, _) = a.eval_windows(&vec![0.1; n], 300);
            assert_eq!(wins.len(), ActivityConfig::window_count(n, 300), "n={n}");
        }
    }

    #[test]
    fn silent_clip_falls_back_to_uniform_and_all_windows() {
        let a = ActivityConfig::default();
        let z = vec![0.0f32; 5000];
        let mut rng = SeededRng::new(0);
        assert_eq!(a.active_crop(&z, 1000, &mut rng).len(), 1000);
        let (_, wts) = a.eval_windows(&z, 1000);
        assert!(wts.iter().all(|&w| w == 1.0));
    }
}

//! The audio keys of a pretraining config: the model's sample rate, the
//! length of a view, where training crops go, the augmentations a config
//! exposes (speed change, background mixing, coloured noise) and what
//! evaluation shows a frozen encoder of a clip.
//!
//! [`AudioSettings`] is a serde section with `Default` (the paper's ESC-50
//! values) and a [`validate`](AudioSettings::validate) that names the bad
//! key, meant to be `#[serde(flatten)]`ed into an app's flat config, as the
//! sections of `vicreg_core::recipe` are (so the keys stay flat and
//! kebab-case: `sample-rate = 16000`, not `[audio]`). With the `cli` feature,
//! `AudioFlags` is the same keys as `--key` flags, an unset flag keeping the
//! file's value; an app flattens it into its command with
//! `#[command(flatten)]` and `#[serde(flatten)]`.
//!
//! ```
//! use datasets::audio::settings::AudioSettings;
//!
//! let s = AudioSettings { sample_rate: 16_000, clip_seconds: 2.0, ..AudioSettings::default() };
//! s.validate()?;
//! assert_eq!(s.clip_len(), 32_000);
//! assert_eq!(s.activity().frame_len, 320); // 20 ms frames
//! assert_eq!(s.train_views().clip_len, 32_000);
//! # Ok::<(), datasets::Error>(())
//! ```

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use vicreg_core::limits::{check_float, check_int, FloatRange};

use crate::audio::activity::{ActivityConfig, CropPolicy, EvalView};
use crate::audio::augment::AudioViewConfig;
use crate::audio::esc50::Esc50Index;
use crate::audio::eval_input::EvalPlan;
use crate::{Error, Result};

/// Model sample rates, Hz (below 4 kHz the log-mel front end degenerates).
pub const SAMPLE_RATE: RangeInclusive<u64> = 4_000..=768_000;
/// Clip length, seconds: `(0, 600]`.
pub const CLIP_SECONDS: FloatRange = FloatRange::above(0.0, 600.0);
/// Speed factors: `(0, 4]`.
pub const SPEED: FloatRange = FloatRange::above(0.0, 4.0);
/// Noise colouring pole: `[0, 0.999]`.
pub const NOISE_COLOUR: FloatRange = FloatRange::closed(0.0, 0.999);
/// Activity threshold, dB below the loudest frame: `[-120, 0]`.
pub const ACTIVE_DB: FloatRange = FloatRange::closed(-120.0, 0.0);

/// The audio section of a config (keys `sample-rate`, `clip-seconds`,
/// `crop`, `active-db`, `speed-prob`, `speed-range`, `mix-prob`,
/// `noise-colour`, `eval-view`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct AudioSettings {
    /// Rate the clips are resampled to, Hz.
    pub sample_rate: u32,
    /// Length of each view, seconds (ESC-50 clips are 5 s).
    pub clip_seconds: f64,
    /// Where training crops go: `active` (a window around sound: real clips are
    /// often padded with silence) or `uniform` (anywhere in the clip).
    pub crop: CropPolicy,
    /// Active crops: a 20 ms frame holds sound when its RMS is within this many dB
    /// of the clip's loudest frame (and above digital silence). In [-120, 0].
    pub active_db: f64,
    /// Probability, per training view, of a random speed change (resampling by
    /// a factor in `speed-range`: pitch and tempo move together), so the views
    /// of a clip do not share its exact pitch. In [0, 1].
    pub speed_prob: f64,
    /// Speed factors `[lo, hi]` (log-uniform), 0 < lo <= hi <= 4.
    pub speed_range: (f64, f64),
    /// Probability, per training view, of mixing in another training clip as
    /// background (-20 to -6 dB below the view): the views of a clip then share
    /// its sound but not its background. In [0, 1].
    pub mix_prob: f64,
    /// Largest pole of the low-pass that colours the added noise (0: white
    /// noise; each noisy view draws a pole in [0, noise-colour]). In [0, 0.999].
    pub noise_colour: f64,
    /// What evaluation shows the frozen encoders of a clip: `full` (the whole
    /// clip at once), `windows` (the mean over training-length windows that
    /// hold sound) or `center` (one centred crop).
    pub eval_view: EvalView,
}

impl Default for AudioSettings {
    /// The paper's ESC-50 setting: 5 s views at 44.1 kHz, crops around sound
    /// (frames within 30 dB of the loudest), no speed change, mixing or noise
    /// colouring, whole clips at evaluation.
    fn default() -> Self {
        Self {
            sample_rate: 44_100,
            clip_seconds: 5.0,
            crop: CropPolicy::Active,
            active_db: -30.0,
            speed_prob: 0.0,
            speed_range: (0.8, 1.25),
            mix_prob: 0.0,
            noise_colour: 0.0,
            eval_view: EvalView::Full,
        }
    }
}

impl AudioSettings {
    /// Checks every numeric key against the bounds of its flag; the error
    /// names the key.
    pub fn validate(&self) -> Result<()> {
        check_int("sample-rate", self.sample_rate, &SAMPLE_RATE)?;
        check_float("clip-seconds", self.clip_seconds, CLIP_SECONDS)?;
        check_float("active-db", self.active_db, ACTIVE_DB)?;
        check_float("mix-prob", self.mix_prob, FloatRange::UNIT)?;
        check_float("speed-prob", self.speed_prob, FloatRange::UNIT)?;
        let (lo, hi) = self.speed_range;
        check_float("speed-range", lo, SPEED)?;
        check_float("speed-range", hi, SPEED)?;
        if lo > hi {
            return Err(Error::Config(format!(
                "`speed-range` = [{lo}, {hi}]: lo must be <= hi"
            )));
        }
        check_float("noise-colour", self.noise_colour, NOISE_COLOUR)?;
        Ok(())
    }

    /// Samples per view at the model's rate.
    pub fn clip_len(&self) -> usize {
        (self.clip_seconds * self.sample_rate as f64).round() as usize
    }

    /// What counts as sound (20 ms frames at the model's rate, `active-db`).
    pub fn activity(&self) -> ActivityConfig {
        ActivityConfig::for_rate(self.sample_rate, self.active_db)
    }

    /// The augmentation of one training view: `clip-seconds` crops placed by
    /// `crop`, then the default gain / noise / shift.
    pub fn train_views(&self) -> AudioViewConfig {
        AudioViewConfig {
            crop: self.crop,
            activity: self.activity(),
            mix_prob: self.mix_prob,
            noise_colour_max: self.noise_colour,
            speed_prob: self.speed_prob,
            speed: self.speed_range,
            ..AudioViewConfig::with_clip_len(self.clip_len())
        }
    }

    /// The evaluation plan of `view` for the clips of `index` (training
    /// windows of `clip-seconds`; see [`EvalPlan::new`]).
    pub fn eval_plan(&self, index: &Esc50Index, view: EvalView) -> Result<EvalPlan> {
        EvalPlan::new(
            index,
            view,
            self.clip_len(),
            self.sample_rate,
            self.activity(),
        )
    }

    /// The evaluation plan of `view` for single files of any length (see
    /// [`EvalPlan::for_files`]).
    pub fn file_plan(&self, view: EvalView) -> EvalPlan {
        EvalPlan::for_files(view, self.clip_len(), self.sample_rate, self.activity())
    }
}

/// Parses `lo,hi` speed factors, each in (0, 4], lo <= hi (the value of `--speed-range`).
pub fn parse_speed_range(s: &str) -> std::result::Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("`{s}`: expected lo,hi (e.g. 0.8,1.25)"))?;
    let lo = SPEED.parse(a)?;
    let hi = SPEED.parse(b)?;
    if lo > hi {
        return Err(format!("`{s}`: lo must be <= hi"));
    }
    Ok((lo, hi))
}

/// [`AudioSettings`] as flags (each overrides the same key of a config file).
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AudioFlags {
    /// Rate clips are resampled to (e.g. 16000, 22050, 44100). Range 4000..=768000 Hz.
    #[arg(long, value_parser = vicreg_core::limits::int::<u32>(SAMPLE_RATE))]
    pub sample_rate: Option<u32>,
    /// Length of each view, seconds (ESC-50 clips are 5 s). Seconds in (0, 600].
    #[arg(long, value_parser = |s: &str| CLIP_SECONDS.parse(s))]
    pub clip_seconds: Option<f64>,
    /// Probability per training view of a random speed change (pitch and tempo). In [0, 1].
    #[arg(long, value_parser = vicreg_core::limits::unit_interval)]
    pub speed_prob: Option<f64>,
    /// Speed factor range, `lo,hi` (log-uniform), each in (0, 4].
    #[arg(long, value_parser = parse_speed_range)]
    pub speed_range: Option<(f64, f64)>,
    /// Probability per training view of mixing in another clip as background. In [0, 1].
    #[arg(long, value_parser = vicreg_core::limits::unit_interval)]
    pub mix_prob: Option<f64>,
    /// Largest pole of the low-pass colouring the added noise (0: white). In [0, 0.999].
    #[arg(long, value_parser = |s: &str| NOISE_COLOUR.parse(s))]
    pub noise_colour: Option<f64>,
    /// Where training crops go: active (around sound, default) or uniform (anywhere).
    #[arg(long)]
    pub crop: Option<CropPolicy>,
    /// Active crops: a 20 ms frame holds sound when within this many dB of the loudest (default -30). In [-120, 0].
    #[arg(long, allow_hyphen_values = true, value_parser = |s: &str| ACTIVE_DB.parse(s))]
    pub active_db: Option<f64>,
    /// What evaluation shows the frozen encoders: full (the whole clip, default), windows (mean over windows that hold sound) or center (one centred crop).
    #[arg(long)]
    pub eval_view: Option<EvalView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_key_is_named() {
        AudioSettings::default().validate().unwrap();
        let bad = [
            AudioSettings {
                sample_rate: 100,
                ..AudioSettings::default()
            },
            AudioSettings {
                clip_seconds: 0.0,
                ..AudioSettings::default()
            },
            AudioSettings {
                active_db: 3.0,
                ..AudioSettings::default()
            },
            AudioSettings {
                mix_prob: 1.5,
                ..AudioSettings::default()
            },
            AudioSettings {
                speed_prob: f64::NAN,
                ..AudioSettings::default()
            },
            AudioSettings {
                speed_range: (1.2, 0.9),
                ..AudioSettings::default()
            },
            AudioSettings {
                noise_colour: 1.0,
                ..AudioSettings::default()
            },
        ];
        let keys = [
            "sample-rate",
            "clip-seconds",
            "active-db",
            "mix-prob",
            "speed-prob",
            "speed-range",
            "noise-colour",
        ];
        for (s, key) in bad.iter().zip(keys) {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn derived_values_follow_the_keys() {
        let s = AudioSettings {
            sample_rate: 8000,
            clip_seconds: 1.25,
            crop: CropPolicy::Uniform,
            mix_prob: 0.3,
            noise_colour: 0.5,
            speed_prob: 0.2,
            speed_range: (0.9, 1.1),
            ..AudioSettings::default()
        };
        assert_eq!(s.clip_len(), 10_000);
        assert_eq!(s.activity(), ActivityConfig::for_rate(8000, -30.0));
        let v = s.train_views();
        assert_eq!(
            (v.clip_len, v.crop, v.mix_prob, v.noise_colour_max),
            (10_000, CropPolicy::Uniform, 0.3, 0.5)
        );
        assert_eq!((v.speed_prob, v.speed), (0.2, (0.9, 1.1)));
        let p = s.file_plan(EvalView::Windows);
        assert_eq!(
            (p.window_len, p.full_len, p.sample_rate),
            (10_000, 480_000, 8000)
        );
    }

    #[test]
    fn keys_are_flat_and_kebab_case() {
        let text = toml::to_string(&AudioSettings::default()).unwrap();
        for key in [
            "sample-rate = 44100",
            "speed-range = [",
            "eval-view = \"full\"",
        ] {
            assert!(text.contains(key), "{text}");
        }
        let back: AudioSettings = toml::from_str("clip-seconds = 2.0\n").unwrap();
        assert_eq!(back.clip_seconds, 2.0);
        assert_eq!(back.sample_rate, 44_100);
    }

    #[test]
    fn speed_ranges_parse_and_refuse_inverted_bounds() {
        assert_eq!(parse_speed_range("0.8,1.25"), Ok((0.8, 1.25)));
        assert!(parse_speed_range("1.2,0.9")
            .unwrap_err()
            .contains("lo must be"));
        assert!(parse_speed_range("0.9").is_err());
        assert!(parse_speed_range("0,1").is_err());
    }
}

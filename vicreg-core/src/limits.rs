//! Allowed values of the numeric flags and config keys every app shares
//! (epochs, batch size, workers, ...), the float ranges, and the parsers and
//! checks that use them, so that the command line and a config file refuse
//! the same values with the same message.
//!
//! ```
//! use vicreg_core::limits::{check_float, check_int, int, FloatRange, EPOCHS};
//!
//! assert!(check_int("epochs", 0usize, &EPOCHS).is_err());
//! assert!(check_float("lr", f64::NAN, FloatRange::NON_NEGATIVE).is_err());
//! let parse = int::<usize>(EPOCHS);
//! assert_eq!(parse("12"), Ok(12));
//! assert!(parse("0").unwrap_err().contains("1..=100000"));
//! ```

use std::ops::RangeInclusive;

use crate::{Error, Result};

/// Epochs (any training loop).
pub const EPOCHS: RangeInclusive<u64> = 1..=100_000;
/// Warm-up epochs.
pub const WARMUP_EPOCHS: RangeInclusive<u64> = 0..=100_000;
/// Batch sizes (items per step).
pub const BATCH_SIZE: RangeInclusive<u64> = 1..=1_048_576;
/// Loader worker threads.
pub const NUM_WORKERS: RangeInclusive<u64> = 0..=256;
/// Steps between metrics records.
pub const LOG_EVERY: RangeInclusive<u64> = 1..=1_000_000_000;
/// Steps between extra checkpoints (0: only at epoch ends).
pub const CHECKPOINT_EVERY: RangeInclusive<u64> = 0..=1_000_000_000;
/// Hidden widths (predictor MLPs, text encoders).
pub const WIDTH: RangeInclusive<u64> = 1..=65_536;
/// Seconds a collective may take: `(0, 604800]` (a week).
pub const COLLECTIVE_TIMEOUT: FloatRange = FloatRange::above(0.0, 604_800.0);

/// A set of finite floats: `min` (inclusive or not) up to `max` (inclusive;
/// infinite: no upper bound). NaN and infinities are never in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloatRange {
    /// Lower bound.
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub min_inclusive: bool,
    /// Upper bound (inclusive); `f64::INFINITY`: none.
    pub max: f64,
}

impl FloatRange {
    /// Finite and `>= 0` (learning rates, weight decay, loss coefficients).
    pub const NON_NEGATIVE: Self = Self {
        min: 0.0,
        min_inclusive: true,
        max: f64::INFINITY,
    };
    /// Finite and `> 0` (temperatures, gradient-clip norms).
    pub const POSITIVE: Self = Self {
        min: 0.0,
        min_inclusive: false,
        max: f64::INFINITY,
    };
    /// `[0, 1]` (momentum).
    pub const UNIT: Self = Self {
        min: 0.0,
        min_inclusive: true,
        max: 1.0,
    };

    /// `(min, max]`.
    pub const fn above(min: f64, max: f64) -> Self {
        Self {
            min,
            min_inclusive: false,
            max,
        }
    }

    /// `[min, max]`.
    pub const fn closed(min: f64, max: f64) -> Self {
        Self {
            min,
            min_inclusive: true,
            max,
        }
    }

    /// Whether `v` is allowed.
    pub fn contains(&self, v: f64) -> bool {
        v.is_finite()
            && (if self.min_inclusive {
                v >= self.min
            } else {
                v > self.min
            })
            && v <= self.max
    }

    /// The allowed values in words, e.g. `a finite number in (0, 600]`.
    pub fn describe(&self) -> String {
        let op = if self.min_inclusive { ">=" } else { ">" };
        if self.max.is_infinite() {
            format!("a finite number {op} {}", self.min)
        } else {
            let open = if self.min_inclusive { '[' } else { '(' };
            format!("a finite number in {open}{}, {}]", self.min, self.max)
        }
    }

    /// Parses `s` as an allowed value (the message names the range).
    pub fn parse(&self, s: &str) -> std::result::Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number; expected {}", self.describe()))?;
        if self.contains(v) {
            Ok(v)
        } else {
            Err(format!("{v} is out of range; expected {}", self.describe()))
        }
    }
}

/// Parser of a finite float `>= 0` (a clap `value_parser`).
pub fn finite_non_negative(s: &str) -> std::result::Result<f64, String> {
    FloatRange::NON_NEGATIVE.parse(s)
}

/// Parser of a finite float `> 0`.
pub fn finite_positive(s: &str) -> std::result::Result<f64, String> {
    FloatRange::POSITIVE.parse(s)
}

/// Parser of a float in `[0, 1]`.
pub fn unit_interval(s: &str) -> std::result::Result<f64, String> {
    FloatRange::UNIT.parse(s)
}

/// Parser of an integer of type `T` restricted to `r` (usable as a clap
/// `value_parser`; the message names the range).
pub fn int<T>(
    r: RangeInclusive<u64>,
) -> impl Fn(&str) -> std::result::Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64>,
{
    move |s: &str| {
        let v: u64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an integer in {}..={}", r.start(), r.end()))?;
        if !r.contains(&v) {
            return Err(format!("{v} is not in {}..={}", r.start(), r.end()));
        }
        T::try_from(v).map_err(|_| format!("{v} does not fit this flag's type"))
    }
}

/// Fails naming `key` when the integer `v` is outside `r`.
pub fn check_int<T: TryInto<u64> + Copy + std::fmt::Display>(
    key: &str,
    v: T,
    r: &RangeInclusive<u64>,
) -> Result<()> {
    match v.try_into() {
        Ok(x) if r.contains(&x) => Ok(()),
        _ => Err(Error::config(format!(
            "`{key}` = {v} is out of range; allowed {}..={}",
            r.start(),
            r.end()
        ))),
    }
}

/// Fails naming `key` when the float `v` is not in `r` (NaN, infinite, out of range).
pub fn check_float(key: &str, v: f64, r: FloatRange) -> Result<()> {
    if r.contains(v) {
        Ok(())
    } else {
        Err(Error::config(format!(
            "`{key}` = {v} is out of range; expected {}",
            r.describe()
        )))
    }
}

//! Sample-rate conversion with rubato's synchronous FFT resampler (band-limited,
//! BlackmanHarris2 anti-aliasing window; the resampler's start-up delay is trimmed,
//! so output sample `k` lines up with input time `k / target_rate`).

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{audioadapter_buffers, Fft, FixedSync, Resampler};

use crate::{Error, Result};

/// Frames per processing chunk of the FFT resampler.
const CHUNK: usize = 1024;

thread_local! {
    /// Resamplers per (from, to) rate pair, per thread: FFT planning dominates short clips,
    /// and `process_all` resets a resampler's state before use, so reuse is exact.
    static CACHE: RefCell<HashMap<(u32, u32), Fft<f32>>> = RefCell::new(HashMap::new());
}

/// The most samples [`resample`] produces (2^31, 8 GiB of `f32`: 12 hours
/// at 48 kHz); more is refused before anything is allocated.
pub const MAX_RESAMPLED_LEN: usize = 1 << 31;

/// Number of output samples for `n` input samples: `round(n * to / from)`,
/// saturating at `usize::MAX`; 0 when `from` is 0.
pub fn resampled_len(n: usize, from: u32, to: u32) -> usize {
    if from == 0 {
        return 0;
    }
    let len = (n as u128 * to as u128 + from as u128 / 2) / from as u128;
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Resamples a mono signal from `from` Hz to `to` Hz. The output has exactly
/// [`resampled_len`]`(samples.len(), from, to)` samples; equal rates return a copy.
/// A zero rate, or an output longer than [`MAX_RESAMPLED_LEN`], is an
/// [`Error::Config`].
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(Error::Config(format!(
            "sample rates must be > 0 (got {from} -> {to})"
        )));
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let want = resampled_len(samples.len(), from, to);
    if want > MAX_RESAMPLED_LEN {
        return Err(Error::Config(format!(
            "resampling {} samples {from} Hz -> {to} Hz gives {want} samples, more than {MAX_RESAMPLED_LEN}",
            samples.len()
        )));
    }
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .map_err(|e| Error::Config(format!("resampler input buffer: {e}")))?;
    let out = CACHE.with(|cache| -> Result<_> {
        let mut cache = cache.borrow_mut();
        let r = match cache.entry((from, to)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(
                Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Input).map_err(
                    |e| {
                        Error::Config(format!(
                            "cannot build a {from} Hz -> {to} Hz resampler: {e}"
                        ))
                    },
                )?,
            ),
        };
        r.process_all(&input, samples.len(), None)
            .map_err(|e| Error::Config(format!("resampling {from} Hz -> {to} Hz: {e}")))
    })?;
    let mut v = out.take_data();
    v.resize(want, 0.0);
    Ok(v)
}

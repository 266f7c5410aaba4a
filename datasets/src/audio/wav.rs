//! WAV decoding (hound) to mono `f32` samples in [-1, 1], and 16-bit writing.
//!
//! Supported encodings: 8/16/24/32-bit integer PCM and 32-bit float, any number of
//! channels (downmixed to mono by averaging the channels of each frame), any rate.
//!
//! Sizes in a header are never trusted for allocation: the rate and channel
//! count are range-checked, and the sample buffer grows with the samples
//! actually read (its first reservation is bounded by the file's size), so a
//! header that claims 4 G samples in a 1 kB file costs 1 kB.

use std::path::Path;

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use crate::audio::resample::resample;
use crate::{Error, Result};

/// A mono waveform: samples in [-1, 1] (float files may exceed it) at `sample_rate` Hz.
#[derive(Clone, Debug, PartialEq)]
pub struct Waveform {
    /// One value per frame, channels already averaged.
    pub samples: Vec<f32>,
    /// Frames per second.
    pub sample_rate: u32,
}

impl Waveform {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

fn hound_err(path: &Path, e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::NotFound => {
            Error::io(path, io)
        }
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::bad_file(path, "truncated wav file (unexpected end of data)")
        }
        other => Error::bad_file(path, format!("unreadable wav file: {other}")),
    }
}

/// Lowest sample rate a wav file may declare (Hz).
pub const MIN_WAV_RATE: u32 = 1_000;
/// Highest sample rate a wav file may declare (Hz): resampling a header that
/// claims more would allocate by a number the file does not back.
pub const MAX_WAV_RATE: u32 = 768_000;
/// Most channels a wav file may declare.
pub const MAX_WAV_CHANNELS: usize = 64;

/// Duration of a wav file in seconds, from its header alone (the same rate and
/// channel checks as [`read_wav`]; a file whose header is unreadable is an
/// error naming it).
pub fn wav_seconds(path: &Path) -> Result<f64> {
    let reader = WavReader::open(path).map_err(|e| hound_err(path, e))?;
    let spec = reader.spec();
    check_header(&spec, path)?;
    Ok(reader.duration() as f64 / spec.sample_rate as f64)
}

/// Refuses a header with no channel, more than [`MAX_WAV_CHANNELS`], or a rate
/// outside [`MIN_WAV_RATE`]..=[`MAX_WAV_RATE`].
fn check_header(spec: &hound::WavSpec, path: &Path) -> Result<()> {
    let channels = spec.channels as usize;
    if channels == 0 {
        return Err(Error::bad_file(path, "wav header declares 0 channels"));
    }
    if !(MIN_WAV_RATE..=MAX_WAV_RATE).contains(&spec.sample_rate) {
        return Err(Error::bad_file(
            path,
            format!(
                "wav header declares a sample rate of {} Hz, outside {MIN_WAV_RATE}..={MAX_WAV_RATE} Hz",
                spec.sample_rate
            ),
        ));
    }
    if channels > MAX_WAV_CHANNELS {
        return Err(Error::bad_file(
            path,
            format!("wav header declares {channels} channels, more than {MAX_WAV_CHANNELS}"),
        ));
    }
    Ok(())
}

/// Decodes a whole wav file to a mono waveform at its own sample rate
/// ([`MIN_WAV_RATE`]..=[`MAX_WAV_RATE`] Hz, at most [`MAX_WAV_CHANNELS`] channels).
///
/// Integer samples of `b` bits are scaled by `1 / 2^(b-1)`; float samples are kept as is.
/// A file with no samples, a corrupt header or truncated data returns [`Error::BadFile`]
/// naming the file; a missing file returns [`Error::Io`].
pub fn read_wav(path: &Path) -> Result<Waveform> {
    let mut reader = WavReader::open(path).map_err(|e| hound_err(path, e))?;
    let spec = reader.spec();
    let channels = spec.channels as usize;
    check_header(&spec, path)?;
    // The declared sample count bounds nothing: reserve at most what the file can hold.
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bytes_per_sample = u64::from(spec.bits_per_sample.div_ceil(8).max(1));
    let declared = u64::from(reader.len()) * bytes_per_sample;
    if declared > file_bytes {
        return Err(Error::bad_file(
            path,
            format!(
                "truncated wav file: the header declares {} samples ({declared} bytes) but the \
                 file has {file_bytes} bytes",
                reader.len()
            ),
        ));
    }
    let capacity = reader.len() as usize;
    let interleaved: Vec<f32> = match spec.sample_format {
        SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "unsupported float wav with {} bits per sample (only 32)",
                        spec.bits_per_sample
                    ),
                ));
            }
            let mut v = Vec::with_capacity(capacity);
            for s in reader.samples::<f32>() {
                v.push(s.map_err(|e| hound_err(path, e))?);
            }
            v
        }
        SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !matches!(bits, 8 | 16 | 24 | 32) {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "unsupported integer wav with {bits} bits per sample (8, 16, 24 or 32)"
                    ),
                ));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            let mut v = Vec::with_capacity(capacity);
            for s in reader.samples::<i32>() {
                v.push((s.map_err(|e| hound_err(path, e))? as f64 * scale) as f32);
            }
            v
        }
    };
    if interleaved.is_empty() {
        return Err(Error::bad_file(
            path,
            "wav file contains no samples (zero length)",
        ));
    }
    if !interleaved.len().is_multiple_of(channels) {
        return Err(Error::bad_file(
            path,
            format!(
                "{} samples is not a whole number of {channels}-channel frames",
                interleaved.len()
            ),
        ));
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        let inv = 1.0 / channels as f32;
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * inv)
            .collect()
    };
    Ok(Waveform {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Decodes a wav file to mono and resamples it to `target_rate` Hz (see
/// [`resample`]); the result has
/// `round(n * target_rate / source_rate)` samples.
pub fn load_wav(path: &Path, target_rate: u32) -> Result<Vec<f32>> {
    let w = read_wav(path)?;
    resample(&w.samples, w.sample_rate, target_rate).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "resampling {} Hz -> {target_rate} Hz failed: {e}",
                w.sample_rate
            ),
        )
    })
}

/// Writes mono 16-bit PCM; samples are clamped to [-1, 1] and scaled by 32767.
pub fn write_wav_mono16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let spec = WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let io = |e: hound::Error| match e {
        hound::Error::IoError(io) => Error::io(path, io),
        other => Error::bad_file(path, format!("writing wav failed: {other}")),
    };
    let mut w = WavWriter::create(path, spec).map_err(io)?;
    {
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w16.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16);
        }
        w16.flush().map_err(io)?;
    }
    w.finalize().map_err(io)
}

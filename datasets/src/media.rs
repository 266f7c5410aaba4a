//! Items as `data:` URIs for self-contained pages (the galleries of
//! `vicreg_core::insight`): image thumbnails as JPEG, sounds as WAV.

use std::io::Cursor;
use std::path::Path;

use hound::{SampleFormat, WavSpec, WavWriter};
use image::imageops::FilterType;
use vicreg_core::insight::base64;

use crate::image::load_rgb;
use crate::{Error, Result};

/// Largest sound inlined, samples (a minute at 16 kHz).
pub const MAX_INLINE_SAMPLES: usize = 960_000;

/// The image at `path` scaled to fit `max_side` pixels (never enlarged), as
/// a `data:image/jpeg;base64,...` URI. Errors name the file.
pub fn thumbnail_uri(path: &Path, max_side: u32) -> Result<String> {
    thumbnail_uri_of(&load_rgb(path)?, max_side)
        .map_err(|e| Error::bad_file(path, format!("cannot encode a thumbnail: {e}")))
}

/// `img` scaled to fit `max_side` pixels (never enlarged), as a
/// `data:image/jpeg;base64,...` URI.
pub fn thumbnail_uri_of(img: &image::RgbImage, max_side: u32) -> Result<String> {
    let (w, h) = img.dimensions();
    let scale = (max_side.max(1) as f64 / w.max(h).max(1) as f64).min(1.0);
    let (tw, th) = (
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    );
    let small = image::imageops::resize(img, tw, th, FilterType::Triangle);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&small)
        .map_err(|e| Error::Config(format!("cannot encode a thumbnail: {e}")))?;
    Ok(format!("data:image/jpeg;base64,{}", base64(&bytes)))
}

/// Mono `samples` in [-1, 1] at `sample_rate` Hz as a 16-bit PCM
/// `data:audio/wav;base64,...` URI (at most [`MAX_INLINE_SAMPLES`]; longer
/// sounds are cut).
pub fn wav_uri(samples: &[f32], sample_rate: u32) -> Result<String> {
    let spec = WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let samples = &samples[..samples.len().min(MAX_INLINE_SAMPLES)];
    let mut cursor = Cursor::new(Vec::new());
    let fail = |e: hound::Error| Error::Config(format!("cannot encode a wav: {e}"));
    {
        let mut w = WavWriter::new(&mut cursor, spec).map_err(fail)?;
        for &s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
                .map_err(fail)?;
        }
        w.finalize().map_err(fail)?;
    }
    Ok(format!(
        "data:audio/wav;base64,{}",
        base64(&cursor.into_inner())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_and_sounds_round_trip() {
        let dir = std::env::temp_dir().join(format!("media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("wide.png");
        image::RgbImage::from_pixel(300, 100, image::Rgb([10, 200, 30]))
            .save(&p)
            .unwrap();
        let uri = thumbnail_uri(&p, 60).unwrap();
        assert!(uri.starts_with("data:image/jpeg;base64,"));
        let w = wav_uri(&[0.0, 0.5, -0.5, 1.0], 8000).unwrap();
        assert!(
            w.starts_with("data:audio/wav;base64,UklGR"),
            "RIFF header: {w}"
        );
        assert!(thumbnail_uri(&dir.join("missing.png"), 60)
            .unwrap_err()
            .to_string()
            .contains("missing.png"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Decoding image files to 8-bit RGB, with errors that name the file.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};

use crate::{Error, Result};

/// Decodes the bytes of an image file (JPEG, PNG, BMP or WebP, detected from
/// the content) to RGB (grayscale is replicated, alpha dropped, as PIL's
/// `convert("RGB")`). A JPEG that lacks its end-of-image marker is reported as
/// truncated even where the decoder would return a partially grey picture.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::bad_file(path, "empty file, not an image"));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let format = reader.format().ok_or_else(|| {
        Error::bad_file(
            path,
            "not an image: unrecognised file content (expected JPEG/PNG/BMP/WebP)",
        )
    })?;
    if format == ImageFormat::Jpeg && !has_jpeg_eoi(bytes) {
        return Err(Error::bad_file(
            path,
            "truncated JPEG: no end-of-image marker (FF D9)",
        ));
    }
    let img = reader
        .decode()
        .map_err(|e| Error::bad_file(path, format!("corrupt {format:?} image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::bad_file(path, "image has zero width or height"));
    }
    Ok(img.into_rgb8())
}

/// True when the JPEG ends with FF D9, allowing trailing padding bytes (0x00 / 0xFF / whitespace).
fn has_jpeg_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    let end = tail
        .iter()
        .rposition(|&b| !matches!(b, 0x00 | b'\n' | b'\r' | b' '))
        .map(|i| i + 1)
        .unwrap_or(0);
    end >= 2 && tail[end - 2] == 0xFF && tail[end - 1] == 0xD9
}

/// Reads and decodes an image file to RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes, path)
}

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
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
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

/// False when a JPEG has no end-of-image marker (FF D9) after the start of its
/// first scan: the file was cut short. The marker segments before the first
/// scan (SOS, FF DA) are walked by their lengths, so an EXIF thumbnail's own
/// markers do not count; trailing bytes after the EOI are allowed. A header
/// that cannot be walked is left to the decoder (returns true).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    let scan_start = loop {
        while pos < bytes.len() && bytes[pos] == 0xFF && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        if pos + 4 > bytes.len() {
            return false; // cut inside the header
        }
        if bytes[pos] != 0xFF {
            return true; // not walkable: left to the decoder
        }
        let marker = bytes[pos + 1];
        if marker == 0xDA {
            break pos;
        }
        if marker == 0xD9 {
            return false; // EOI before any scan: no image data
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            pos += 2;
            continue;
        }
        let len = u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]) as usize;
        pos += 2 + len;
    };
    bytes[scan_start..]
        .windows(2)
        .rev()
        .any(|w| w == [0xFF, 0xD9])
}

/// Reads and decodes an image file to RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes, path)
}

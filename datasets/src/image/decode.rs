//! Decoding image files to 8-bit RGB, with errors that name the file.
//!
//! Sizes are bounded before pixels are decoded: a file of at most
//! [`MAX_IMAGE_FILE_BYTES`], a header declaring at most [`MAX_IMAGE_SIDE`]
//! pixels per side and [`MAX_IMAGE_PIXELS`] in all, and an aspect ratio of at
//! most [`MAX_ASPECT_RATIO`] (a 1 x 65000 strip would become a 256 x 16.6 M
//! image, 12 GB, under the evaluation's resize of the shorter side).

use std::io::{Cursor, Read};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::{Error, Result};

/// The largest image file read, in bytes (256 MiB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;
/// The longest side an image may declare, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 32_768;
/// The most pixels an image may declare (2^27, e.g. 11585 x 11585; 512 MiB as RGBA).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 27;
/// The largest ratio of the longer to the shorter side.
pub const MAX_ASPECT_RATIO: u32 = 64;
/// The most pixels a header may declare per byte of its file (a PNG holds
/// at most ~8300: 8 one-bit pixels per byte at deflate's 1032:1), so a
/// 100-byte file cannot make the decoder allocate hundreds of MB.
pub const MAX_PIXELS_PER_FILE_BYTE: u64 = 16_384;

/// Checks an image's declared size against the bounds above; the message names
/// the size and the bound it breaks.
pub fn check_image_size(width: u32, height: u32, path: &Path) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::bad_file(path, "image has zero width or height"));
    }
    let (long, short) = (width.max(height), width.min(height));
    if long > MAX_IMAGE_SIDE || width as u64 * height as u64 > MAX_IMAGE_PIXELS {
        return Err(Error::bad_file(
            path,
            format!(
                "image of {width} x {height} pixels is too large (at most {MAX_IMAGE_SIDE} \
                 per side and {MAX_IMAGE_PIXELS} pixels)"
            ),
        ));
    }
    if long as u64 > short as u64 * MAX_ASPECT_RATIO as u64 {
        return Err(Error::bad_file(
            path,
            format!(
                "image of {width} x {height} pixels has an aspect ratio beyond \
                 {MAX_ASPECT_RATIO}:1 (refused: resizing its shorter side would blow up the longer)"
            ),
        ));
    }
    Ok(())
}

fn decode_error(path: &Path, format: ImageFormat, e: ImageError) -> Error {
    match e {
        ImageError::Limits(l) => Error::bad_file(
            path,
            format!("{format:?} image exceeds the decoder's memory limit: {l}"),
        ),
        other => Error::bad_file(path, format!("corrupt {format:?} image: {other}")),
    }
}

/// Decodes the bytes of an image file (JPEG, PNG, BMP or WebP, detected from
/// the content) to RGB (grayscale is replicated, alpha dropped, as PIL's
/// `convert("RGB")`). A JPEG that lacks its end-of-image marker is reported as
/// truncated even where the decoder would return a partially grey picture.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::bad_file(path, "empty file, not an image"));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
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
    // Only the memory bound while the header is read, so that the size check
    // below gives its own message; then the strict side bounds for the decode.
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
    reader.limits(limits.clone());
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(path, format, e))?;
    let (w, h) = decoder.dimensions();
    check_image_size(w, h, path)?;
    let pixels = w as u64 * h as u64;
    if pixels > bytes.len() as u64 * MAX_PIXELS_PER_FILE_BYTE {
        return Err(Error::bad_file(
            path,
            format!(
                "header declares {w} x {h} pixels, more than a {}-byte file can hold: \
                 truncated or corrupt",
                bytes.len()
            ),
        ));
    }
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    decoder
        .set_limits(limits)
        .map_err(|e| decode_error(path, format, e))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, format, e))?;
    check_image_size(img.width(), img.height(), path)?;
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

/// Reads and decodes an image file to RGB; a file over
/// [`MAX_IMAGE_FILE_BYTES`] is refused before it is read.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(Error::bad_file(
            path,
            format!("file larger than {MAX_IMAGE_FILE_BYTES} bytes: not read as an image"),
        ));
    }
    decode_rgb(&bytes, path)
}

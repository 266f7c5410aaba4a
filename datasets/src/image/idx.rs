//! IDX files (MNIST, Fashion-MNIST): `<prefix>-images-idx3-ubyte[.gz]` and
//! `<prefix>-labels-idx1-ubyte[.gz]` with prefix `train` or `t10k`.
//!
//! Format: 2 zero bytes, a type byte (0x08 = unsigned byte, the only one
//! accepted), the number of dimensions, each dimension as a big-endian u32,
//! then the values row-major.
//!
//! Every size read from a file is bounded before it is used: at most
//! [`MAX_IDX_BYTES`] per file (plain or after gunzip), at most
//! [`MAX_IDX_SIDE`] rows and columns, and the product of the dimensions,
//! computed with checked multiplication, must equal the payload's length.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::ImageSource;
use crate::{Error, Result};

/// Which IDX split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxSplit {
    /// `train-*` files (60 000 samples for (Fashion-)MNIST).
    Train,
    /// `t10k-*` files (10 000 samples).
    Test,
}

impl IdxSplit {
    fn prefix(self) -> &'static str {
        match self {
            IdxSplit::Train => "train",
            IdxSplit::Test => "t10k",
        }
    }
}

/// The largest IDX file accepted, in bytes, plain or after gunzip (4 GiB:
/// ~70x Fashion-MNIST's training images).
pub const MAX_IDX_BYTES: u64 = 4 << 30;

/// The largest number of rows or columns of an IDX image.
pub const MAX_IDX_SIDE: usize = 4096;

/// Reads a whole file, gunzipping when its name ends with `.gz`; at most
/// [`MAX_IDX_BYTES`] either way.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let too_big = || {
        Error::bad_file(
            path,
            format!("IDX file larger than {MAX_IDX_BYTES} bytes (plain or unzipped): refused"),
        )
    };
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(std::io::BufReader::new(file))
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_file(path, format!("corrupt gzip data: {e}")))?;
    } else {
        file.take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(path, e))?;
    }
    if out.len() as u64 > MAX_IDX_BYTES {
        return Err(too_big());
    }
    Ok(out)
}

/// Parses an IDX byte array of `ndims` dimensions (1 to 4); returns the
/// dims and the data. The product of the dims, computed with checked
/// multiplication, must equal the number of bytes after the header.
pub fn parse_idx(bytes: &[u8], ndims: usize, path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    if !(1..=4).contains(&ndims) {
        return Err(Error::Config(format!(
            "IDX files with {ndims} dimensions are not read (1 to 4)"
        )));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::bad_file(path, "not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(Error::bad_file(
            path,
            format!(
                "IDX value type 0x{:02x} unsupported (only 0x08, unsigned byte)",
                bytes[2]
            ),
        ));
    }
    if bytes[3] as usize != ndims {
        return Err(Error::bad_file(
            path,
            format!("IDX file has {} dimensions, expected {ndims}", bytes[3]),
        ));
    }
    let header = 4 + 4 * ndims;
    let Some(payload) = bytes.get(header..) else {
        return Err(Error::bad_file(path, "truncated IDX header"));
    };
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n as u64 <= MAX_IDX_BYTES);
    let Some(n) = n else {
        return Err(Error::bad_file(
            path,
            format!(
                "IDX dimensions {dims:?} describe more than {MAX_IDX_BYTES} bytes: corrupt header"
            ),
        ));
    };
    if payload.len() != n {
        return Err(Error::bad_file(
            path,
            format!(
                "IDX data size {} does not match dimensions {dims:?} ({n} bytes): truncated or corrupt",
                payload.len()
            ),
        ));
    }
    Ok((dims, payload.to_vec()))
}

/// Finds `<dir>/<stem>` or `<dir>/<stem>.gz`, also accepting a `.` before `idx`.
fn find_file(dir: &Path, prefix: &str, kind: &str, idx: &str) -> Result<PathBuf> {
    let stems = [
        format!("{prefix}-{kind}-{idx}-ubyte"),
        format!("{prefix}-{kind}.{idx}-ubyte"),
    ];
    for stem in &stems {
        for name in [stem.clone(), format!("{stem}.gz")] {
            let p = dir.join(&name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Layout(format!(
        "missing IDX file {}[.gz] in {}",
        stems[0],
        dir.display()
    )))
}

/// A labelled set of grayscale images read from a pair of IDX files.
#[derive(Clone, Debug)]
pub struct IdxDataset {
    count: usize,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    num_classes: usize,
}

impl IdxDataset {
    /// Reads `images` (3-D) and `labels` (1-D) IDX files; counts must agree.
    pub fn from_files(images: &Path, labels: &Path) -> Result<Self> {
        let (dims, pixels) = parse_idx(&read_maybe_gz(images)?, 3, images)?;
        let (ldims, labels_v) = parse_idx(&read_maybe_gz(labels)?, 1, labels)?;
        if dims[0] != ldims[0] {
            return Err(Error::bad_file(
                labels,
                format!(
                    "{} labels but {} has {} images",
                    ldims[0],
                    images.display(),
                    dims[0]
                ),
            ));
        }
        if dims[1] == 0 || dims[2] == 0 {
            return Err(Error::bad_file(
                images,
                "IDX images have zero rows or columns",
            ));
        }
        if dims[1] > MAX_IDX_SIDE || dims[2] > MAX_IDX_SIDE {
            return Err(Error::bad_file(
                images,
                format!(
                    "IDX images of {} x {} pixels: rows and columns must be at most {MAX_IDX_SIDE}",
                    dims[1], dims[2]
                ),
            ));
        }
        let num_classes = labels_v.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        Ok(Self {
            count: dims[0],
            rows: dims[1],
            cols: dims[2],
            pixels,
            labels: labels_v,
            num_classes,
        })
    }

    /// Reads the `train-` or `t10k-` pair of `dir`.
    pub fn open(dir: &Path, split: IdxSplit) -> Result<Self> {
        let p = split.prefix();
        let images = find_file(dir, p, "images", "idx3")?;
        let labels = find_file(dir, p, "labels", "idx1")?;
        Self::from_files(&images, &labels)
    }

    /// Image height.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The raw grayscale pixels of image `index` (`rows * cols`, row-major);
    /// `None` when `index >= len()`.
    pub fn gray(&self, index: usize) -> Option<&[u8]> {
        let n = self.rows * self.cols;
        self.pixels
            .get(index.checked_mul(n)?..index.checked_add(1)?.checked_mul(n)?)
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

impl ImageSource for IdxDataset {
    fn len(&self) -> usize {
        self.count
    }
    fn num_classes(&self) -> usize {
        self.num_classes
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }
    /// The grayscale image replicated to 3 channels (PIL `convert("RGB")`).
    fn load(&self, index: usize) -> Result<RgbImage> {
        let Some(g) = self.gray(index) else {
            return Err(Error::Layout(format!(
                "IDX image index {index} out of range ({} images)",
                self.count
            )));
        };
        let mut rgb = Vec::with_capacity(g.len() * 3);
        for &v in g {
            rgb.extend_from_slice(&[v, v, v]);
        }
        RgbImage::from_raw(self.cols as u32, self.rows as u32, rgb)
            .ok_or_else(|| Error::Layout(format!("IDX image {index}: pixel count mismatch")))
    }
}

//! IDX files (MNIST, Fashion-MNIST): `<prefix>-images-idx3-ubyte[.gz]` and
//! `<prefix>-labels-idx1-ubyte[.gz]` with prefix `train` or `t10k`.
//!
//! Format: 2 zero bytes, a type byte (0x08 = unsigned byte, the only one
//! accepted), the number of dimensions, each dimension as a big-endian u32,
//! then the values row-major.

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

/// Reads a whole file, gunzipping when its name ends with `.gz`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_file(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX byte array of `ndims` dimensions; returns the dims and the data.
pub fn parse_idx(bytes: &[u8], ndims: usize, path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
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
    if bytes.len() < header {
        return Err(Error::bad_file(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let n: usize = dims.iter().product();
    if bytes.len() - header != n {
        return Err(Error::bad_file(
            path,
            format!(
                "IDX data size {} does not match dimensions {dims:?} ({n} bytes): truncated or corrupt",
                bytes.len() - header
            ),
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
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

    /// The raw grayscale pixels of image `index` (`rows * cols`, row-major).
    pub fn gray(&self, index: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[index * n..(index + 1) * n]
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
        let g = self.gray(index);
        let mut rgb = Vec::with_capacity(g.len() * 3);
        for &v in g {
            rgb.extend_from_slice(&[v, v, v]);
        }
        Ok(RgbImage::from_raw(self.cols as u32, self.rows as u32, rgb).expect("size matches"))
    }
}

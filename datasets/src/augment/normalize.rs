//! `ToTensor` + `Normalize`: u8 RGB HWC -> normalised f32 CHW, each step in
//! float32 as torchvision does (`x / 255`, then `- mean[c]`, then `/ std[c]`).

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Per-channel mean and standard deviation (in [0, 1] units).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean subtracted from channel c after dividing by 255.
    pub mean: [f32; 3],
    /// Standard deviation that channel c is divided by.
    pub std: [f32; 3],
}

impl Default for Normalization {
    /// ImageNet statistics `(0.485, 0.456, 0.406)`, `(0.229, 0.224, 0.225)`.
    fn default() -> Self {
        Self::imagenet()
    }
}

impl Normalization {
    /// ImageNet statistics, as in the official VICReg code.
    pub fn imagenet() -> Self {
        Self {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Checks that every std is finite and positive.
    pub fn validate(&self) -> Result<()> {
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::Config(format!(
                "normalization {self:?}: std must be > 0 and all values finite"
            )));
        }
        Ok(())
    }

    /// Lookup table of the 256 normalised values of channel `c`.
    pub fn lut(&self, c: usize) -> [f32; 256] {
        let mut t = [0f32; 256];
        for (v, o) in t.iter_mut().enumerate() {
            *o = (v as f32 / 255.0 - self.mean[c]) / self.std[c];
        }
        t
    }
}

/// A float image in CHW layout (row-major within a channel).
#[derive(Clone, Debug, PartialEq)]
pub struct ChwImage {
    /// Number of channels (1 or 3).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels * height * width` values.
    pub data: Vec<f32>,
}

impl ChwImage {
    /// The image as a `(channels, height, width)` f32 tensor.
    pub fn to_tensor(&self, dev: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.channels, self.height, self.width),
            dev,
        )?)
    }
}

/// Normalises `img` to CHW f32. With `channels == 1` only the first channel is
/// kept (for grayscale sources run through the RGB pipeline: all three are equal),
/// normalised with `mean[0]`, `std[0]`.
pub fn to_normalized_chw(img: &RgbImage, norm: &Normalization, channels: usize) -> ChwImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = w * h;
    let mut data = vec![0f32; plane * channels];
    let luts: Vec<[f32; 256]> = (0..channels).map(|c| norm.lut(c)).collect();
    let raw = img.as_raw();
    if channels == 3 {
        let (r, rest) = data.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, p) in raw.chunks_exact(3).enumerate() {
            r[i] = luts[0][p[0] as usize];
            g[i] = luts[1][p[1] as usize];
            b[i] = luts[2][p[2] as usize];
        }
    } else {
        for (i, p) in raw.chunks_exact(3).enumerate() {
            data[i] = luts[0][p[0] as usize];
        }
    }
    ChwImage {
        channels,
        height: h,
        width: w,
        data,
    }
}

//! Pillow's separable fixed-point resampler (`Image.resize` on 8-bit RGB),
//! bit-exact with Pillow 13 for the BICUBIC and BILINEAR filters.
//!
//! Per axis with `n_in` input and `n_out` output samples: `scale = n_in / n_out`,
//! `fscale = max(scale, 1)` (the filter is stretched when downscaling: antialias),
//! `support = filter_support * fscale`; output `i` has centre `(i + 0.5) * scale`
//! and taps `j` in `[int(center - support + 0.5) >= 0, int(center + support + 0.5) <= n_in)`
//! with weights `k((j - center + 0.5) / fscale)` normalised to sum 1, then stored
//! as `round_half_away(w * 2^22)`. Each output is
//! `clamp((sum(pixel * w_int) + 2^21) >> 22, 0, 255)`; the two passes are rounded
//! to u8 in between (see [`resized_crop`] for their order).

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::dispatch::avx2_dispatch;
use crate::{Error, Result};

avx2_dispatch!(fn horizontal_pass(src: &[u8], first_row_byte: usize, stride: usize, rows: usize, weights: &AxisWeights, out_w: usize) -> Vec<u8> => horizontal_pass_generic);
avx2_dispatch!(fn vertical_pass(src: &[u8], first_row_byte: usize, stride: usize, row_bytes: usize, weights: &AxisWeights, out_h: usize) -> Vec<u8> => vertical_pass_generic);

/// Fixed-point precision of the weights (Pillow's `PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Resampling filter (Pillow's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Interpolation {
    /// Triangle filter, support 1 (torchvision's default for `Resize` / `RandomResizedCrop`).
    Bilinear,
    /// Cubic convolution with `a = -0.5`, support 2 (the VICReg pretraining crops).
    #[default]
    Bicubic,
}

impl Interpolation {
    fn support(self) -> f64 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }

    fn kernel(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// A rectangle of an image in pixels: rows `top..top+height`, columns `left..left+width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    /// First row.
    pub top: u32,
    /// First column.
    pub left: u32,
    /// Number of rows (> 0).
    pub height: u32,
    /// Number of columns (> 0).
    pub width: u32,
}

impl CropBox {
    /// The whole of a `width x height` image.
    pub fn full(width: u32, height: u32) -> Self {
        Self {
            top: 0,
            left: 0,
            height,
            width,
        }
    }
}

/// Precomputed fixed-point taps of one axis: output `i` reads
/// `start[i] .. start[i] + len[i]` with weights `coeffs[i * ksize ..][..len[i]]`.
#[derive(Clone, Debug)]
pub struct AxisWeights {
    start: Vec<u32>,
    len: Vec<u32>,
    ksize: usize,
    coeffs: Vec<i32>,
}

impl AxisWeights {
    /// Taps for resampling `n_in` samples to `n_out` (both > 0) with `filter`,
    /// exactly as Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`.
    pub fn new(n_in: u32, n_out: u32, filter: Interpolation) -> Self {
        let scale = n_in as f64 / n_out as f64;
        let fscale = scale.max(1.0);
        let support = filter.support() * fscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut start = Vec::with_capacity(n_out as usize);
        let mut len = Vec::with_capacity(n_out as usize);
        let mut coeffs = vec![0i32; n_out as usize * ksize];
        let mut k = vec![0f64; ksize];
        let ss = 1.0 / fscale;
        for i in 0..n_out as usize {
            let center = (i as f64 + 0.5) * scale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64);
            let count = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(count) {
                let w = filter.kernel((x as f64 + xmin as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            let row = &mut coeffs[i * ksize..(i + 1) * ksize];
            for x in 0..count {
                let w = if ww != 0.0 { k[x] / ww } else { k[x] };
                let f = w * (1u32 << PRECISION_BITS) as f64;
                row[x] = if f < 0.0 {
                    (-0.5 + f) as i32
                } else {
                    (0.5 + f) as i32
                };
            }
            start.push(xmin as u32);
            len.push(count as u32);
        }
        Self {
            start,
            len,
            ksize,
            coeffs,
        }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let n = self.len[i] as usize;
        (
            self.start[i] as usize,
            &self.coeffs[i * self.ksize..i * self.ksize + n],
        )
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass: resamples `rows` rows of RGB pixels, each `weights`'
/// input width long and starting at byte `src[first_row_byte + r * stride]`,
/// to `out_w` pixels each (u8, rounded and clamped).
#[inline(always)]
fn horizontal_pass_generic(
    src: &[u8],
    first_row_byte: usize,
    stride: usize,
    rows: usize,
    weights: &AxisWeights,
    out_w: usize,
) -> Vec<u8> {
    let ow3 = out_w * 3;
    let mut out = vec![0u8; rows * ow3];
    let half = 1i32 << (PRECISION_BITS - 1);
    for r in 0..rows {
        let line = &src[first_row_byte + r * stride..];
        let o = &mut out[r * ow3..(r + 1) * ow3];
        for (x, op) in o.chunks_exact_mut(3).enumerate() {
            let (s, w) = weights.taps(x);
            let px = &line[s * 3..(s + w.len()) * 3];
            let (mut a0, mut a1, mut a2) = (half, half, half);
            for (p, &c) in px.chunks_exact(3).zip(w) {
                a0 += p[0] as i32 * c;
                a1 += p[1] as i32 * c;
                a2 += p[2] as i32 * c;
            }
            op[0] = clip8(a0);
            op[1] = clip8(a1);
            op[2] = clip8(a2);
        }
    }
    out
}

/// Vertical pass: output row `y` mixes input rows `weights.taps(y)`, where
/// input row `k` is the `row_bytes` bytes at `src[first_row_byte + k * stride]`.
#[inline(always)]
fn vertical_pass_generic(
    src: &[u8],
    first_row_byte: usize,
    stride: usize,
    row_bytes: usize,
    weights: &AxisWeights,
    out_h: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; out_h * row_bytes];
    let mut acc = vec![0i32; row_bytes];
    for y in 0..out_h {
        let (s, w) = weights.taps(y);
        acc.fill(1 << (PRECISION_BITS - 1));
        for (k, &c) in w.iter().enumerate() {
            let row = &src[first_row_byte + (s + k) * stride..][..row_bytes];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * c;
            }
        }
        for (o, &a) in out[y * row_bytes..(y + 1) * row_bytes].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// The most output pixels [`resized_crop`] and [`resize`] produce (2^27,
/// 384 MiB as RGB); a larger output is refused before anything is allocated.
pub const MAX_RESIZE_PIXELS: u64 = 1 << 27;

/// Crops `crop` out of `src` (exactly, as `PIL.Image.crop`) and resizes it to
/// `out_w x out_h` with Pillow's resampler, without copying the crop first.
/// Equivalent to torchvision's `resized_crop` on a PIL image.
///
/// Pass order as Pillow 13 (`ImagingResampleInner`): horizontal then vertical,
/// except when `crop_h - out_h > 0` and `crop_h - out_h > 2 * (crop_w - out_w)`,
/// where the vertical pass runs first (the u8 rounding between the passes makes
/// the order observable). A pass whose size does not change is skipped (it
/// would be the identity). An output of more than [`MAX_RESIZE_PIXELS`] is an
/// [`Error::Config`].
pub fn resized_crop(
    src: &RgbImage,
    crop: CropBox,
    out_w: u32,
    out_h: u32,
    filter: Interpolation,
) -> Result<RgbImage> {
    let (sw, sh) = src.dimensions();
    if crop.width == 0
        || crop.height == 0
        || out_w == 0
        || out_h == 0
        || crop.left as u64 + crop.width as u64 > sw as u64
        || crop.top as u64 + crop.height as u64 > sh as u64
    {
        return Err(Error::Config(format!(
            "resized_crop: crop {crop:?} -> {out_w}x{out_h} does not fit a {sw}x{sh} image"
        )));
    }
    if out_w as u64 * out_h as u64 > MAX_RESIZE_PIXELS {
        return Err(Error::Config(format!(
            "resizing a {sw}x{sh} image to {out_w}x{out_h} pixels: more than {MAX_RESIZE_PIXELS} \
             output pixels (an extreme aspect ratio or size)"
        )));
    }
    let stride = sw as usize * 3;
    let data = src.as_raw();
    let origin = crop.top as usize * stride + crop.left as usize * 3;
    let (cw, ch) = (crop.width as usize, crop.height as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    let need_h = cw != ow;
    let need_v = ch != oh;
    let out = match (need_h, need_v) {
        (false, false) => {
            let mut out = Vec::with_capacity(oh * ow * 3);
            for r in 0..ch {
                out.extend_from_slice(&data[origin + r * stride..][..cw * 3]);
            }
            out
        }
        (true, false) => horizontal_pass(
            data,
            origin,
            stride,
            ch,
            &AxisWeights::new(crop.width, out_w, filter),
            ow,
        ),
        (false, true) => vertical_pass(
            data,
            origin,
            stride,
            cw * 3,
            &AxisWeights::new(crop.height, out_h, filter),
            oh,
        ),
        (true, true) => {
            let hw = AxisWeights::new(crop.width, out_w, filter);
            let vw = AxisWeights::new(crop.height, out_h, filter);
            // Pillow 13: "If height is being scaled down more than twice the amount
            // the width is, run the vertical pass first".
            let dh = ch as i64 - oh as i64;
            let dw = cw as i64 - ow as i64;
            if dh > 0 && dh > dw * 2 {
                let mid = vertical_pass(data, origin, stride, cw * 3, &vw, oh);
                horizontal_pass(&mid, 0, cw * 3, oh, &hw, ow)
            } else {
                // Only the rows the vertical pass reads go through the horizontal pass.
                let first = vw.start[0] as usize;
                let last = (0..oh)
                    .map(|i| (vw.start[i] + vw.len[i]) as usize)
                    .max()
                    .unwrap_or(first);
                let mid =
                    horizontal_pass(data, origin + first * stride, stride, last - first, &hw, ow);
                let shifted = AxisWeights {
                    start: vw.start.iter().map(|s| s - first as u32).collect(),
                    ..vw
                };
                vertical_pass(&mid, 0, ow * 3, ow * 3, &shifted, oh)
            }
        }
    };
    RgbImage::from_raw(out_w, out_h, out).ok_or_else(|| {
        Error::Config(format!(
            "resized_crop: output buffer is not {out_w}x{out_h}"
        ))
    })
}

/// Resizes the whole image to `out_w x out_h` (`PIL.Image.resize`).
pub fn resize(src: &RgbImage, out_w: u32, out_h: u32, filter: Interpolation) -> Result<RgbImage> {
    let (w, h) = src.dimensions();
    resized_crop(src, CropBox::full(w, h), out_w, out_h, filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_is_exact() {
        for (n_in, n_out) in [(10, 3), (3, 10), (500, 224), (7, 7)] {
            let w = AxisWeights::new(n_in, n_out, Interpolation::Bicubic);
            for i in 0..n_out as usize {
                let s: i64 = w.taps(i).1.iter().map(|&c| c as i64).sum();
                assert!((s - (1 << 22)).abs() <= 4, "sum {s}");
            }
        }
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7]));
        let same = resize(&img, 5, 4, Interpolation::Bicubic).unwrap();
        assert_eq!(same, img);
    }
}

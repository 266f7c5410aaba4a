//! Pillow's `ImageFilter.GaussianBlur(radius)` on 8-bit RGB, bit-exact.
//!
//! Pillow does not convolve with a Gaussian: it runs 3 passes of an "extended
//! box" filter along x (rounded to u8 after each pass), then 3 along y, with
//! edge pixels replicated. The box radius comes from `sigma` (the `radius`
//! argument) by Gwosdek et al.'s formula, in float32.

use image::RgbImage;

use super::dispatch::avx2_dispatch;

avx2_dispatch!(fn box_pass(src: &[u8], dst: &mut [u8], rows: usize, cols: usize, k: BoxKernel, acc: &mut [u32]) => box_pass_generic);

/// Number of box passes per axis (Pillow's default).
pub const BOX_PASSES: u32 = 3;

/// Pillow's `_gaussian_blur_radius(sigma, passes)`: the fractional box radius,
/// reproducing its float32/float64 mix.
pub fn box_radius(sigma: f32, passes: u32) -> f32 {
    let sigma2: f32 = sigma * sigma / passes as f32;
    let big_l: f32 = (12.0 * sigma2 as f64 + 1.0).sqrt() as f32;
    let l: f32 = ((big_l as f64 - 1.0) / 2.0).floor() as f32;
    let mut a: f32 = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// Integer box-filter weights: radius `r`, centre weight `ww`, edge weight `fw` (24-bit fixed point).
#[derive(Clone, Copy)]
struct BoxKernel {
    r: usize,
    ww: u32,
    fw: u32,
}

/// One box pass along the rows axis of a `rows x cols` u8 plane (`cols` values
/// per row, e.g. `3 * width` interleaved channels): for every column `j`,
/// `out[y][j] = (ww * sum(in[y-r..=y+r][j]) + fw * (in[y-r-1][j] + in[y+r+1][j]) + 2^23) >> 24`,
/// row indices clamped (edge replicate). This is Pillow's `ImagingLineBoxBlur`
/// applied to each column; the running sums make every step a row-wide
/// vectorisable loop.
#[inline(always)]
fn box_pass_generic(
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
    k: BoxKernel,
    acc: &mut [u32],
) {
    let BoxKernel { r, ww, fw } = k;
    let last = rows as isize - 1;
    let row = |i: isize| -> &[u8] {
        let i = i.clamp(0, last) as usize;
        &src[i * cols..(i + 1) * cols]
    };
    // acc = sum over i in -r-1 ..= r-1 of row(i): the window of output -1 minus its right end.
    acc.fill(0);
    for i in -(r as isize) - 1..r as isize {
        for (a, &v) in acc.iter_mut().zip(row(i)) {
            *a += v as u32;
        }
    }
    for y in 0..rows as isize {
        let add = row(y + r as isize);
        let sub = row(y - r as isize - 1);
        let far = row(y + r as isize + 1);
        let out = &mut dst[y as usize * cols..(y as usize + 1) * cols];
        let acc = &mut acc[..cols];
        for ((((o, a), &ad), &sb), &fr) in out
            .iter_mut()
            .zip(acc.iter_mut())
            .zip(add)
            .zip(sub)
            .zip(far)
        {
            let v = *a + ad as u32 - sb as u32;
            *a = v;
            let bulk = v * ww + (sb as u32 + fr as u32) * fw;
            *o = ((bulk + (1 << 23)) >> 24) as u8;
        }
    }
}

/// Transposes a `h x w` RGB image (HWC) into `w x h` (pixel (x, y) -> (y, x)).
fn transpose_rgb(src: &[u8], dst: &mut [u8], w: usize, h: usize) {
    const T: usize = 16;
    for y0 in (0..h).step_by(T) {
        for x0 in (0..w).step_by(T) {
            for y in y0..(y0 + T).min(h) {
                for x in x0..(x0 + T).min(w) {
                    let s = (y * w + x) * 3;
                    let d = (x * h + y) * 3;
                    dst[d..d + 3].copy_from_slice(&src[s..s + 3]);
                }
            }
        }
    }
}

/// `img.filter(ImageFilter.GaussianBlur(radius=sigma))`. `sigma` is converted
/// to float32 first (Pillow's C argument); `sigma <= 0` leaves the image unchanged.
pub fn gaussian_blur(img: &mut RgbImage, sigma: f32) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if sigma <= 0.0 || w == 0 || h == 0 {
        return;
    }
    let radius = box_radius(sigma, BOX_PASSES);
    if radius == 0.0 {
        return;
    }
    let r = radius as usize;
    let ww = ((1u32 << 24) as f32 / (radius * 2.0 + 1.0)) as u32;
    let fw = ((1u32 << 24) - (r as u32 * 2 + 1) * ww) / 2;
    let k = BoxKernel { r, ww, fw };
    let data: &mut [u8] = img;
    let mut a = vec![0u8; data.len()];
    let mut b = vec![0u8; data.len()];
    let mut acc = vec![0u32; 3 * w.max(h)];
    // Horizontal passes (Pillow's first 3) as row-axis passes of the transpose.
    transpose_rgb(data, &mut a, w, h);
    for _ in 0..BOX_PASSES {
        box_pass(&a, &mut b, w, 3 * h, k, &mut acc[..3 * h]);
        std::mem::swap(&mut a, &mut b);
    }
    transpose_rgb(&a, data, h, w);
    // Vertical passes.
    for pass in 0..BOX_PASSES {
        if pass == 0 {
            box_pass(data, &mut a, h, 3 * w, k, &mut acc[..3 * w]);
        } else {
            box_pass(&a, &mut b, h, 3 * w, k, &mut acc[..3 * w]);
            std::mem::swap(&mut a, &mut b);
        }
    }
    data.copy_from_slice(&a);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radius_matches_pillow_readme_value() {
        let r = box_radius(1.2, 3);
        assert!((r - 0.461538).abs() < 1e-5, "{r}");
        let ww = ((1u32 << 24) as f32 / (r * 2.0 + 1.0)) as u32;
        assert_eq!(ww, 8724152);
        assert_eq!(((1u32 << 24) - ww) / 2, 4026532);
    }

    #[test]
    fn constant_image_is_unchanged() {
        let mut img = RgbImage::from_pixel(9, 7, image::Rgb([10, 200, 77]));
        let want = img.clone();
        gaussian_blur(&mut img, 1.7);
        assert_eq!(img, want);
    }
}

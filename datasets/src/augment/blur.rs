//! Pillow's `ImageFilter.GaussianBlur(radius)` on 8-bit RGB, bit-exact.
//!
//! Pillow does not convolve with a Gaussian: it runs 3 passes of an "extended
//! box" filter along x (rounded to u8 after each pass), then 3 along y, with
//! edge pixels replicated. The box radius comes from `sigma` (the `radius`
//! argument) by Gwosdek et al.'s formula, in float32.

use image::RgbImage;

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

/// One pass of Pillow's `ImagingLineBoxBlur` on a strided line of `n` RGB
/// pixels: `out[x] = (ww * sum(in[x-r..=x+r]) + fw * (in[x-r-1] + in[x+r+1]) + 2^23) >> 24`,
/// indices clamped to the line. `line` holds the input, `out` receives the result.
fn box_line(line: &[[u8; 3]], out: &mut [[u8; 3]], r: usize, ww: u32, fw: u32) {
    let n = line.len();
    let last = n - 1;
    let at = |i: isize| -> [u8; 3] { line[i.clamp(0, last as isize) as usize] };
    // acc = sum of in[clamp(x)] for x in -r-1 ..= r-1 (window of output -1, minus its right end).
    let mut acc = [0u32; 3];
    for i in -(r as isize) - 1..r as isize {
        let p = at(i);
        for c in 0..3 {
            acc[c] += p[c] as u32;
        }
    }
    for x in 0..n as isize {
        let add = at(x + r as isize);
        let sub = at(x - r as isize - 1);
        let far_l = sub;
        let far_r = at(x + r as isize + 1);
        let mut o = [0u8; 3];
        for c in 0..3 {
            acc[c] = acc[c] + add[c] as u32 - sub[c] as u32;
            let bulk = acc[c]
                .wrapping_mul(ww)
                .wrapping_add((far_l[c] as u32 + far_r[c] as u32).wrapping_mul(fw));
            o[c] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
        }
        out[x as usize] = o;
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
    let data: &mut [u8] = img;
    // Horizontal passes, row by row.
    let mut a = vec![[0u8; 3]; w.max(h)];
    let mut b = vec![[0u8; 3]; w.max(h)];
    for row in data.chunks_exact_mut(w * 3) {
        for (x, p) in row.chunks_exact(3).enumerate() {
            a[x] = [p[0], p[1], p[2]];
        }
        for _ in 0..BOX_PASSES {
            box_line(&a[..w], &mut b[..w], r, ww, fw);
            std::mem::swap(&mut a, &mut b);
        }
        for (x, p) in row.chunks_exact_mut(3).enumerate() {
            p.copy_from_slice(&a[x]);
        }
    }
    // Vertical passes, column by column.
    for x in 0..w {
        for y in 0..h {
            let i = (y * w + x) * 3;
            a[y] = [data[i], data[i + 1], data[i + 2]];
        }
        for _ in 0..BOX_PASSES {
            box_line(&a[..h], &mut b[..h], r, ww, fw);
            std::mem::swap(&mut a, &mut b);
        }
        for y in 0..h {
            let i = (y * w + x) * 3;
            data[i..i + 3].copy_from_slice(&a[y]);
        }
    }
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

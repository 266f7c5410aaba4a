//! Colour operations on 8-bit RGB images with Pillow 13 semantics (what
//! torchvision's functional API does on PIL images), bit-exact.
//!
//! - brightness / contrast / saturation are `Image.blend(degenerate, img, f)`:
//!   in float32 `v = d + f * (img - d)`, clamped to [0, 255] and TRUNCATED.
//! - grayscale is ITU-R 601-2 in integers: `(19595 R + 38470 G + 7471 B + 32768) >> 16`.
//! - hue goes through Pillow's 8-bit HSV (H shifted by `uint8(trunc(255 * factor))`).
//! - solarize inverts values `>= threshold`.

use image::RgbImage;

/// Pillow's RGB -> L: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `ImagingBlend` for one value: `out = in1 + alpha * (in2 - in1)` in float32,
/// clipped to [0, 255] when extrapolating, truncated toward zero.
#[inline]
fn blend(d: u8, v: u8, alpha: f32) -> u8 {
    let t = d as i32 as f32 + alpha * (v as i32 - d as i32) as f32;
    if (0.0..=1.0).contains(&alpha) {
        t as u8
    } else if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

/// Lookup table `v -> blend(d, v, alpha)` for a constant degenerate value `d`.
fn blend_lut(d: u8, alpha: f32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    for (v, o) in lut.iter_mut().enumerate() {
        *o = blend(d, v as u8, alpha);
    }
    lut
}

fn apply_lut(img: &mut RgbImage, lut: &[u8; 256]) {
    for v in img.iter_mut() {
        *v = lut[*v as usize];
    }
}

/// `adjust_brightness(img, factor)`: blend with black. `factor` >= 0.
pub fn adjust_brightness(img: &mut RgbImage, factor: f32) {
    apply_lut(img, &blend_lut(0, factor));
}

/// The contrast enhancer's degenerate value: `int(mean(L) + 0.5)` over all pixels.
pub fn mean_luma(img: &RgbImage) -> u8 {
    let n = (img.width() as u64 * img.height() as u64).max(1);
    let sum: u64 = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| luma(p[0], p[1], p[2]) as u64)
        .sum();
    (sum as f64 / n as f64 + 0.5) as u8
}

/// `adjust_contrast(img, factor)`: blend with the (rounded) mean gray level.
pub fn adjust_contrast(img: &mut RgbImage, factor: f32) {
    let d = mean_luma(img);
    apply_lut(img, &blend_lut(d, factor));
}

/// `adjust_saturation(img, factor)`: blend each pixel with its own gray level.
pub fn adjust_saturation(img: &mut RgbImage, factor: f32) {
    for p in img.chunks_exact_mut(3) {
        let l = luma(p[0], p[1], p[2]);
        p[0] = blend(l, p[0], factor);
        p[1] = blend(l, p[1], factor);
        p[2] = blend(l, p[2], factor);
    }
}

/// `to_grayscale(img, num_output_channels=3)`: L copied to the 3 channels.
pub fn grayscale(img: &mut RgbImage) {
    for p in img.chunks_exact_mut(3) {
        let l = luma(p[0], p[1], p[2]);
        p[0] = l;
        p[1] = l;
        p[2] = l;
    }
}

/// `solarize(img, threshold)`: `v < threshold ? v : 255 - v`.
pub fn solarize(img: &mut RgbImage, threshold: u8) {
    let mut lut = [0u8; 256];
    for (v, o) in lut.iter_mut().enumerate() {
        *o = if (v as u32) < threshold as u32 {
            v as u8
        } else {
            255 - v as u8
        };
    }
    apply_lut(img, &lut);
}

/// Mirrors the image left-right.
pub fn hflip(img: &mut RgbImage) {
    let w = img.width() as usize;
    for row in img.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

/// Tables that replace the arithmetic of Pillow's HSV conversions with lookups
/// of the very same values (each entry is computed by the float code it replaces).
pub struct HsvTables {
    /// 8-bit H when R is the maximum, at `[(max - g) * 256 + (max - b)]`.
    hue_r: Vec<u8>,
    /// 8-bit H when G is the maximum (and R is not), at `[(max - r) * 256 + (max - b)]`.
    hue_g: Vec<u8>,
    /// 8-bit H when B is the maximum (and R, G are not), at `[(max - r) * 256 + (max - g)]`.
    hue_b: Vec<u8>,
    /// 8-bit S = `trunc(255 * (cr / max as f32))` at `[cr * 256 + max]`.
    sat: Vec<u8>,
    /// `p = round(V * (1 - fs))` at `[s * 256 + v]`.
    p: Vec<u8>,
    /// `floor(6 H / 255)` per H.
    hue_i: [u8; 256],
    /// `6 H / 255 - i` (float32) per H.
    hue_f: [f32; 256],
    /// `S / 255` (float32) per S.
    fs: [f32; 256],
}

/// Pillow's hue formula (`rgb2hsv_row`) for the branch `which` (0: R is max,
/// 1: G, 2: B), given the other two channels' distances to the max in the
/// order the formula names them, as 8-bit H.
fn pillow_hue(which: usize, d1: u32, d2: u32) -> u8 {
    let cr = d1.max(d2);
    if cr == 0 {
        return 0;
    }
    let crf = cr as f32;
    let (q1, q2) = (d1 as f32 / crf, d2 as f32 / crf);
    let h: f32 = match which {
        // h = bc - gc with d1 = max - g, d2 = max - b
        0 => q2 - q1,
        // h = 2.0 + rc - bc with d1 = max - r, d2 = max - b (double)
        1 => (2.0f64 + q1 as f64 - q2 as f64) as f32,
        // h = 4.0 + gc - rc with d1 = max - r, d2 = max - g (double)
        _ => (4.0f64 + q2 as f64 - q1 as f64) as f32,
    };
    // fmod(y, 1) of y in (0.8, 1.9): exactly y - trunc(y).
    let y = h as f64 / 6.0 + 1.0;
    let h: f32 = (y - (y as i64) as f64) as f32;
    ((h as f64 * 255.0) as i32).clamp(0, 255) as u8
}

/// The shared tables (built once, about 320 KiB).
pub fn hsv_tables() -> &'static HsvTables {
    static T: std::sync::OnceLock<HsvTables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let n = 256 * 256;
        let (mut hue_r, mut hue_g, mut hue_b) = (vec![0u8; n], vec![0u8; n], vec![0u8; n]);
        let mut sat = vec![0u8; n];
        let mut p = vec![0u8; n];
        let mut fs = [0f32; 256];
        for (s, f) in fs.iter_mut().enumerate() {
            *f = (s as f32 as f64 / 255.0) as f32;
        }
        for d1 in 0..256u32 {
            for d2 in 0..256u32 {
                let i = (d1 * 256 + d2) as usize;
                hue_r[i] = pillow_hue(0, d1, d2);
                hue_g[i] = pillow_hue(1, d1, d2);
                hue_b[i] = pillow_hue(2, d1, d2);
                // sat: d1 = cr, d2 = max
                if d2 >= d1.max(1) {
                    let sv: f32 = d1 as f32 / d2 as f32;
                    sat[i] = ((sv as f64 * 255.0) as i32).clamp(0, 255) as u8;
                }
                // p: d1 = s, d2 = v
                p[i] = c_round_nonneg(d2 as f32 as f64 * (1.0 - fs[d1 as usize] as f64))
                    .clamp(0, 255) as u8;
            }
        }
        let mut hue_i = [0u8; 256];
        let mut hue_f = [0f32; 256];
        for h in 0..256usize {
            let h6 = h as f32 as f64 * 6.0 / 255.0;
            let i = h6 as i32; // floor: h6 >= 0
            hue_i[h] = i as u8;
            hue_f[h] = (h6 - i as f32 as f64) as f32;
        }
        HsvTables {
            hue_r,
            hue_g,
            hue_b,
            sat,
            p,
            hue_i,
            hue_f,
            fs,
        }
    })
}

impl HsvTables {
    /// Pillow's `rgb2hsv_row` for one pixel (all three outputs 8-bit), reproducing
    /// its mix of float32 and float64 arithmetic: with `cr = max - min`,
    /// `S = trunc(255 * (cr / max))`, `rc = (max - r) / cr` (same for g, b, float32),
    /// `h = bc - gc` / `2.0 + rc - bc` / `4.0 + gc - rc` (the last two in double),
    /// `H = trunc(255 * fmod(h / 6.0 + 1.0, 1.0))`, `V = max`.
    #[inline]
    pub fn rgb_to_hsv(&self, r: u8, g: u8, b: u8) -> (u8, u8, u8) {
        let maxc = r.max(g).max(b);
        let minc = r.min(g).min(b);
        if maxc == minc {
            return (0, 0, maxc);
        }
        let d = |x: u8| (maxc - x) as usize;
        let uh = if r == maxc {
            self.hue_r[d(g) * 256 + d(b)]
        } else if g == maxc {
            self.hue_g[d(r) * 256 + d(b)]
        } else {
            self.hue_b[d(r) * 256 + d(g)]
        };
        let cr = (maxc - minc) as usize;
        (uh, self.sat[cr * 256 + maxc as usize], maxc)
    }

    /// Pillow's `hsv2rgb` for one pixel: `i = floor(6H/255)`, `f = 6H/255 - i`,
    /// `fs = S/255`, `p = round(V(1 - fs))`, `q = round(V(1 - fs f))`,
    /// `t = round(V(1 - fs (1 - f)))`, then by `i % 6`: (V,t,p), (q,V,p), (p,V,t),
    /// (p,q,V), (t,p,V), (V,p,q).
    #[inline]
    pub fn hsv_to_rgb(&self, h: u8, s: u8, v: u8) -> (u8, u8, u8) {
        if s == 0 {
            return (v, v, v);
        }
        let i = self.hue_i[h as usize] as usize;
        let f: f32 = self.hue_f[h as usize];
        let fs: f32 = self.fs[s as usize];
        let vf = v as f32 as f64;
        let p = self.p[s as usize * 256 + v as usize];
        // Both products are in [0, 255], so the non-negative rounding applies.
        let q = c_round_nonneg(vf * (1.0 - (fs * f) as f64)).clamp(0, 255) as u8;
        let t = c_round_nonneg(vf * (1.0 - fs as f64 * (1.0 - f as f64))).clamp(0, 255) as u8;
        const ORDER: [[usize; 3]; 6] = [
            [0, 3, 1],
            [2, 0, 1],
            [1, 0, 3],
            [1, 2, 0],
            [3, 1, 0],
            [0, 1, 2],
        ];
        let vals = [v, p, q, t];
        let o = ORDER[i % 6];
        (vals[o[0]], vals[o[1]], vals[o[2]])
    }
}

/// Pillow's `rgb2hsv_row` for one pixel; see [`HsvTables::rgb_to_hsv`].
pub fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    hsv_tables().rgb_to_hsv(r, g, b)
}

/// Pillow's `hsv2rgb` for one pixel; see [`HsvTables::hsv_to_rgb`].
pub fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    hsv_tables().hsv_to_rgb(h, s, v)
}

/// C `round` (half away from zero) of a non-negative double, without a libm call.
#[inline]
fn c_round_nonneg(x: f64) -> i32 {
    let t = x as i32; // truncation = floor for x >= 0
    if x - t as f64 >= 0.5 {
        t + 1
    } else {
        t
    }
}

/// The 8-bit hue shift torchvision adds for a factor in [-0.5, 0.5]:
/// `np.uint8(trunc(factor * 255))` (negative values wrap modulo 256).
pub fn hue_shift_u8(factor: f64) -> u8 {
    ((factor * 255.0) as i64).rem_euclid(256) as u8
}

/// `adjust_hue(img, factor)` on the PIL path: RGB -> 8-bit HSV, H += shift
/// (mod 256), HSV -> RGB. `factor` in [-0.5, 0.5].
pub fn adjust_hue(img: &mut RgbImage, factor: f64) {
    // No shortcut for a zero shift: Pillow round-trips through HSV regardless.
    let shift = hue_shift_u8(factor);
    let t = hsv_tables();
    for p in img.chunks_exact_mut(3) {
        let (h, s, v) = t.rgb_to_hsv(p[0], p[1], p[2]);
        let (r, g, b) = t.hsv_to_rgb(h.wrapping_add(shift), s, v);
        p[0] = r;
        p[1] = g;
        p[2] = b;
    }
}

//! Crop-box sampling with torchvision's conventions: `RandomResizedCrop.get_params`
//! (10 attempts, then a centre-crop fallback), `CenterCrop` and the output size
//! of `Resize(int)` (shorter side).

use vicreg_core::SeededRng;

use super::resize::CropBox;

/// Python's `round` (half to even) to an integer.
#[inline]
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// `RandomResizedCrop.get_params(img, scale, ratio)` for a `width x height`
/// image: up to 10 attempts drawing `area * U(scale)` and `exp(U(log ratio))`
/// (aspect = width / height), then the centre-crop fallback that clamps the
/// aspect ratio into `ratio`. Draw order per attempt: scale, log-ratio, then
/// (only on success) top, left.
pub fn random_resized_crop_box(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut SeededRng,
) -> CropBox {
    let area = width as f64 * height as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.uniform_range(scale.0, scale.1);
        let aspect = rng.uniform_range(log_lo, log_hi).exp();
        let w = py_round((target_area * aspect).sqrt());
        let h = py_round((target_area / aspect).sqrt());
        if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
            let top = rng.below((height as i64 - h + 1) as usize) as u32;
            let left = rng.below((width as i64 - w + 1) as usize) as u32;
            return CropBox {
                top,
                left,
                height: h as u32,
                width: w as u32,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (rmin, rmax) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < rmin {
        (width as i64, py_round(width as f64 / rmin))
    } else if in_ratio > rmax {
        (py_round(height as f64 * rmax), height as i64)
    } else {
        (width as i64, height as i64)
    };
    let (w, h) = (w.clamp(1, width as i64), h.clamp(1, height as i64));
    CropBox {
        top: ((height as i64 - h) / 2) as u32,
        left: ((width as i64 - w) / 2) as u32,
        height: h as u32,
        width: w as u32,
    }
}

/// torchvision `center_crop` box of `crop_w x crop_h` in a `width x height`
/// image (`top = round((H - h) / 2)`, Python rounding). The crop must fit.
pub fn center_crop_box(width: u32, height: u32, crop_w: u32, crop_h: u32) -> CropBox {
    let crop_w = crop_w.min(width);
    let crop_h = crop_h.min(height);
    CropBox {
        top: py_round((height - crop_h) as f64 / 2.0) as u32,
        left: py_round((width - crop_w) as f64 / 2.0) as u32,
        height: crop_h,
        width: crop_w,
    }
}

/// Output `(width, height)` of torchvision `Resize(shorter)` for an int size:
/// the shorter side becomes `shorter`, the longer `int(shorter * long / short)`.
pub fn resize_shorter_size(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    if width <= height {
        let long = (shorter as u64 * height as u64 / width.max(1) as u64) as u32;
        (shorter, long.max(1))
    } else {
        let long = (shorter as u64 * width as u64 / height.max(1) as u64) as u32;
        (long.max(1), shorter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_boxes_fit_and_fallback_is_central() {
        let mut rng = SeededRng::new(0);
        for _ in 0..200 {
            let b = random_resized_crop_box(50, 30, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(b.left + b.width <= 50 && b.top + b.height <= 30);
            assert!(b.width > 0 && b.height > 0);
        }
        // scale > 1 can never fit: fallback clamps aspect 50/10 to 4/3 -> w = round(10 * 4/3) = 13.
        let b = random_resized_crop_box(50, 10, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            b,
            CropBox {
                top: 0,
                left: 18,
                height: 10,
                width: 13
            }
        );
        assert_eq!(resize_shorter_size(500, 375, 256), (341, 256));
        assert_eq!(
            center_crop_box(341, 256, 224, 224),
            CropBox {
                top: 16,
                left: 58,
                height: 224,
                width: 224
            }
        );
    }
}

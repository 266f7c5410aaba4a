//! Built-in segmentation scenes for dense probes: several objects of the
//! built-in classes ([`crate::synth_images::SYNTH_CLASSES`]) on one image,
//! with a per-pixel class mask (0 = background, `k + 1` = class `k`).
//!
//! Objects are drawn as in [`crate::synth_images`] (shape or texture in
//! random colours, random rotation, two-colour gradient background, pixel
//! noise), smaller (radius 0.18-0.35 of the side) and possibly overlapping
//! (later objects cover earlier ones in image and mask). Everything is a pure
//! function of the seed and the scene index.

use image::{Rgb, RgbImage};
use vicreg_core::SeededRng;

use crate::synth_images::{contrasting, shape_at, Gradient, SYNTH_CLASSES};
use crate::{Error, Result};

/// Largest scene side in pixels and most objects per scene (bounds on flags).
pub const MAX_SCENE_SIZE: u32 = 1024;
/// See [`MAX_SCENE_SIZE`].
pub const MAX_OBJECTS: usize = 16;

/// One scene: the RGB image and its `(size * size)` row-major class mask.
#[derive(Clone, Debug)]
pub struct Scene {
    /// The picture.
    pub image: RgbImage,
    /// Per pixel: 0 background, `k + 1` an object of class `k`.
    pub mask: Vec<u8>,
}

/// Renders scene `index` of a set seeded with `seed`: `size x size` pixels,
/// 1..=`max_objects` objects of the first `num_classes` built-in classes.
pub fn render_scene(
    seed: u64,
    index: u64,
    size: u32,
    num_classes: usize,
    max_objects: usize,
) -> Result<Scene> {
    if size == 0 || size > MAX_SCENE_SIZE {
        return Err(Error::Config(format!(
            "scene size {size} outside 1..={MAX_SCENE_SIZE}"
        )));
    }
    if num_classes == 0
        || num_classes > SYNTH_CLASSES.len()
        || max_objects == 0
        || max_objects > MAX_OBJECTS
    {
        return Err(Error::Config(format!(
            "scenes need 1..={} classes and 1..={MAX_OBJECTS} objects, got {num_classes} and {max_objects}",
            SYNTH_CLASSES.len()
        )));
    }
    let mut rng = SeededRng::derive(seed, &[vicreg_core::hash_str("scene"), index]);
    let s = size as f64;
    let background = Gradient::draw(&mut rng);
    let bg_mean = background.mean();
    struct Object {
        class: usize,
        fg: [f64; 3],
        fg2: [f64; 3],
        cx: f64,
        cy: f64,
        radius: f64,
        rot: (f64, f64),
        phase: f64,
    }
    let n = 1 + rng.below(max_objects);
    let objects: Vec<Object> = (0..n)
        .map(|_| {
            let class = rng.below(num_classes);
            let fg = contrasting(&mut rng, &bg_mean, 70.0);
            let fg2 = contrasting(&mut rng, &fg, 70.0);
            let radius = s * rng.uniform_range(0.18, 0.35);
            let margin = radius * 0.8;
            let cx = rng.uniform_range(margin, s - margin);
            let cy = rng.uniform_range(margin, s - margin);
            let rot = rng.uniform() * std::f64::consts::TAU;
            Object {
                class,
                fg,
                fg2,
                cx,
                cy,
                radius,
                rot: (rot.cos(), rot.sin()),
                phase: rng.uniform() * std::f64::consts::TAU,
            }
        })
        .collect();
    let mut image = RgbImage::new(size, size);
    let mut mask = vec![0u8; (size * size) as usize];
    for py in 0..size {
        for px in 0..size {
            let (x, y) = (px as f64 + 0.5, py as f64 + 0.5);
            let mut c = background.at(x, y, s);
            let mut label = 0u8;
            for o in &objects {
                let (dx, dy) = ((x - o.cx) / o.radius, (y - o.cy) / o.radius);
                let (cr, sr) = o.rot;
                let (u, v) = (dx * cr + dy * sr, -dx * sr + dy * cr);
                if let Some(primary) = shape_at(o.class, u, v, o.phase) {
                    c = if primary { o.fg } else { o.fg2 };
                    label = o.class as u8 + 1;
                }
            }
            let mut p = [0u8; 3];
            for k in 0..3 {
                p[k] = (c[k] + 6.0 * rng.normal()).round().clamp(0.0, 255.0) as u8;
            }
            image.put_pixel(px, py, Rgb(p));
            mask[(py * size + px) as usize] = label;
        }
    }
    Ok(Scene { image, mask })
}

/// The majority class of every cell of a `(rows, cols)` grid laid over a
/// `size x size` mask (ties: the lower class), row-major.
pub fn cell_labels(mask: &[u8], size: u32, grid: (usize, usize)) -> Vec<usize> {
    let (rows, cols) = grid;
    let s = size as usize;
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let (y0, y1) = (r * s / rows, ((r + 1) * s / rows).max(r * s / rows + 1));
            let (x0, x1) = (c * s / cols, ((c + 1) * s / cols).max(c * s / cols + 1));
            let mut counts = [0usize; 256];
            for y in y0..y1.min(s) {
                for x in x0..x1.min(s) {
                    counts[mask[y * s + x] as usize] += 1;
                }
            }
            let best = (0..256)
                .max_by_key(|&k| (counts[k], std::cmp::Reverse(k)))
                .unwrap_or(0);
            out.push(best);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_seeded_and_masks_match_objects() {
        let a = render_scene(1, 5, 48, 10, 3).unwrap();
        let b = render_scene(1, 5, 48, 10, 3).unwrap();
        assert_eq!(a.image.as_raw(), b.image.as_raw());
        assert_eq!(a.mask, b.mask);
        let c = render_scene(1, 6, 48, 10, 3).unwrap();
        assert_ne!(a.mask, c.mask);
        assert!(a.mask.iter().any(|&m| m > 0) && a.mask.contains(&0));
        assert!(a.mask.iter().all(|&m| m <= 10));
        assert!(render_scene(1, 0, 0, 10, 3).is_err());
        assert!(render_scene(1, 0, 32, 11, 3).is_err());
    }

    #[test]
    fn cell_labels_take_the_majority() {
        // 4x4 mask: left half class 2, top-right 1, bottom-right 0.
        let mask = [2, 2, 1, 1, 2, 2, 1, 1, 2, 2, 0, 0, 2, 2, 0, 0];
        assert_eq!(cell_labels(&mask, 4, (2, 2)), vec![2, 1, 2, 0]);
        assert_eq!(cell_labels(&mask, 4, (1, 1)), vec![2]);
    }
}

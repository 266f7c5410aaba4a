//! Multi-crop views (SwAV / VICRegL): a few global crops and several small
//! local crops of one image, each with the box it was cut from, so that a
//! local criterion can place every feature-map cell in the original image.
//!
//! The spec string is `<count>x<size>[@<min>-<max>]` groups joined by `+`,
//! e.g. `2x224+6x96` (VICRegL's default: 2 global 224 px crops with area
//! scale (0.4, 1) and 6 local 96 px crops with scale (0.08, 0.4)) or
//! `2x64@0.2-1+4x32@0.05-0.2`. The first group holds the global views.
//! Colour distortion alternates as the official code's
//! (`get_color_distortion(left = j % 2 == 0)` within each group): even views
//! use the base config's first view (blur p 1), odd views its second (blur p
//! 0.1, solarize p 0.2).

use image::RgbImage;
use serde::{Deserialize, Serialize};
use vicreg_core::model::CropGeometry;
use vicreg_core::SeededRng;

use super::normalize::{to_normalized_chw, ChwImage};
use super::pipeline::{augment_view_u8_located, VicregAugConfig, ViewConfig};
use crate::{Error, Result};

/// Most views one image may produce, and the largest crop side (bounds on
/// values read from flags and config files).
pub const MAX_VIEWS: usize = 64;
/// See [`MAX_VIEWS`].
pub const MAX_CROP_SIZE: u32 = 4096;

/// `count` crops of `size x size` pixels whose area is a fraction in `scale`
/// of the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropGroup {
    /// Number of crops.
    pub count: usize,
    /// Output side in pixels.
    pub size: u32,
    /// Range of the crop area as a fraction of the image area.
    pub scale: (f64, f64),
}

/// The groups of crops of a multi-crop view set; the first group is global.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiCropConfig {
    /// Global crops first, then local crops.
    pub groups: Vec<CropGroup>,
}

impl MultiCropConfig {
    /// Parses `2x224+6x96` (see the module docs). Groups without `@min-max`
    /// get VICRegL's scales: (0.4, 1) for the first group, (0.08, 0.4) for
    /// the others.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Config(format!(
                "multi-crop spec {spec:?}: {why} (expected e.g. 2x224+6x96 or 2x64@0.2-1+4x32@0.05-0.2)"
            ))
        };
        let mut groups = Vec::new();
        for (i, part) in spec.trim().split('+').enumerate() {
            let (shape, scale) = match part.split_once('@') {
                Some((a, b)) => (a, Some(b)),
                None => (part, None),
            };
            let (count, size) = shape
                .trim()
                .split_once('x')
                .ok_or_else(|| bad("each group is <count>x<size>"))?;
            let count: usize = count.trim().parse().map_err(|_| bad("bad count"))?;
            let size: u32 = size.trim().parse().map_err(|_| bad("bad size"))?;
            let scale = match scale {
                Some(s) => {
                    let (lo, hi) = s
                        .split_once('-')
                        .ok_or_else(|| bad("scale is <min>-<max>"))?;
                    (
                        lo.trim().parse().map_err(|_| bad("bad scale"))?,
                        hi.trim().parse().map_err(|_| bad("bad scale"))?,
                    )
                }
                None if i == 0 => (0.4, 1.0),
                None => (0.08, 0.4),
            };
            groups.push(CropGroup { count, size, scale });
        }
        let cfg = Self { groups };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The spec string (`2x224@0.4-1+6x96@0.08-0.4`).
    pub fn spec(&self) -> String {
        self.groups
            .iter()
            .map(|g| format!("{}x{}@{}-{}", g.count, g.size, g.scale.0, g.scale.1))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Number of global views (the first group's count).
    pub fn num_global(&self) -> usize {
        self.groups.first().map_or(0, |g| g.count)
    }

    /// Number of views in all.
    pub fn num_views(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Checks counts, sizes and scales.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::Config(format!("multi-crop: {m}")));
        if self.groups.is_empty() || self.groups.iter().any(|g| g.count == 0) {
            return err("every group needs at least one crop".into());
        }
        if self.num_views() < 2 || self.num_views() > MAX_VIEWS {
            return err(format!(
                "{} views in all; needs 2..={MAX_VIEWS}",
                self.num_views()
            ));
        }
        for g in &self.groups {
            if g.size == 0 || g.size > MAX_CROP_SIZE {
                return err(format!("crop size {} outside 1..={MAX_CROP_SIZE}", g.size));
            }
            let (lo, hi) = g.scale;
            if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                return err(format!(
                    "scale ({lo}, {hi}) must satisfy 0 < min <= max <= 1"
                ));
            }
        }
        Ok(())
    }
}

/// The multi-crop transform: every view of one image with its geometry.
#[derive(Clone, Debug)]
pub struct MultiCropTransform {
    base: VicregAugConfig,
    views: Vec<ViewConfig>,
    num_global: usize,
}

impl MultiCropTransform {
    /// Views of `crops`, with colour, blur, solarize, flip, ratio and
    /// normalisation from `base` (see the module docs for which view uses
    /// which of `base`'s two view configs).
    pub fn new(base: VicregAugConfig, crops: &MultiCropConfig) -> Result<Self> {
        base.validate()?;
        crops.validate()?;
        let mut views = Vec::with_capacity(crops.num_views());
        for g in &crops.groups {
            for j in 0..g.count {
                let v = if j % 2 == 0 { &base.view1 } else { &base.view2 };
                views.push(ViewConfig {
                    size: g.size,
                    scale: g.scale,
                    ..v.clone()
                });
            }
        }
        Ok(Self {
            base,
            views,
            num_global: crops.num_global(),
        })
    }

    /// Number of global views (at the front).
    pub fn num_global(&self) -> usize {
        self.num_global
    }

    /// Every view's configuration, in order.
    pub fn views(&self) -> &[ViewConfig] {
        &self.views
    }

    /// Every view, normalised `(channels, size, size)`, with the crop's box
    /// in `img`'s pixels and its flip; draws view by view from `rng`.
    pub fn apply(
        &self,
        img: &RgbImage,
        rng: &mut SeededRng,
    ) -> Result<Vec<(ChwImage, CropGeometry)>> {
        self.views
            .iter()
            .map(|v| {
                let (out, bx, flipped) = augment_view_u8_located(img, v, rng)?;
                Ok((
                    to_normalized_chw(&out, &self.base.normalize, self.base.channels),
                    CropGeometry {
                        top: bx.top as f32,
                        left: bx.left as f32,
                        height: bx.height as f32,
                        width: bx.width as f32,
                        flipped,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_with_default_and_explicit_scales() {
        let c = MultiCropConfig::parse("2x224+6x96").unwrap();
        assert_eq!(c.num_global(), 2);
        assert_eq!(c.num_views(), 8);
        assert_eq!(c.groups[0].scale, (0.4, 1.0));
        assert_eq!(c.groups[1].scale, (0.08, 0.4));
        let c = MultiCropConfig::parse("2x64@0.2-1+4x32@0.05-0.2").unwrap();
        assert_eq!(c.groups[1].scale, (0.05, 0.2));
        assert_eq!(MultiCropConfig::parse(&c.spec()).unwrap(), c);
        for bad in [
            "",
            "2x",
            "x96",
            "1x224",
            "2x0",
            "2x224@0.5",
            "2x224@0.9-0.1",
            "100x32",
            "2x99999",
        ] {
            assert!(MultiCropConfig::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn views_have_their_sizes_geometry_and_are_seeded() {
        let img = RgbImage::from_fn(80, 60, |x, y| image::Rgb([x as u8, y as u8, (x + y) as u8]));
        let crops = MultiCropConfig::parse("2x32+3x16").unwrap();
        let t = MultiCropTransform::new(VicregAugConfig::small_images(32), &crops).unwrap();
        let a = t.apply(&img, &mut SeededRng::new(3)).unwrap();
        let b = t.apply(&img, &mut SeededRng::new(3)).unwrap();
        assert_eq!(a.len(), 5);
        for (i, ((va, ga), (vb, gb))) in a.iter().zip(&b).enumerate() {
            let side = if i < 2 { 32 } else { 16 };
            assert_eq!((va.height, va.width), (side, side));
            assert_eq!(va.data, vb.data);
            assert_eq!(ga, gb);
            assert!(ga.top + ga.height <= 60.0 && ga.left + ga.width <= 80.0);
            let area = ga.height * ga.width / (80.0 * 60.0);
            // box rounding and the centre-crop fallback can leave the range slightly
            assert!(area <= 1.0 && area > 0.02, "view {i}: area {area}");
        }
        // local crops are smaller than global ones on average
        let mean_area = |r: std::ops::Range<usize>| {
            r.clone().map(|i| a[i].1.height * a[i].1.width).sum::<f32>() / r.len() as f32
        };
        assert!(mean_area(2..5) < mean_area(0..2));
        // odd views use the second view config (solarize possible), even the first
        assert_eq!(
            t.views()[1].solarize_p,
            VicregAugConfig::small_images(32).view2.solarize_p
        );
        assert_eq!(t.views()[2].blur_p, 1.0);
    }
}

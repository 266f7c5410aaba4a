//! The VICReg augmentation pipelines as configurable transforms.
//!
//! [`VicregAugConfig::default`] is the official VICReg `TrainTransform`: per view
//! `RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3), BICUBIC)` ->
//! `RandomHorizontalFlip(0.5)` -> `RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)`
//! -> `RandomGrayscale(0.2)` -> PIL `GaussianBlur(sigma ~ U(0.1, 2.0))` with p = 1.0 / 0.1
//! -> `Solarize(128)` with p = 0.0 / 0.2 -> `ToTensor` -> ImageNet `Normalize`.
//! Draws follow torchvision's order (crop attempts; flip; jitter apply; the jitter's
//! random order of its 4 ops, then its 4 factors; grayscale; blur p, sigma; solarize),
//! all from the caller's [`SeededRng`].

use image::RgbImage;
use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

use super::blur::gaussian_blur;
use super::color::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, grayscale, hflip, solarize,
};
use super::geometry::{center_crop_box, random_resized_crop_box, resize_shorter_size};
use super::normalize::{to_normalized_chw, ChwImage, Normalization};
use super::resize::{resize, resized_crop, CropBox, Interpolation};
use crate::{Error, Result};

/// Parameters of one augmented view. Probabilities are in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewConfig {
    /// Output side in pixels (square crops).
    pub size: u32,
    /// Range of the crop area as a fraction of the image area.
    pub scale: (f64, f64),
    /// Range of the crop aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
    /// Resampling filter of the crop.
    pub interpolation: Interpolation,
    /// Probability of a horizontal flip.
    pub hflip_p: f64,
    /// Probability of applying the colour jitter.
    pub jitter_p: f64,
    /// Brightness factor drawn from `U(max(0, 1 - b), 1 + b)`.
    pub brightness: f64,
    /// Contrast factor drawn from `U(max(0, 1 - c), 1 + c)`.
    pub contrast: f64,
    /// Saturation factor drawn from `U(max(0, 1 - s), 1 + s)`.
    pub saturation: f64,
    /// Hue shift drawn from `U(-hue, hue)` (a fraction of a turn, <= 0.5).
    pub hue: f64,
    /// Probability of converting to grayscale (3 equal channels).
    pub grayscale_p: f64,
    /// Probability of the Gaussian blur.
    pub blur_p: f64,
    /// Range of the blur sigma in pixels (Pillow's `radius`).
    pub blur_sigma: (f64, f64),
    /// Probability of solarization.
    pub solarize_p: f64,
    /// Values `>= threshold` are inverted by solarization.
    pub solarize_threshold: u8,
}

impl Default for ViewConfig {
    /// The official first view (blur p = 1.0, solarize p = 0.0).
    fn default() -> Self {
        Self {
            size: 224,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            interpolation: Interpolation::Bicubic,
            hflip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.2,
            hue: 0.1,
            grayscale_p: 0.2,
            blur_p: 1.0,
            blur_sigma: (0.1, 2.0),
            solarize_p: 0.0,
            solarize_threshold: 128,
        }
    }
}

fn check_p(name: &str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!(
            "{name} = {p} is not a probability in [0, 1]"
        )));
    }
    Ok(())
}

impl ViewConfig {
    /// The official second view (blur p = 0.1, solarize p = 0.2).
    pub fn official_second() -> Self {
        Self {
            blur_p: 0.1,
            solarize_p: 0.2,
            ..Self::default()
        }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::Config("view size must be > 0".into()));
        }
        let (s0, s1) = self.scale;
        if !(s0 > 0.0 && s0 <= s1) {
            return Err(Error::Config(format!(
                "crop scale {:?} must satisfy 0 < lo <= hi",
                self.scale
            )));
        }
        let (r0, r1) = self.ratio;
        if !(r0 > 0.0 && r0 <= r1) {
            return Err(Error::Config(format!(
                "crop ratio {:?} must satisfy 0 < lo <= hi",
                self.ratio
            )));
        }
        for (n, p) in [
            ("hflip_p", self.hflip_p),
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("solarize_p", self.solarize_p),
        ] {
            check_p(n, p)?;
        }
        for (n, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::Config(format!("{n} = {v} must be >= 0")));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(Error::Config(format!(
                "hue = {} must be in [0, 0.5]",
                self.hue
            )));
        }
        let (b0, b1) = self.blur_sigma;
        if !(b0 >= 0.0 && b0 <= b1) {
            return Err(Error::Config(format!(
                "blur_sigma {:?} must satisfy 0 <= lo <= hi",
                self.blur_sigma
            )));
        }
        Ok(())
    }
}

/// The two-view pretraining augmentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VicregAugConfig {
    /// First view.
    pub view1: ViewConfig,
    /// Second view.
    pub view2: ViewConfig,
    /// Final normalisation.
    pub normalize: Normalization,
    /// Output channels: 3 (RGB) or 1 (first channel only, for grayscale sources).
    pub channels: usize,
}

impl Default for VicregAugConfig {
    /// The official VICReg `TrainTransform` (asymmetric blur / solarize).
    fn default() -> Self {
        Self {
            view1: ViewConfig::default(),
            view2: ViewConfig::official_second(),
            normalize: Normalization::imagenet(),
            channels: 3,
        }
    }
}

impl VicregAugConfig {
    /// The paper's symmetric setting: blur p = 0.5 and solarize p = 0.1 on both views.
    pub fn symmetric() -> Self {
        let v = ViewConfig {
            blur_p: 0.5,
            solarize_p: 0.1,
            ..ViewConfig::default()
        };
        Self {
            view1: v.clone(),
            view2: v,
            ..Self::default()
        }
    }

    /// For small images (e.g. the built-in 64x64 synthetic data): crops of
    /// `size` pixels, crop scale (0.2, 1) so that a crop keeps enough of a small
    /// object, and blur sigma scaled by `size / 224`; everything else official.
    pub fn small_images(size: u32) -> Self {
        let f = size as f64 / 224.0;
        let adapt = |v: ViewConfig| ViewConfig {
            size,
            scale: (0.2, 1.0),
            blur_sigma: (0.1 * f, 2.0 * f),
            ..v
        };
        Self {
            view1: adapt(ViewConfig::default()),
            view2: adapt(ViewConfig::official_second()),
            ..Self::default()
        }
    }

    /// Checks both views, the normalisation and the channel count.
    pub fn validate(&self) -> Result<()> {
        self.view1.validate()?;
        self.view2.validate()?;
        self.normalize.validate()?;
        check_channels(self.channels)
    }
}

fn check_channels(c: usize) -> Result<()> {
    if c != 1 && c != 3 {
        return Err(Error::Config(format!("channels = {c} must be 1 or 3")));
    }
    Ok(())
}

fn factor_range(v: f64) -> (f64, f64) {
    ((1.0 - v).max(0.0), 1.0 + v)
}

/// Applies one view's u8 operations (everything before `ToTensor`) to `img`.
pub fn augment_view_u8(img: &RgbImage, cfg: &ViewConfig, rng: &mut SeededRng) -> Result<RgbImage> {
    Ok(augment_view_u8_located(img, cfg, rng)?.0)
}

/// [`augment_view_u8`], also returning where the crop came from: its box in
/// `img` and whether it was flipped (same draws, same image).
pub fn augment_view_u8_located(
    img: &RgbImage,
    cfg: &ViewConfig,
    rng: &mut SeededRng,
) -> Result<(RgbImage, CropBox, bool)> {
    let (w, h) = img.dimensions();
    let bx = random_resized_crop_box(w, h, cfg.scale, cfg.ratio, rng);
    let mut out = resized_crop(img, bx, cfg.size, cfg.size, cfg.interpolation)?;
    let flipped = rng.uniform() < cfg.hflip_p;
    if flipped {
        hflip(&mut out);
    }
    // RandomApply: skipped when p < rand.
    if rng.uniform() < cfg.jitter_p {
        let order = rng.permutation(4);
        let b = cfg.brightness > 0.0;
        let c = cfg.contrast > 0.0;
        let s = cfg.saturation > 0.0;
        let hu = cfg.hue > 0.0;
        let draw = |on: bool, (lo, hi): (f64, f64), rng: &mut SeededRng| {
            on.then(|| rng.uniform_range(lo, hi))
        };
        let bf = draw(b, factor_range(cfg.brightness), rng);
        let cf = draw(c, factor_range(cfg.contrast), rng);
        let sf = draw(s, factor_range(cfg.saturation), rng);
        let hf = draw(hu, (-cfg.hue, cfg.hue), rng);
        for op in order {
            match op {
                0 => {
                    if let Some(f) = bf {
                        adjust_brightness(&mut out, f as f32)
                    }
                }
                1 => {
                    if let Some(f) = cf {
                        adjust_contrast(&mut out, f as f32)
                    }
                }
                2 => {
                    if let Some(f) = sf {
                        adjust_saturation(&mut out, f as f32)
                    }
                }
                _ => {
                    if let Some(f) = hf {
                        adjust_hue(&mut out, f)
                    }
                }
            }
        }
    }
    if rng.uniform() < cfg.grayscale_p {
        grayscale(&mut out);
    }
    if rng.uniform() < cfg.blur_p {
        let sigma = rng.uniform_range(cfg.blur_sigma.0, cfg.blur_sigma.1);
        gaussian_blur(&mut out, sigma as f32);
    }
    if rng.uniform() < cfg.solarize_p {
        solarize(&mut out, cfg.solarize_threshold);
    }
    Ok((out, bx, flipped))
}

/// Anything that turns a decoded RGB image into one normalised CHW view.
pub trait ViewTransform: Send + Sync {
    /// The transformed, normalised image.
    fn apply(&self, img: &RgbImage, rng: &mut SeededRng) -> Result<ChwImage>;
}

/// The two-view pretraining transform.
#[derive(Clone, Debug)]
pub struct TwoViewTransform {
    cfg: VicregAugConfig,
}

impl TwoViewTransform {
    /// Validates `cfg`.
    pub fn new(cfg: VicregAugConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &VicregAugConfig {
        &self.cfg
    }

    /// Both views as u8 images (view 1's draws first, then view 2's).
    pub fn apply_u8(&self, img: &RgbImage, rng: &mut SeededRng) -> Result<(RgbImage, RgbImage)> {
        let a = augment_view_u8(img, &self.cfg.view1, rng)?;
        let b = augment_view_u8(img, &self.cfg.view2, rng)?;
        Ok((a, b))
    }

    /// Both views, normalised, `(channels, size, size)` each.
    pub fn apply(&self, img: &RgbImage, rng: &mut SeededRng) -> Result<(ChwImage, ChwImage)> {
        let (a, b) = self.apply_u8(img, rng)?;
        Ok((
            to_normalized_chw(&a, &self.cfg.normalize, self.cfg.channels),
            to_normalized_chw(&b, &self.cfg.normalize, self.cfg.channels),
        ))
    }
}

/// Linear-evaluation validation transform: `Resize(resize_to)` (shorter side),
/// `CenterCrop(crop)`, `ToTensor`, `Normalize` (official: 256, 224, bilinear).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalTransformConfig {
    /// Shorter side after the resize.
    pub resize_to: u32,
    /// Side of the centre crop.
    pub crop: u32,
    /// Resampling filter of the resize.
    pub interpolation: Interpolation,
    /// Final normalisation.
    pub normalize: Normalization,
    /// Output channels (1 or 3).
    pub channels: usize,
}

impl Default for EvalTransformConfig {
    fn default() -> Self {
        Self {
            resize_to: 256,
            crop: 224,
            interpolation: Interpolation::Bilinear,
            normalize: Normalization::imagenet(),
            channels: 3,
        }
    }
}

impl EvalTransformConfig {
    /// For small images: resize to `crop * 8 / 7` then centre-crop `crop` (the 256/224 ratio).
    pub fn small_images(crop: u32) -> Self {
        Self {
            resize_to: (crop * 8).div_ceil(7),
            crop,
            ..Self::default()
        }
    }
}

/// Deterministic evaluation transform (uses no randomness).
#[derive(Clone, Debug)]
pub struct EvalTransform {
    cfg: EvalTransformConfig,
}

impl EvalTransform {
    /// Validates `cfg`.
    pub fn new(cfg: EvalTransformConfig) -> Result<Self> {
        if cfg.resize_to == 0 || cfg.crop == 0 || cfg.crop > cfg.resize_to {
            return Err(Error::Config(format!(
                "eval transform: need 0 < crop ({}) <= resize_to ({})",
                cfg.crop, cfg.resize_to
            )));
        }
        cfg.normalize.validate()?;
        check_channels(cfg.channels)?;
        Ok(Self { cfg })
    }

    /// The u8 image before normalisation.
    pub fn apply_u8(&self, img: &RgbImage) -> Result<RgbImage> {
        let (w, h) = img.dimensions();
        let (rw, rh) = resize_shorter_size(w, h, self.cfg.resize_to);
        let resized = resize(img, rw, rh, self.cfg.interpolation)?;
        let bx = center_crop_box(rw, rh, self.cfg.crop, self.cfg.crop);
        // An exact crop: resampling a box to its own size is the identity.
        resized_crop(&resized, bx, bx.width, bx.height, self.cfg.interpolation)
    }
}

impl ViewTransform for EvalTransform {
    fn apply(&self, img: &RgbImage, _rng: &mut SeededRng) -> Result<ChwImage> {
        Ok(to_normalized_chw(
            &self.apply_u8(img)?,
            &self.cfg.normalize,
            self.cfg.channels,
        ))
    }
}

/// Linear-evaluation training transform: `RandomResizedCrop(size)` (bilinear,
/// scale (0.08, 1) by default) + `RandomHorizontalFlip(0.5)` + `Normalize`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinearTrainTransformConfig {
    /// Output side.
    pub size: u32,
    /// Crop area range.
    pub scale: (f64, f64),
    /// Crop aspect range.
    pub ratio: (f64, f64),
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Flip probability.
    pub hflip_p: f64,
    /// Final normalisation.
    pub normalize: Normalization,
    /// Output channels (1 or 3).
    pub channels: usize,
}

impl Default for LinearTrainTransformConfig {
    fn default() -> Self {
        Self {
            size: 224,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            interpolation: Interpolation::Bilinear,
            hflip_p: 0.5,
            normalize: Normalization::imagenet(),
            channels: 3,
        }
    }
}

impl LinearTrainTransformConfig {
    /// For small images: crops of `size`, scale (0.2, 1).
    pub fn small_images(size: u32) -> Self {
        Self {
            size,
            scale: (0.2, 1.0),
            ..Self::default()
        }
    }
}

/// Random crop + flip transform for training a linear probe.
#[derive(Clone, Debug)]
pub struct LinearTrainTransform {
    cfg: LinearTrainTransformConfig,
}

impl LinearTrainTransform {
    /// Validates `cfg`.
    pub fn new(cfg: LinearTrainTransformConfig) -> Result<Self> {
        ViewConfig {
            size: cfg.size,
            scale: cfg.scale,
            ratio: cfg.ratio,
            hflip_p: cfg.hflip_p,
            ..ViewConfig::default()
        }
        .validate()?;
        cfg.normalize.validate()?;
        check_channels(cfg.channels)?;
        Ok(Self { cfg })
    }
}

impl ViewTransform for LinearTrainTransform {
    fn apply(&self, img: &RgbImage, rng: &mut SeededRng) -> Result<ChwImage> {
        let (w, h) = img.dimensions();
        let bx = random_resized_crop_box(w, h, self.cfg.scale, self.cfg.ratio, rng);
        let mut out = resized_crop(
            img,
            bx,
            self.cfg.size,
            self.cfg.size,
            self.cfg.interpolation,
        )?;
        if rng.uniform() < self.cfg.hflip_p {
            hflip(&mut out);
        }
        Ok(to_normalized_chw(
            &out,
            &self.cfg.normalize,
            self.cfg.channels,
        ))
    }
}

//! One augmented image view as a [`ViewTransform`] (the image branch of image-text
//! pretraining sees a single view per caption).

use image::RgbImage;
use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

use crate::augment::{
    augment_view_u8, to_normalized_chw, ChwImage, Normalization, VicregAugConfig, ViewConfig,
    ViewTransform,
};
use crate::{Error, Result};

/// Configuration of [`SingleViewTransform`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SingleViewConfig {
    /// The view's augmentations.
    pub view: ViewConfig,
    /// Final normalisation.
    pub normalize: Normalization,
    /// Output channels (1 or 3).
    pub channels: usize,
}

impl Default for SingleViewConfig {
    /// The first view of the official VICReg augmentation.
    fn default() -> Self {
        let v = VicregAugConfig::default();
        Self {
            view: v.view1,
            normalize: v.normalize,
            channels: v.channels,
        }
    }
}

impl SingleViewConfig {
    /// Augmentations that keep a caption of colour, position and size true (for the
    /// synthetic captions): crops of `size` covering 80-100 % of the image with
    /// near-square aspect, mild brightness/contrast jitter, light blur; no flip (left/right
    /// words), no hue/saturation/grayscale (colour words), no solarization.
    pub fn caption_safe(size: u32) -> Self {
        let base = VicregAugConfig::small_images(size).view1;
        Self {
            view: ViewConfig {
                size,
                scale: (0.8, 1.0),
                ratio: (0.9, 1.0 / 0.9),
                hflip_p: 0.0,
                jitter_p: 0.8,
                brightness: 0.2,
                contrast: 0.2,
                saturation: 0.0,
                hue: 0.0,
                grayscale_p: 0.0,
                blur_p: 0.3,
                solarize_p: 0.0,
                ..base
            },
            ..Self::default()
        }
    }
}

/// Applies one [`ViewConfig`] then normalises to CHW.
#[derive(Clone, Debug)]
pub struct SingleViewTransform {
    cfg: SingleViewConfig,
}

impl SingleViewTransform {
    /// Validates `cfg`.
    pub fn new(cfg: SingleViewConfig) -> Result<Self> {
        cfg.view.validate()?;
        cfg.normalize.validate()?;
        if cfg.channels != 1 && cfg.channels != 3 {
            return Err(Error::Config(format!(
                "channels = {} must be 1 or 3",
                cfg.channels
            )));
        }
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &SingleViewConfig {
        &self.cfg
    }
}

impl ViewTransform for SingleViewTransform {
    fn apply(&self, img: &RgbImage, rng: &mut SeededRng) -> Result<ChwImage> {
        let v = augment_view_u8(img, &self.cfg.view, rng)?;
        Ok(to_normalized_chw(
            &v,
            &self.cfg.normalize,
            self.cfg.channels,
        ))
    }
}

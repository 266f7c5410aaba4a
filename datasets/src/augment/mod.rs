//! Image augmentations on u8 RGB HWC buffers ([`image::RgbImage`]), bit-exact
//! with the PIL path of torchvision (Pillow 13), and the VICReg pipelines.

pub mod blur;
pub mod color;
mod dispatch;
pub mod geometry;
pub mod multicrop;
pub mod normalize;
pub mod pipeline;
pub mod resize;

pub use multicrop::{CropGroup, MultiCropConfig, MultiCropTransform};
pub use normalize::{to_normalized_chw, ChwImage, Normalization};
pub use pipeline::{
    augment_view_u8, augment_view_u8_located, EvalTransform, EvalTransformConfig,
    LinearTrainTransform, LinearTrainTransformConfig, TwoViewTransform, VicregAugConfig,
    ViewConfig, ViewTransform,
};
pub use resize::{resize, resized_crop, CropBox, Interpolation, MAX_RESIZE_PIXELS};

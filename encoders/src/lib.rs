//! # encoders
//!
//! Trainable encoders for vicreg-rs, each implementing [`vicreg_core::model::Encoder`].

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
pub use error::{Error, Result};

pub mod audio;
pub mod convnext;
mod image;
pub mod ops;
pub mod resnet;
pub mod text;
mod weights;

pub use convnext::{ConvNeXt, ConvNeXtConfig};
pub use image::{check_arch, is_convnext, ImageEncoder, ImageEncoderOptions};
pub use resnet::{ResNet, ResNetConfig};

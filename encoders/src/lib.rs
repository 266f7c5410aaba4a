//! # encoders
//!
//! Trainable encoders for vicreg-rs, each implementing [`vicreg_core::model::Encoder`].

mod error;
pub use error::{Error, Result};

pub mod audio;
pub mod ops;
pub mod resnet;
pub mod text;

pub use resnet::{ResNet, ResNetConfig};

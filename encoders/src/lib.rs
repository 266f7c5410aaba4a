//! # encoders
//!
//! Trainable encoders for vicreg-rs, each implementing [`vicreg_core::model::Encoder`].

mod error;
pub use error::{Error, Result};

pub mod resnet;

pub use resnet::{ResNet, ResNetConfig};

//! # datasets
//!
//! Dataset readers in their real on-disk formats, the VICReg augmentations, a
//! deterministic multi-threaded loader, and generators of built-in synthetic data.

pub mod augment;
mod dataset;
mod error;
pub mod image;
pub mod loader;
pub mod synth_images;

pub use dataset::Dataset;
pub use error::{Error, Result};

//! # datasets
//!
//! Dataset readers in their real on-disk formats, the VICReg augmentations, a
//! deterministic multi-threaded loader, and generators of built-in synthetic data.

mod dataset;
mod error;

pub use dataset::Dataset;
pub use error::{Error, Result};

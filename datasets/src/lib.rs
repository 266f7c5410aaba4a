//! # datasets
//!
//! Dataset readers in their real on-disk formats, the VICReg augmentations, a
//! deterministic multi-threaded loader, and generators of built-in synthetic data.
//!
//! Every reader here takes files it did not write: no `unwrap` / `expect`
//! outside tests (denied below), every size read from a file bounded before it
//! is allocated, and every failure an [`Error`] naming the file.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audio;
pub mod augment;
mod cache;
pub mod coco;
mod dataset;
mod error;
pub mod image;
pub mod loader;
pub mod media;
pub mod paired_tables;
pub mod pairs;
mod safe_path;
pub mod synth_audio;
pub mod synth_captions;
pub mod synth_images;
mod synth_marker;
pub mod synth_scenes;
pub mod synth_tables;
pub mod table;
pub mod text;

pub use cache::cache_dir;
pub use dataset::Dataset;
pub use error::{Error, Result};

//! # vicreg-core
//!
//! The modality-agnostic heart of vicreg-rs: the VICReg loss with the official
//! and paper conventions, the two-branch joint-embedding model
//! ([`model::Encoder`] -> [`model::Expander`] per [`model::Branch`]),
//! optimizers (LARS, SGD, AdamW) with checkpointable state and the official
//! schedule, collectives for data-parallel semantics, collapse diagnostics and
//! a finite-difference gradient checker.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
//! use vicreg_core::collective::{Collective, SingleProcess};
//! use std::sync::Arc;
//!
//! // (batch, dim) embeddings of the two branches
//! let za = Tensor::randn(0f32, 1.0, (32, 64), &Device::Cpu)?;
//! let zb = (&za + Tensor::randn(0f32, 0.1, (32, 64), &Device::Cpu)?)?;
//! let loss = VicRegLoss::new(VicRegConfig::default())?;
//! let single: Arc<dyn Collective> = Arc::new(SingleProcess);
//! let out = loss.compute(&za, &zb, &single)?;
//! for (name, value) in out.scalars()? {
//!     println!("{name} = {value:.4}");
//! }
//! # Ok::<(), vicreg_core::Error>(())
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod ablate;
pub mod collective;
mod device;
pub mod diagnostics;
pub mod engine;
mod error;
pub mod eval;
pub mod gradcheck;
pub mod insight;
pub mod io;
pub mod limits;
pub mod loss;
pub mod model;
pub mod ops;
pub mod optim;
mod params;
pub mod recipe;
mod rng;

pub use device::parse_device;
pub use error::{BoxError, Error, Result};
pub use params::{init_values, is_buffer_name, ParamStore};
pub use rng::{hash_str, mix64, RngState, SeededRng};

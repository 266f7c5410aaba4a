//! # encoders
//!
//! Trainable encoders for vicreg-rs, each implementing [`vicreg_core::model::Encoder`].

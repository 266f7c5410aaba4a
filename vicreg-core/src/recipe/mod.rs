//! The recipe layer: what every pretraining app shares besides its data and
//! its two branches.
//!
//! - [`overlay`]: defaults, then a TOML config file, then the flags, key by
//!   key, for any configuration struct (no per-field merge code).
//! - [`RunSettings`]: the `[run]` section every run has (epochs, batch,
//!   optimizer, learning rate, VICReg coefficients, seed, logging,
//!   checkpoints, device, multi-process settings), with its checks and its
//!   conversion to the engine's [`TrainConfig`](crate::engine::TrainConfig);
//!   with the `cli` feature, [`RunFlags`] gives the same keys as flags.
//!
//! The launch for several processes is [`crate::collective::Launch`], the
//! trainer [`crate::engine::Trainer::builder`]; `apps/tabular` is a whole
//! app on this layer (a new modality, its data and two branches).

mod overlay;
mod run;

pub use overlay::overlay;
#[cfg(feature = "cli")]
pub use run::RunFlags;
pub use run::RunSettings;

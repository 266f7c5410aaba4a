//! The recipe layer: what every pretraining app shares besides its data and
//! its two branches.
//!
//! - [`overlay`]: defaults, then a TOML config file, then the flags, key by
//!   key, for any configuration struct (no per-field merge code).
//! - Config sections, each a serde struct with `Default` and a `validate`
//!   that names the bad key, meant to be `#[serde(flatten)]`ed into an app's
//!   flat config (so the keys stay flat: `epochs = 10`, not `[train]`):
//!   [`TrainSettings`] (schedule, optimizer, seed, logging, checkpoints,
//!   device, processes), [`DataSettings`], [`LossSettings`] and
//!   [`CoeffSettings`], [`VariantSettings`] (BYOL / SimSiam, with
//!   [`VariantSettings::fit_asymmetric`], the model and its training over any
//!   encoder). [`RunSettings`] bundles a VICReg run's keys into one section.
//! - With the `cli` feature, each section's flags (`TrainFlags`,
//!   `DataFlags`, `LossFlags`, `CoeffFlags`, `VariantFlags`, `RunFlags`): the
//!   same keys as `--key`, unset flags leaving the file's value; an app
//!   flattens them into its command with `#[command(flatten)]` and
//!   `#[serde(flatten)]`.
//!
//! The launch for several processes is [`crate::collective::Launch`], the
//! trainer [`crate::engine::Trainer::builder`]; `apps/tabular` is a whole
//! app on this layer (a new modality, its data and two branches).

mod data;
mod loss;
mod overlay;
mod run;
mod train;
mod variant;

#[cfg(feature = "cli")]
pub use data::DataFlags;
pub use data::DataSettings;
#[cfg(feature = "cli")]
pub use loss::{CoeffFlags, LossFlags};
pub use loss::{CoeffSettings, LossSettings};
pub use overlay::{overlay, overlay_table};
#[cfg(feature = "cli")]
pub use run::RunFlags;
pub use run::RunSettings;
#[cfg(feature = "cli")]
pub use train::TrainFlags;
pub use train::TrainSettings;
#[cfg(feature = "cli")]
pub use variant::VariantFlags;
pub use variant::VariantSettings;

/// The value of a clap argument struct when no flag is given: every field's
/// `default_value` (what an app runs with no arguments, e.g. its demo).
/// Fails if `A` has a required flag.
#[cfg(feature = "cli")]
pub fn flag_defaults<A: clap::Args + clap::FromArgMatches>() -> Result<A, clap::Error> {
    let cmd = A::augment_args(clap::Command::new("defaults"));
    let matches = cmd.try_get_matches_from(["defaults"])?;
    A::from_arg_matches(&matches)
}

/// `<prefix>-<unix seconds>`: a fresh run directory name for a run the user
/// gave no `--exp-dir` (e.g. a demo), so that runs do not resume each other.
pub fn timestamped_dir(prefix: &str) -> std::path::PathBuf {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::path::PathBuf::from(format!("{prefix}-{t}"))
}

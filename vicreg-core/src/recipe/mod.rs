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
//!   `#[serde(flatten)]`, usually as the bundles [`PretrainFlags`] (run, data,
//!   loss) and [`SiameseFlags`] (coefficients, BYOL / SimSiam).
//! - [`Preset`] / [`LaptopRecipe`]: `--preset paper|laptop`, the starting
//!   point under the config file and the flags.
//! - [`AppConfig`]: how an app reads its config (defaults or a preset, a
//!   file, the flags; a run directory's `config.toml`; `check-config`), and
//!   [`CommonCommand`] (`plot`, `check-config`) for its command enum.
//! - [`PlotArgs`] / [`plot`]: every app's `plot` (charts of one or several
//!   runs, maps of exported embeddings); [`flag_defaults`] and
//!   [`timestamped_dir`] for demos.
//!
//! The launch for several processes is [`crate::collective::Launch`], the
//! trainer [`crate::engine::Trainer::builder`]; `apps/tabular` is a whole
//! app on this layer (a new modality, its data and two branches).

mod app_config;
mod data;
mod loss;
mod overlay;
mod preset;
mod run;
mod train;
mod variant;

pub use app_config::AppConfig;
#[cfg(feature = "cli")]
pub use app_config::CommonCommand;
#[cfg(feature = "cli")]
pub use data::DataFlags;
pub use data::DataSettings;
#[cfg(feature = "cli")]
pub use loss::{CoeffFlags, LossFlags};
pub use loss::{CoeffSettings, LossSettings};
pub use overlay::{overlay, overlay_given, overlay_table};
pub use preset::{LaptopRecipe, Preset};
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

/// An app's `main`: runs `app`; on an error prints `error: <e>` (in the
/// alternate form, which for `anyhow` lists every cause) and exits with status 1.
pub fn exit_on_error<E: std::fmt::Display>(app: impl FnOnce() -> Result<(), E>) {
    if let Err(e) = app() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `<prefix>-<unix seconds>`: a fresh run directory name for a run the user
/// gave no `--exp-dir` (e.g. a demo), so that runs do not resume each other.
pub fn timestamped_dir(prefix: &str) -> std::path::PathBuf {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::path::PathBuf::from(format!("{prefix}-{t}"))
}

/// `plot`: the charts of one or several run directories, and the map of
/// exported embeddings.
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug)]
pub struct PlotArgs {
    /// Run directories (`--exp-dir a --exp-dir b` or `--exp-dir a b`): each one's charts are redrawn; with several, compare.svg puts their curves side by side.
    #[arg(long, num_args = 1.., required_unless_present = "map")]
    pub exp_dir: Vec<std::path::PathBuf>,
    /// Folder for compare.svg (default: the first run directory).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Embeddings written by `embed` (the path without .npy / .csv): draws their t-SNE map coloured by label and the collapse pictures next to them.
    #[arg(long)]
    pub map: Option<std::path::PathBuf>,
}

/// Runs `plot`: returns the files written.
#[cfg(feature = "cli")]
pub fn plot(args: &PlotArgs) -> crate::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for dir in &args.exp_dir {
        files.extend(crate::engine::plot_run(dir)?);
    }
    if args.exp_dir.len() > 1 {
        let out = args.out.clone().unwrap_or_else(|| args.exp_dir[0].clone());
        files.push(crate::engine::plot_comparison(&args.exp_dir, &out)?);
    }
    if let Some(stem) = &args.map {
        let (x, labels, classes) = crate::insight::read_export(stem)?;
        let pics = crate::insight::draw_pictures_for(
            stem,
            &x,
            &labels,
            &classes,
            &crate::insight::TsneConfig::default(),
        )?;
        println!(
            "map of {} points, {} classes: 2-D 5-NN accuracy {:.1}%",
            pics.points,
            classes.len(),
            100.0 * pics.knn_2d
        );
        files.extend([pics.map, pics.std_histogram, pics.correlation]);
    }
    Ok(files)
}

/// The flags every `pretrain` command has: run ([`TrainFlags`], with
/// `--config` and `--resume`), data ([`DataFlags`]) and loss ([`LossFlags`]).
/// An app adds it to its flags with `#[command(flatten)]` + `#[serde(flatten)]`.
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, serde::Serialize)]
pub struct PretrainFlags {
    #[command(flatten)]
    #[serde(flatten)]
    pub train: TrainFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub criterion: LossFlags,
}

#[cfg(feature = "cli")]
impl PretrainFlags {
    /// An app's `pretrain` configuration: `base` (its preset), then the file
    /// of `--config`, then every flag set in `all` (the app's whole flag
    /// struct, into which these flags are flattened); ranges checked.
    pub fn config_over<C: AppConfig, F: serde::Serialize + ?Sized>(
        &self,
        base: &C,
        all: &F,
    ) -> crate::Result<C> {
        C::from_file_and_flags(self.train.config.as_deref(), base, all)
    }
}

/// The flags of apps whose two branches can be one encoder: the VICReg
/// coefficients ([`CoeffFlags`]) and the BYOL / SimSiam keys ([`VariantFlags`]).
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, serde::Serialize)]
pub struct SiameseFlags {
    #[command(flatten)]
    #[serde(flatten)]
    pub coeffs: CoeffFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub variant: VariantFlags,
}

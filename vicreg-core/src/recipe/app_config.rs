//! How every app reads its flat pretraining configuration: defaults (or a
//! preset), then a TOML file, then the flags, checked, with errors that name
//! the file and the key; a run directory's `config.toml`; `check-config`.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::overlay_given;
use crate::{BoxError, Error, Result};

/// An app's pretraining configuration (one flat table; its keys are the
/// flags' names), as written to `<exp-dir>/config.toml`.
///
/// An app implements the two checks; the loading functions are provided.
pub trait AppConfig: Serialize + DeserializeOwned + Default {
    /// The app's name, as the errors name it (`esc50-audio`).
    const APP: &'static str;

    /// Checks every numeric key against the bounds of its flag; the error
    /// names the key.
    fn validate_ranges(&self) -> std::result::Result<(), BoxError>;

    /// Fills every derived value and checks the whole configuration (what
    /// `check-config` runs after reading a file, and `pretrain` before it
    /// starts).
    fn resolve_and_validate(&mut self) -> std::result::Result<(), BoxError>;

    /// Adjusts a configuration read from a file for keys that did not exist
    /// when older files were written: `given` holds every key the file and
    /// the flags set, `from_file` whether a file was read. Default: nothing.
    fn upgrade(&mut self, given: &toml::Table, from_file: bool) {
        let _ = (given, from_file);
    }

    /// `base`, then the TOML `file` (if any), then `flags` (the set ones,
    /// see [`overlay`](super::overlay)); ranges checked.
    fn from_file_and_flags<F: Serialize + ?Sized>(
        file: Option<&Path>,
        base: &Self,
        flags: &F,
    ) -> Result<Self> {
        let (mut cfg, given) = overlay_given(base, file, flags)?;
        cfg.upgrade(&given, file.is_some());
        cfg.validate_ranges()
            .map_err(|e| invalid::<Self>(file, e))?;
        Ok(cfg)
    }

    /// Reads a TOML file whose missing keys take `base`'s values; ranges checked.
    fn from_toml_file_over(path: &Path, base: &Self) -> Result<Self> {
        Self::from_file_and_flags(Some(path), base, &toml::Table::new())
    }

    /// Reads a TOML file whose missing keys take the defaults; ranges checked.
    fn from_toml_file(path: &Path) -> Result<Self> {
        Self::from_toml_file_over(path, &Self::default())
    }

    /// The configuration of a run directory (`<dir>/config.toml`).
    fn of_run(dir: &Path) -> Result<Self> {
        let p = dir.join("config.toml");
        if !p.is_file() {
            return Err(Error::bad_file(
                dir,
                format!(
                    "no config.toml (not a run directory of `{app}`; run `{app} pretrain` first)",
                    app = Self::APP
                ),
            ));
        }
        Self::from_toml_file(&p)
    }

    /// `check-config`: reads `path`, fills the derived values and checks
    /// everything `pretrain` would.
    fn check_file(path: &Path) -> Result<()> {
        let mut cfg = Self::from_toml_file(path)?;
        cfg.resolve_and_validate()
            .map_err(|e| invalid::<Self>(Some(path), e))
    }
}

fn invalid<C: AppConfig>(file: Option<&Path>, source: BoxError) -> Error {
    let what = match file {
        Some(f) => format!("{}: invalid {} config", f.display(), C::APP),
        None => format!("invalid {} flags", C::APP),
    };
    Error::InvalidConfig { what, source }
}

/// The subcommands every app has besides its own, flattened into its command
/// enum with `#[command(flatten)]`.
#[cfg(feature = "cli")]
#[derive(clap::Subcommand, Debug)]
pub enum CommonCommand {
    /// Redraw the charts of run directories (several: also side by side), or draw the map of exported embeddings (--map).
    Plot(super::PlotArgs),
    /// Checks a pretraining config file (keys, value ranges, consistency) without running it.
    CheckConfig {
        /// The TOML file (the keys of `pretrain --config`).
        #[arg(long)]
        config: std::path::PathBuf,
    },
}

#[cfg(feature = "cli")]
impl CommonCommand {
    /// Runs the command for the app whose configuration is `C`; prints the
    /// files written (`plot`) or `<file>: ok` (`check-config`).
    pub fn run<C: AppConfig>(self) -> Result<()> {
        match self {
            CommonCommand::Plot(a) => {
                for f in super::plot(&a)? {
                    println!("{}", f.display());
                }
            }
            CommonCommand::CheckConfig { config } => {
                C::check_file(&config)?;
                println!("{}: ok", config.display());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    struct Toy {
        epochs: usize,
        old_style: bool,
    }

    impl AppConfig for Toy {
        const APP: &'static str = "toy";
        fn validate_ranges(&self) -> std::result::Result<(), BoxError> {
            crate::limits::check_int("epochs", self.epochs, &(1..=10))?;
            Ok(())
        }
        fn resolve_and_validate(&mut self) -> std::result::Result<(), BoxError> {
            self.validate_ranges()
        }
        fn upgrade(&mut self, given: &toml::Table, from_file: bool) {
            self.old_style = from_file && !given.contains_key("old-style");
        }
    }

    #[test]
    fn file_then_flags_with_errors_naming_file_and_key() {
        let d = std::env::temp_dir().join(format!("app-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("config.toml");
        std::fs::write(&f, "epochs = 3\n").unwrap();
        let c = Toy::of_run(&d).unwrap();
        assert_eq!(c.epochs, 3);
        assert!(c.old_style, "a file without the new key is upgraded");
        let mut flags = toml::Table::new();
        flags.insert("epochs".into(), toml::Value::Integer(5));
        flags.insert("old-style".into(), toml::Value::Boolean(false));
        let c = Toy::from_file_and_flags(Some(&f), &Toy::default(), &flags).unwrap();
        assert_eq!((c.epochs, c.old_style), (5, false));
        std::fs::write(&f, "epochs = 30\n").unwrap();
        let e = format!("{:?}", anyhow_like(Toy::check_file(&f).unwrap_err()));
        assert!(
            e.contains("invalid toy config") && e.contains("config.toml"),
            "{e}"
        );
        assert!(e.contains("`epochs`"), "{e}");
        let e = Toy::of_run(&d.join("nowhere")).unwrap_err().to_string();
        assert!(e.contains("not a run directory of `toy`"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The error and its causes, as `{:#}` of an `anyhow` error prints them.
    fn anyhow_like(e: Error) -> String {
        let mut s = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            s.push_str(&format!(": {c}"));
            cause = c.source();
        }
        s
    }
}

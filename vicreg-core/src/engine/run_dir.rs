//! The run directory (`--exp-dir`) and the files in it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Error, Result};

/// A run directory:
/// `config.toml` (the fully resolved configuration), `metrics.jsonl`,
/// `checkpoint.safetensors` + `checkpoint.json`, `<branch>-encoder.safetensors`
/// and the `plot_*.svg` charts.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Uses `path`, creating it (and its parents) if needed.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Self { root })
    }

    /// Uses an existing directory (an error naming it when it does not exist).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::io(
                &root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "run directory does not exist"),
            ));
        }
        Ok(Self { root })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `checkpoint.safetensors` (the whole training state).
    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }

    /// `checkpoint.json` (readable copy of the checkpoint's metadata).
    pub fn checkpoint_json_path(&self) -> PathBuf {
        self.root.join("checkpoint.json")
    }

    /// `<branch>-encoder.safetensors`.
    pub fn encoder_path(&self, branch: &str) -> PathBuf {
        self.root.join(format!("{branch}-encoder.safetensors"))
    }

    /// True when a checkpoint file exists.
    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint_path().is_file()
    }

    /// The TOML text of `config.toml` in directory `dir` for the resolved
    /// configuration `cfg`, which must serialize to a table (a struct or a
    /// map); the error names the file.
    pub fn config_toml<T: Serialize + ?Sized>(dir: &Path, cfg: &T) -> Result<String> {
        toml::to_string_pretty(cfg).map_err(|e| {
            Error::bad_file(
                dir.join("config.toml"),
                format!("configuration cannot be written as TOML: {e}"),
            )
        })
    }

    /// Writes `config.toml` (atomically) from its TOML text
    /// ([`RunDir::config_toml`]).
    pub fn write_config_text(&self, text: &str) -> Result<()> {
        let path = self.config_path();
        if let Ok(old) = std::fs::read_to_string(&path) {
            if old != text {
                tracing::warn!(
                    "{}: the configuration differs from the one the run started with; the new one is kept",
                    path.display()
                );
            }
        }
        crate::io::write_atomic(&path, text.as_bytes())
    }
}

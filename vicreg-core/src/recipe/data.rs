//! The data keys every app has: where the data is, how many loader workers
//! read it, and whether an unreadable file stops the run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::limits::{check_int, NUM_WORKERS};
use crate::Result;

/// Data location and loading.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct DataSettings {
    /// The data set's root (its layout is the app's); unset: the app's built-in data.
    pub data_dir: Option<PathBuf>,
    /// Loader worker threads (0: load on the training thread).
    pub num_workers: usize,
    /// Fail on the first unreadable file instead of skipping it (skips are counted and logged).
    pub strict: bool,
}

impl DataSettings {
    /// Data at `dir` (a demo's generated set), `num_workers` loader threads,
    /// unreadable files skipped.
    pub fn at(dir: PathBuf, num_workers: usize) -> Self {
        Self {
            data_dir: Some(dir),
            num_workers,
            strict: false,
        }
    }

    /// Checks `num-workers`' range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        check_int("num-workers", self.num_workers, &NUM_WORKERS)
    }
}

/// [`DataSettings`] as flags.
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DataFlags {
    /// The data set's root (see the app's README for its layout); unset: the built-in data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = crate::limits::int::<usize>(NUM_WORKERS))]
    pub num_workers: Option<usize>,
    /// Fail on the first unreadable file instead of skipping it (`--strict` alone means true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub strict: Option<bool>,
}

//! Where the app keeps its built-in data and how it writes results files.
//! The ESC-50 protocols and labelled batches are `datasets::audio::{protocol,
//! eval_input}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// The cache folder of built-in data: `$VICREG_CACHE`, else `~/.cache/vicreg-rs`, else `./.cache`.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VICREG_CACHE") {
        return PathBuf::from(d);
    }
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() => PathBuf::from(h).join(".cache").join("vicreg-rs"),
        _ => PathBuf::from(".cache"),
    }
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    vicreg_core::io::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

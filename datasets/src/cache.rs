//! Where the built-in data generators keep what they write.

use std::path::PathBuf;

/// The cache folder of built-in data: `$VICREG_CACHE`, else
/// `~/.cache/vicreg-rs`, else `./.cache`.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VICREG_CACHE") {
        return PathBuf::from(d);
    }
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() => PathBuf::from(h).join(".cache").join("vicreg-rs"),
        _ => PathBuf::from(".cache"),
    }
}

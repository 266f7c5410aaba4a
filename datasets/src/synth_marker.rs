//! Completion markers of the built-in generators: a generator writes its config as JSON to
//! a marker file LAST, so a dataset whose marker holds the same config is complete and is
//! reused as is; anything else is regenerated.

use std::path::Path;

use serde::Serialize;

use crate::{Error, Result};

/// Name of the marker file at the dataset root.
pub const MARKER_FILE: &str = ".vicreg_synth_complete.json";

/// True when `root` holds a complete dataset generated with `cfg`.
pub(crate) fn is_complete<C: Serialize>(root: &Path, cfg: &C) -> Result<bool> {
    let want = serde_json::to_string_pretty(cfg)
        .map_err(|e| Error::Config(format!("cannot serialise config: {e}")))?;
    match std::fs::read_to_string(root.join(MARKER_FILE)) {
        Ok(got) => Ok(got == want),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(root.join(MARKER_FILE), e)),
    }
}

/// Prepares `root` for (re)generation: creates it, and removes the generator's own entries
/// (`owned`, plus the marker) left by an older or interrupted run. Refuses (with
/// [`Error::Layout`]) when `root` contains anything else, so user data is never deleted.
pub(crate) fn prepare_dir(root: &Path, owned: &[&str]) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(MARKER_FILE) && !owned.contains(&name.as_str()) {
            return Err(Error::Layout(format!(
                "{}: refusing to generate a synthetic dataset here: it contains {name:?}, which the generator did not write",
                root.display()
            )));
        }
    }
    for marker in [
        root.join(MARKER_FILE),
        root.join(format!("{MARKER_FILE}.tmp")),
    ] {
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        }
    }
    for name in owned {
        let p = root.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        } else if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Writes the marker (call after everything else is on disk).
pub(crate) fn write_marker<C: Serialize>(root: &Path, cfg: &C) -> Result<()> {
    let text = serde_json::to_string_pretty(cfg)
        .map_err(|e| Error::Config(format!("cannot serialise config: {e}")))?;
    let tmp = root.join(format!("{MARKER_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    let marker = root.join(MARKER_FILE);
    std::fs::rename(&tmp, &marker).map_err(|e| Error::io(&marker, e))
}

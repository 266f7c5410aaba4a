//! Shared helpers for the workspace-level integration tests in `tests/tests/`.

use std::path::PathBuf;

/// The `shared/` folder beside the repository (golden data, references).
pub fn shared_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [here.join("../../shared"), here.join("../shared")];
    for c in candidates {
        if c.join("golden").is_dir() {
            return c;
        }
    }
    panic!("cannot find shared/golden next to the repository (looked in ../../shared and ../shared from {})", here.display());
}

/// Path of a golden file, e.g. `golden("loss_reference.json")`.
pub fn golden(name: &str) -> PathBuf {
    shared_dir().join("golden").join(name)
}

pub mod app;
pub mod bad_input;
pub mod browser;
pub mod config_fuzz;
pub mod mpi_run;
pub mod numpy;

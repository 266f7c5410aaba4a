//! Which process group a pretraining run belongs to.
//!
//! - Started by `mpirun -np N` (Open MPI sets `OMPI_COMM_WORLD_SIZE`; MPICH
//!   `PMI_SIZE`) and built with the cargo feature `mpi`: rank and world size
//!   come from `MPI_COMM_WORLD` ([`vicreg_core::collective::MpiCollective`]),
//!   with the `collective-timeout` deadline on every collective.
//! - Otherwise one process ([`SingleProcess`]). A binary built without `mpi`
//!   that `mpirun` starts several times refuses to run (the copies would
//!   train independently and overwrite each other's run directory).
//!
//! `batch-size` is the global batch: every rank loads `batch-size / world`
//! pairs per step. Synchronized BatchNorm (`sync-bn`, default on when
//! world > 1, as the official code converts every BatchNorm) makes every
//! BatchNorm of the model normalise with the global batch's statistics.

use std::sync::Arc;

use anyhow::{bail, Result};
use vicreg_core::collective::{Collective, SingleProcess};

/// Environment variables by which MPI launchers announce the world size.
const WORLD_SIZE_VARS: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// The world size announced by an MPI launcher, if any.
pub fn launcher_world_size() -> Option<usize> {
    WORLD_SIZE_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// This process's place in the run, and the MPI runtime when there is one.
pub struct Launch {
    collective: Arc<dyn Collective>,
    #[cfg(feature = "mpi")]
    mpi: Option<vicreg_core::collective::MpiRuntime>,
}

impl Launch {
    /// One process on its own.
    pub fn single() -> Self {
        Self {
            collective: Arc::new(SingleProcess),
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// MPI when started by an MPI launcher (see the [module docs](self)),
    /// with `timeout_s` seconds as the deadline of every collective.
    pub fn from_env(timeout_s: f64) -> Result<Self> {
        if !(timeout_s.is_finite() && timeout_s > 0.0) {
            bail!("collective-timeout must be a positive number of seconds, got {timeout_s}");
        }
        let Some(world) = launcher_world_size() else {
            return Ok(Self::single());
        };
        #[cfg(feature = "mpi")]
        {
            let _ = world;
            let rt =
                vicreg_core::collective::MpiRuntime::init(vicreg_core::collective::MpiOptions {
                    timeout: std::time::Duration::from_secs_f64(timeout_s),
                })?;
            Ok(Self {
                collective: rt.collective(),
                mpi: Some(rt),
            })
        }
        #[cfg(not(feature = "mpi"))]
        {
            if world > 1 {
                bail!(
                    "started by an MPI launcher with {world} processes, but this imagenet binary \
                     was built without MPI support; rebuild it with \
                     `cargo build --release -p imagenet --features mpi` (needs Open MPI: libopenmpi-dev)"
                );
            }
            Ok(Self::single())
        }
    }

    /// The group every collective of the run goes through.
    pub fn collective(&self) -> Arc<dyn Collective> {
        self.collective.clone()
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Number of processes.
    pub fn world(&self) -> usize {
        self.collective.world_size()
    }

    /// Ends the run with `result`. Under MPI an error aborts every rank (the
    /// others may be waiting in a collective for this one), and success
    /// finalizes MPI.
    pub fn finish<T>(self, result: Result<T>) -> Result<T> {
        #[cfg(feature = "mpi")]
        if let (Some(rt), Err(e)) = (&self.mpi, &result) {
            rt.abort(1, &format!("error: {e:#}"));
        }
        result
    }
}

/// Pairs per rank and micro-batch: `batch / (world * accumulate)`, which must
/// be a whole number.
pub fn micro_batch(batch: usize, world: usize, accumulate: usize) -> Result<usize> {
    let parts = world * accumulate;
    if parts == 0 || batch == 0 || !batch.is_multiple_of(parts) {
        bail!(
            "batch-size {batch} (the global batch) must be a multiple of the number of processes \
             ({world}) times accumulate ({accumulate})"
        );
    }
    Ok(batch / parts)
}

/// Whether BatchNorm statistics are synchronized: `sync_bn` if set, else
/// whenever there is more than one process.
pub fn sync_bn(sync_bn: Option<bool>, world: usize) -> bool {
    sync_bn.unwrap_or(world > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batch_divides_the_global_batch() {
        assert_eq!(micro_batch(256, 4, 2).unwrap(), 32);
        assert_eq!(micro_batch(8, 1, 1).unwrap(), 8);
        let e = micro_batch(10, 4, 1).unwrap_err().to_string();
        assert!(e.contains("batch-size 10") && e.contains("(4)"), "{e}");
    }

    #[test]
    fn sync_bn_defaults_to_on_for_several_processes() {
        assert!(!sync_bn(None, 1));
        assert!(sync_bn(None, 2));
        assert!(!sync_bn(Some(false), 4));
        assert!(sync_bn(Some(true), 1));
    }
}

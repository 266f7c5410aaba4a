//! Which process group a training run belongs to: one launch for every app
//! (`imagenet`, `esc50-audio`, `coco-retrieval` and any binary built on the
//! engine).
//!
//! - Started by `mpirun -np N` (Open MPI sets `OMPI_COMM_WORLD_SIZE`; MPICH
//!   `PMI_SIZE`) and built with the cargo feature `mpi`: rank and world size
//!   come from `MPI_COMM_WORLD` ([`crate::collective::MpiCollective`]),
//!   with the `collective-timeout` deadline on every collective.
//! - Otherwise one process ([`SingleProcess`]). A binary built without `mpi`
//!   that `mpirun` starts several times refuses to run (the copies would
//!   train independently and overwrite each other's run directory).
//!
//! GPUs ([`Launch::from_env_with_device`]): under an MPI launcher `--device
//! cuda` (no ordinal) becomes `cuda:<node-local rank>`, one process per GPU
//! (the node-local rank comes from the launcher's environment, e.g. Open MPI's
//! `OMPI_COMM_WORLD_LOCAL_RANK`, else from the ranks' host names gathered over
//! MPI); `cuda:N` is kept as given. Built with the cargo feature `nccl`, a CUDA
//! run exchanges its tensors with NCCL ([`crate::collective::NcclCollective`]):
//! rank 0 makes the NCCL id, MPI broadcasts it, and MPI stays up for the
//! bootstrap and for aborting the job (an NCCL operation past
//! `collective-timeout` returns an error, which [`Launch::finish`] turns into
//! `MPI_Abort`). One process without a launcher needs neither MPI nor NCCL.
//!
//! `batch-size` is the global batch: every rank loads `batch-size / world`
//! pairs per step. Synchronized BatchNorm (`sync-bn`, default on when
//! world > 1, as the official code converts every BatchNorm) makes every
//! BatchNorm of the model normalise with the global batch's statistics.

use std::sync::Arc;

use super::{Collective, SingleProcess, SyncBatchNormScope};
use crate::{Error, Result};

/// Environment variables by which MPI launchers announce the world size.
const WORLD_SIZE_VARS: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// The world size announced by an MPI launcher, if any.
pub fn launcher_world_size() -> Option<usize> {
    WORLD_SIZE_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// Environment variables by which launchers announce the node-local rank
/// (Open MPI, MPICH/Intel MPI, Slurm, torchrun-style), in that order.
#[cfg(any(feature = "mpi", test))]
const LOCAL_RANK_VARS: [&str; 4] = [
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "SLURM_LOCALID",
    "LOCAL_RANK",
];

/// The node-local rank announced by the launcher, looking variables up with
/// `get` (`std::env::var(..).ok()` in the app).
#[cfg(any(feature = "mpi", test))]
pub fn local_rank_from_env(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    LOCAL_RANK_VARS
        .iter()
        .find_map(|v| get(v)?.trim().parse().ok())
}

/// The node-local rank of `rank` given every rank's host key (rank order):
/// how many lower ranks run on the same host.
#[cfg(any(feature = "mpi", test))]
pub fn local_rank_from_hosts(hosts: &[u64], rank: usize) -> usize {
    hosts
        .iter()
        .take(rank)
        .filter(|&&h| Some(&h) == hosts.get(rank))
        .count()
}

/// A key of this machine's host name (FNV-1a of `/proc/sys/kernel/hostname`,
/// else of `$HOSTNAME`; 0 when neither is readable).
#[cfg(feature = "mpi")]
fn host_key() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| crate::hash_str(h.trim()))
        .unwrap_or(0)
}

/// `key` as four exact 16-bit chunks, the form in which host keys travel
/// through the f32 collectives.
#[cfg(any(feature = "mpi", test))]
pub fn key_to_f32(key: u64) -> [f32; 4] {
    std::array::from_fn(|i| ((key >> (16 * i)) & 0xffff) as f32)
}

/// The keys of a gathered `(world * 4)` vector of [`key_to_f32`] chunks.
#[cfg(any(feature = "mpi", test))]
pub fn keys_from_f32(v: &[f32]) -> Vec<u64> {
    v.chunks(4)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u64, |k, (i, &x)| k | ((x as u64) << (16 * i)))
        })
        .collect()
}

/// What `--device` asks for: `None` for the CPU, `Some(None)` for `cuda`
/// (any GPU), `Some(Some(n))` for `cuda:n`. Errors name the bad value.
pub fn cuda_request(device: &str) -> Result<Option<Option<usize>>> {
    let d = device.trim().to_ascii_lowercase();
    if d == "cpu" {
        return Ok(None);
    }
    let bad = || Error::config(format!("bad device {device:?}: expected cpu or cuda:N"));
    match d.strip_prefix("cuda") {
        Some("") => Ok(Some(None)),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .map(|n| Some(Some(n)))
            .ok_or_else(bad),
        None => Err(bad()),
    }
}

/// The device this rank trains on: `cuda` becomes `cuda:<local_rank>`
/// (`cuda:0` without one), `cuda:N` and `cpu` stay.
pub fn rank_device(device: &str, local_rank: Option<usize>) -> Result<String> {
    Ok(match cuda_request(device)? {
        None => "cpu".into(),
        Some(Some(n)) => format!("cuda:{n}"),
        Some(None) => format!("cuda:{}", local_rank.unwrap_or(0)),
    })
}

/// This process's place in the run, and the MPI runtime when there is one.
pub struct Launch {
    // Declared first so that it is dropped (NCCL communicator destroyed)
    // before the MPI runtime finalizes.
    collective: Arc<dyn Collective>,
    #[cfg(feature = "mpi")]
    mpi: Option<crate::collective::MpiRuntime>,
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

    /// MPI when started by an MPI launcher (see the module docs),
    /// with `timeout_s` seconds as the deadline of every collective, for a
    /// run on `device` (`cpu`, `cuda` or `cuda:N`), which is rewritten to
    /// this rank's device (`cuda` becomes `cuda:<node-local rank>` under a
    /// launcher, `cuda:0` alone). Built with `nccl`, a CUDA run under a
    /// launcher exchanges tensors with NCCL.
    pub fn from_env_with_device(timeout_s: f64, device: &mut String) -> Result<Self> {
        if !(timeout_s.is_finite() && timeout_s > 0.0) {
            return Err(Error::config(format!(
                "collective-timeout must be a positive number of seconds, got {timeout_s}"
            )));
        }
        let cuda = cuda_request(device)?;
        let Some(world) = launcher_world_size() else {
            *device = rank_device(device, None)?;
            return Ok(Self::single());
        };
        #[cfg(feature = "mpi")]
        {
            let _ = world;
            let rt = crate::collective::MpiRuntime::init(crate::collective::MpiOptions {
                timeout: std::time::Duration::from_secs_f64(timeout_s),
            })?;
            let mpi = rt.collective();
            let placed = match cuda {
                None => Ok(("cpu".to_string(), None)),
                Some(_) => local_rank(mpi.as_ref())
                    .and_then(|local| Ok((rank_device(device, Some(local))?, Some(local)))),
            };
            let (dev, local) = match placed {
                Ok(p) => p,
                Err(e) => rt.abort(1, &format!("error: {e:#}")),
            };
            *device = dev;
            #[cfg(feature = "nccl")]
            if cuda.is_some() {
                let nccl = match nccl_group(mpi.as_ref(), device, local, timeout_s) {
                    Ok(c) => c,
                    Err(e) => rt.abort(1, &format!("error: {e:#}")),
                };
                return Ok(Self {
                    collective: Arc::new(nccl),
                    mpi: Some(rt),
                });
            }
            let _ = local;
            Ok(Self {
                collective: mpi,
                mpi: Some(rt),
            })
        }
        #[cfg(not(feature = "mpi"))]
        {
            if world > 1 {
                return Err(Error::config(format!(
                    "started by an MPI launcher with {world} processes, but this binary was built \
                     without MPI support; rebuild it with the cargo feature `mpi`, e.g. \
                     `cargo build --release -p imagenet --features mpi` (needs Open MPI: libopenmpi-dev)"
                )));
            }
            let _ = cuda;
            *device = rank_device(device, None)?;
            Ok(Self::single())
        }
    }

    /// The launch of a training run: checks, before MPI starts, that the
    /// global `batch-size` of `run` splits over the launcher's processes times
    /// `accumulate` (so that every rank fails with the same message), starts
    /// the group ([`Launch::from_env_with_device`], which rewrites `run.device`
    /// to this rank's device) and resolves `run.sync_bn` for this world
    /// ([`sync_bn_enabled`]).
    pub fn for_run(run: &mut crate::recipe::TrainSettings, accumulate: usize) -> Result<Self> {
        micro_batch(
            run.batch_size,
            launcher_world_size().unwrap_or(1),
            accumulate,
        )?;
        let launch = Self::from_env_with_device(run.collective_timeout, &mut run.device)?;
        run.sync_bn = Some(sync_bn_enabled(run.sync_bn, launch.world()));
        Ok(launch)
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

    /// How a run's batches are shared, for its opening line: `batch 256
    /// over 2 process(es) with synchronized BatchNorm` (`train` as resolved
    /// by [`Launch::for_run`]).
    pub fn describe_batch(&self, train: &crate::recipe::TrainSettings) -> String {
        format!(
            "batch {} over {} process(es){}",
            train.batch_size,
            self.world(),
            if train.sync_bn == Some(true) {
                " with synchronized BatchNorm"
            } else {
                ""
            }
        )
    }

    /// Ends the run with `result`. Under MPI an error aborts every rank (the
    /// others may be waiting in a collective for this one), and success
    /// finalizes MPI.
    pub fn finish<T, E: std::fmt::Display>(
        self,
        result: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        #[cfg(feature = "mpi")]
        if let (Some(rt), Err(e)) = (&self.mpi, &result) {
            rt.abort(1, &format!("error: {e:#}"));
        }
        result
    }
}

/// This rank's node-local rank: from the launcher's environment, else from
/// every rank's host key gathered over `group`.
#[cfg(feature = "mpi")]
fn local_rank(group: &dyn Collective) -> Result<usize> {
    if let Some(l) = local_rank_from_env(|v| std::env::var(v).ok()) {
        return Ok(l);
    }
    let mine = candle_core::Tensor::new(&key_to_f32(host_key()), &candle_core::Device::Cpu)?;
    let all = group.all_gather(&mine)?.to_vec1::<f32>()?;
    Ok(local_rank_from_hosts(&keys_from_f32(&all), group.rank()))
}

/// The NCCL communicator of the MPI world `mpi`, on `device` (`cuda:N`):
/// rank 0's fresh id is broadcast over MPI, every rank joins with it.
#[cfg(feature = "nccl")]
fn nccl_group(
    mpi: &dyn Collective,
    device: &str,
    local: Option<usize>,
    timeout_s: f64,
) -> Result<crate::collective::NcclCollective> {
    use crate::collective::{NcclCollective, NcclIdBytes, NCCL_ID_BYTES};
    let (rank, world) = (mpi.rank(), mpi.world_size());
    let ordinal = cuda_request(device)?
        .flatten()
        .ok_or_else(|| Error::config("the NCCL backend needs a CUDA device"))?;
    let mine = if rank == 0 {
        NcclIdBytes::unique()?
    } else {
        NcclIdBytes([0; NCCL_ID_BYTES])
    };
    let id = mine.broadcast(mpi)?;
    let timeout = std::time::Duration::from_secs_f64(timeout_s);
    let nccl =
        NcclCollective::new_with_timeout(rank, world, ordinal, id, timeout).map_err(|e| {
            Error::Collective(format!(
                "rank {rank} of {world} (node-local rank {}) on cuda:{ordinal}: {e}; does this \
                 node have a GPU per process?",
                local.map_or("unknown".into(), |l| l.to_string())
            ))
        })?;
    Ok(nccl)
}

/// Pairs per rank and micro-batch: `batch / (world * accumulate)`, which must
/// be a whole number.
pub fn micro_batch(batch: usize, world: usize, accumulate: usize) -> Result<usize> {
    let parts = world * accumulate;
    if parts == 0 || batch == 0 || !batch.is_multiple_of(parts) {
        return Err(Error::config(format!(
            "batch-size {batch} (the global batch) must be a multiple of the number of processes \
             ({world}) times accumulate ({accumulate})"
        )));
    }
    Ok(batch / parts)
}

/// Whether BatchNorm statistics are synchronized: `sync_bn` if set, else
/// whenever there is more than one process.
pub fn sync_bn_enabled(sync_bn: Option<bool>, world: usize) -> bool {
    sync_bn.unwrap_or(world > 1)
}

/// While the returned guard lives, every BatchNorm of this thread normalises
/// with the statistics of `group`'s global batch, when `sync_bn` (resolved
/// by [`sync_bn_enabled`] for `group`'s world) says so; `None` otherwise.
pub fn sync_bn_scope(
    sync_bn: Option<bool>,
    group: &Arc<dyn Collective>,
) -> Option<SyncBatchNormScope> {
    sync_bn_enabled(sync_bn, group.world_size())
        .then(|| SyncBatchNormScope::new(Some(group.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_str;

    #[test]
    fn micro_batch_divides_the_global_batch() {
        assert_eq!(micro_batch(256, 4, 2).unwrap(), 32);
        assert_eq!(micro_batch(8, 1, 1).unwrap(), 8);
        let e = micro_batch(10, 4, 1).unwrap_err().to_string();
        assert!(e.contains("batch-size 10") && e.contains("(4)"), "{e}");
    }

    #[test]
    fn local_rank_comes_from_the_launchers_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(local_rank_from_env(env(&[])), None);
        assert_eq!(
            local_rank_from_env(env(&[("OMPI_COMM_WORLD_LOCAL_RANK", "3")])),
            Some(3)
        );
        assert_eq!(
            local_rank_from_env(env(&[("MPI_LOCALRANKID", " 1 ")])),
            Some(1)
        );
        // Open MPI's variable wins; an unreadable one is skipped.
        assert_eq!(
            local_rank_from_env(env(&[
                ("SLURM_LOCALID", "5"),
                ("OMPI_COMM_WORLD_LOCAL_RANK", "2")
            ])),
            Some(2)
        );
        assert_eq!(
            local_rank_from_env(env(&[
                ("OMPI_COMM_WORLD_LOCAL_RANK", "x"),
                ("LOCAL_RANK", "4")
            ])),
            Some(4)
        );
    }

    #[test]
    fn local_rank_counts_lower_ranks_on_the_same_host() {
        // Ranks 0, 2, 3 on host 7; ranks 1, 4 on host 9.
        let hosts = [7, 9, 7, 7, 9];
        let local: Vec<usize> = (0..5).map(|r| local_rank_from_hosts(&hosts, r)).collect();
        assert_eq!(local, [0, 0, 1, 2, 1]);
    }

    #[test]
    fn host_keys_survive_the_f32_trip() {
        let keys = [0u64, u64::MAX, hash_str("node-17"), 0x0001_0002_0003_0004];
        let flat: Vec<f32> = keys.iter().flat_map(|&k| key_to_f32(k)).collect();
        assert_eq!(keys_from_f32(&flat), keys);
    }

    #[test]
    fn cuda_without_ordinal_takes_the_local_rank() {
        assert_eq!(rank_device("cuda", Some(3)).unwrap(), "cuda:3");
        assert_eq!(rank_device("CUDA", None).unwrap(), "cuda:0");
        assert_eq!(rank_device("cuda:1", Some(3)).unwrap(), "cuda:1");
        assert_eq!(rank_device(" cpu", Some(2)).unwrap(), "cpu");
        for bad in ["gpu", "cuda:x", "cuda1"] {
            let e = rank_device(bad, None).unwrap_err().to_string();
            assert!(
                e.contains("expected cpu or cuda:N") && e.contains(bad),
                "{e}"
            );
        }
    }

    #[test]
    fn one_process_resolves_its_device_without_mpi() {
        if launcher_world_size().is_some() {
            return; // the test binary itself runs under a launcher
        }
        let mut d = String::from("cuda");
        let l = Launch::from_env_with_device(60.0, &mut d).unwrap();
        assert_eq!((l.rank(), l.world(), d.as_str()), (0, 1, "cuda:0"));
        let mut d = String::from("cpu");
        assert!(Launch::from_env_with_device(0.0, &mut d).is_err());
    }

    #[test]
    fn sync_bn_defaults_to_on_for_several_processes() {
        assert!(!sync_bn_enabled(None, 1));
        assert!(sync_bn_enabled(None, 2));
        assert!(!sync_bn_enabled(Some(false), 4));
        assert!(sync_bn_enabled(Some(true), 1));
    }
}

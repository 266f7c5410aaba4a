//! The MPI backend (cargo feature `mpi`): one rank per process of
//! `MPI_COMM_WORLD`, as launched by `mpirun -np N <program> ...`.
//!
//! Tensors are copied to host memory, exchanged with the MPI collective and
//! copied back to the tensor's device (f32 and f64 only).
//!
//! No rank may wait forever:
//! - **Watchdog.** Every collective has a deadline ([`MpiOptions::timeout`]).
//!   A watchdog thread that finds a collective still running past it prints
//!   `rank R of W: MPI <op> #<n> did not complete within <t> s ...` and calls
//!   `MPI_Abort`, which makes `mpirun` end every rank with a non-zero status.
//! - **Panics.** [`MpiRuntime::init`] installs a panic hook that, after the
//!   usual panic message, aborts the job (otherwise unwinding would run
//!   `MPI_Finalize`, which waits for the other ranks, who wait in a collective
//!   for the panicked rank: the job would hang).
//! - **Errors.** A rank that gives up with an error must call
//!   [`MpiRuntime::abort`] rather than drop the runtime (dropping it finalizes,
//!   which waits for every rank).
//!
//! A rank killed by a signal is noticed by `mpirun`, which ends the job.
//!
//! Fault injection for the tests: the environment variable
//! `VICREG_MPI_FAULT=RANK:CALL:KIND` makes rank `RANK`, at its `CALL`-th
//! collective (counted from 1), `exit` (status 3), `panic`, `hang` (sleep
//! forever) or `kill` (SIGKILL itself) instead of taking part.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::{DType, Shape, Tensor};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use super::Collective;
use crate::{Error, Result};

/// The MPI status a timed-out collective aborts the job with.
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// The MPI status a panic aborts the job with.
pub const PANIC_EXIT_CODE: i32 = 101;

/// Set while MPI is initialised and not finalized (the panic hook and the
/// watchdog only abort then).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Settings of the MPI backend.
#[derive(Clone, Debug)]
pub struct MpiOptions {
    /// Deadline of every collective; past it the job is aborted.
    pub timeout: Duration,
}

impl Default for MpiOptions {
    /// A 600 s deadline (a slow first step with a large model and data loading
    /// stays well inside it).
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
        }
    }
}

/// A test-only fault ([module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Exit,
    Panic,
    Hang,
    Kill,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    rank: usize,
    call: u64,
    kind: FaultKind,
}

fn parse_fault(s: &str) -> Result<Fault> {
    let bad = || {
        Error::config(format!(
            "VICREG_MPI_FAULT={s:?}: expected RANK:CALL:KIND with KIND exit, panic, hang or kill"
        ))
    };
    let parts: Vec<&str> = s.split(':').collect();
    let [rank, call, kind] = parts.as_slice() else {
        return Err(bad());
    };
    let kind = match *kind {
        "exit" => FaultKind::Exit,
        "panic" => FaultKind::Panic,
        "hang" => FaultKind::Hang,
        "kill" => FaultKind::Kill,
        _ => return Err(bad()),
    };
    Ok(Fault {
        rank: rank.parse().map_err(|_| bad())?,
        call: call.parse().ok().filter(|&c| c >= 1).ok_or_else(bad)?,
        kind,
    })
}

/// The collective in progress, as the watchdog sees it.
#[derive(Default)]
struct WatchState {
    current: Option<(u64, &'static str, Instant)>,
    stop: bool,
}

struct Watch {
    state: Mutex<WatchState>,
    wake: Condvar,
}

/// Clears the watched collective when dropped.
struct Watched<'a>(&'a Watch);

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.current = None;
        }
    }
}

fn watchdog(watch: Arc<Watch>, rank: usize, world: usize, timeout: Duration) {
    let Ok(mut s) = watch.state.lock() else {
        return;
    };
    loop {
        if s.stop {
            return;
        }
        s = match s.current {
            None => match watch.wake.wait(s) {
                Ok(s) => s,
                Err(_) => return,
            },
            Some((n, op, deadline)) => {
                let now = Instant::now();
                if now >= deadline {
                    if ACTIVE.load(Ordering::SeqCst) {
                        eprintln!(
                            "error: rank {rank} of {world}: MPI {op} #{n} did not complete within {:.0} s \
                             (collective timeout); another rank is probably dead or stuck. Aborting the MPI job.",
                            timeout.as_secs_f64()
                        );
                        SimpleCommunicator::world().abort(TIMEOUT_EXIT_CODE);
                    }
                    return;
                }
                match watch.wake.wait_timeout(s, deadline - now) {
                    Ok((s, _)) => s,
                    Err(_) => return,
                }
            }
        };
    }
}

/// One rank of `MPI_COMM_WORLD` (see the [module docs](self)). Obtained from
/// [`MpiRuntime::collective`]; valid until the runtime is dropped.
pub struct MpiCollective {
    rank: usize,
    world: usize,
    timeout: Duration,
    watch: Arc<Watch>,
    calls: AtomicU64,
    /// Serialises this process's collectives (MPI requires the same order on every rank).
    lock: Mutex<()>,
    fault: Option<Fault>,
}

/// A tensor's elements in host memory.
enum HostBuf {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostBuf {
    fn of(t: &Tensor, op: &str) -> Result<Self> {
        let flat = t.flatten_all()?;
        match t.dtype() {
            DType::F32 => Ok(HostBuf::F32(flat.to_vec1()?)),
            DType::F64 => Ok(HostBuf::F64(flat.to_vec1()?)),
            d => Err(Error::Collective(format!(
                "MPI {op}: tensors of dtype {d:?} are not supported (f32 and f64 are)"
            ))),
        }
    }

    fn into_tensor(self, shape: impl Into<Shape>, t: &Tensor) -> Result<Tensor> {
        let dev = t.device();
        Ok(match self {
            HostBuf::F32(v) => Tensor::from_vec(v, shape, dev)?,
            HostBuf::F64(v) => Tensor::from_vec(v, shape, dev)?,
        })
    }
}

impl MpiCollective {
    /// Runs `f` as collective `op` under the deadline (and the fault hook).
    fn guarded<T>(&self, op: &'static str, f: impl FnOnce(&SimpleCommunicator) -> T) -> Result<T> {
        if !ACTIVE.load(Ordering::SeqCst) {
            return Err(Error::Collective(format!(
                "MPI {op} called after MPI was finalized"
            )));
        }
        let _serial = self.lock.lock().map_err(|_| {
            Error::Collective(format!("MPI {op}: a thread panicked mid-collective"))
        })?;
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(fault) = self.fault.filter(|f| f.rank == self.rank && f.call == n) {
            self.inject(fault, op, n);
        }
        {
            let mut s = self
                .watch
                .state
                .lock()
                .map_err(|_| Error::Collective("MPI watchdog state poisoned".into()))?;
            s.current = Some((n, op, Instant::now() + self.timeout));
        }
        self.watch.wake.notify_all();
        let _watched = Watched(&self.watch);
        Ok(f(&SimpleCommunicator::world()))
    }

    fn inject(&self, fault: Fault, op: &str, n: u64) {
        eprintln!(
            "rank {}: VICREG_MPI_FAULT: {:?} at collective #{n} ({op})",
            self.rank, fault.kind
        );
        match fault.kind {
            FaultKind::Exit => std::process::exit(3),
            FaultKind::Panic => panic!("VICREG_MPI_FAULT: injected panic at collective #{n}"),
            FaultKind::Hang => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            FaultKind::Kill => {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &std::process::id().to_string()])
                    .status();
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
        }
    }

    /// The deadline of every collective.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let dims = t.dims();
        if dims.is_empty() {
            return Err(Error::Collective(
                "MPI all_gather: a scalar cannot be concatenated along dimension 0".into(),
            ));
        }
        let mut out_dims = dims.to_vec();
        out_dims[0] *= self.world;
        let n = t.elem_count() * self.world;
        let recv = match HostBuf::of(t, "all_gather")? {
            HostBuf::F32(send) => {
                let mut recv = vec![0f32; n];
                self.guarded("all_gather", |w| {
                    w.all_gather_into(&send[..], &mut recv[..])
                })?;
                HostBuf::F32(recv)
            }
            HostBuf::F64(send) => {
                let mut recv = vec![0f64; n];
                self.guarded("all_gather", |w| {
                    w.all_gather_into(&send[..], &mut recv[..])
                })?;
                HostBuf::F64(recv)
            }
        };
        recv.into_tensor(out_dims, t)
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let n = t.elem_count();
        let recv = match HostBuf::of(t, "all_reduce_sum")? {
            HostBuf::F32(send) => {
                let mut recv = vec![0f32; n];
                self.guarded("all_reduce_sum", |w| {
                    w.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum())
                })?;
                HostBuf::F32(recv)
            }
            HostBuf::F64(send) => {
                let mut recv = vec![0f64; n];
                self.guarded("all_reduce_sum", |w| {
                    w.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum())
                })?;
                HostBuf::F64(recv)
            }
        };
        recv.into_tensor(t.shape().clone(), t)
    }

    fn broadcast(&self, t: &Tensor) -> Result<Tensor> {
        let buf = match HostBuf::of(t, "broadcast")? {
            HostBuf::F32(mut v) => {
                self.guarded("broadcast", |w| {
                    w.process_at_rank(0).broadcast_into(&mut v[..])
                })?;
                HostBuf::F32(v)
            }
            HostBuf::F64(mut v) => {
                self.guarded("broadcast", |w| {
                    w.process_at_rank(0).broadcast_into(&mut v[..])
                })?;
                HostBuf::F64(v)
            }
        };
        buf.into_tensor(t.shape().clone(), t)
    }

    fn barrier(&self) -> Result<()> {
        self.guarded("barrier", |w| w.barrier())
    }
}

/// MPI for this process: initialises MPI (thread level `MPI_THREAD_MULTIPLE`
/// when the library offers it), starts the watchdog, installs the aborting
/// panic hook. Dropping it finalizes MPI (every rank must get there);
/// a rank that fails must call [`MpiRuntime::abort`] instead.
pub struct MpiRuntime {
    universe: Option<Universe>,
    collective: Arc<MpiCollective>,
    watchdog: Option<JoinHandle<()>>,
}

impl MpiRuntime {
    /// Initialises MPI; fails if it already was in this process, or if
    /// `VICREG_MPI_FAULT` is set to something unreadable.
    pub fn init(opts: MpiOptions) -> Result<Self> {
        if opts.timeout.is_zero() {
            return Err(Error::config("the collective timeout must be positive"));
        }
        let fault = match std::env::var("VICREG_MPI_FAULT") {
            Ok(s) if !s.is_empty() => Some(parse_fault(&s)?),
            _ => None,
        };
        let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
            .ok_or_else(|| {
                Error::Collective("MPI is already initialised in this process".into())
            })?;
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        if threading != Threading::Multiple {
            tracing::warn!(
                "MPI offers thread level {threading:?}, not Multiple: the watchdog aborts from its own thread anyway"
            );
        }
        ACTIVE.store(true, Ordering::SeqCst);
        install_panic_hook(rank, size);
        let watch = Arc::new(Watch {
            state: Mutex::new(WatchState::default()),
            wake: Condvar::new(),
        });
        let w = watch.clone();
        let timeout = opts.timeout;
        let watchdog = std::thread::Builder::new()
            .name("mpi-watchdog".into())
            .spawn(move || watchdog(w, rank, size, timeout))
            .map_err(|e| Error::Collective(format!("cannot start the MPI watchdog: {e}")))?;
        Ok(Self {
            universe: Some(universe),
            collective: Arc::new(MpiCollective {
                rank,
                world: size,
                timeout,
                watch,
                calls: AtomicU64::new(0),
                lock: Mutex::new(()),
                fault,
            }),
            watchdog: Some(watchdog),
        })
    }

    /// Whether this process was started by an MPI launcher (Open MPI's
    /// `mpirun`/`mpiexec` set `OMPI_COMM_WORLD_SIZE`; MPICH and Intel MPI set
    /// `PMI_SIZE`).
    pub fn launched_by_mpirun() -> bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    }

    /// This process's rank of `MPI_COMM_WORLD`.
    pub fn collective(&self) -> Arc<MpiCollective> {
        self.collective.clone()
    }

    /// Prints `rank R: <message>` and aborts every rank of the job with `code`.
    pub fn abort(&self, code: i32, message: &str) -> ! {
        eprintln!(
            "rank {} of {}: {message}; aborting the MPI job",
            self.collective.rank, self.collective.world
        );
        SimpleCommunicator::world().abort(code)
    }
}

impl Drop for MpiRuntime {
    fn drop(&mut self) {
        if let Ok(mut s) = self.collective.watch.state.lock() {
            s.stop = true;
        }
        self.collective.watch.wake.notify_all();
        if let Some(h) = self.watchdog.take() {
            let _ = h.join();
        }
        if std::thread::panicking() {
            // Finalizing would wait for the other ranks forever.
            SimpleCommunicator::world().abort(PANIC_EXIT_CODE);
        }
        ACTIVE.store(false, Ordering::SeqCst);
        drop(self.universe.take());
    }
}

fn install_panic_hook(rank: usize, world: usize) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if ACTIVE.load(Ordering::SeqCst) {
            eprintln!("rank {rank} of {world} panicked; aborting the MPI job");
            SimpleCommunicator::world().abort(PANIC_EXIT_CODE);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_spec_parses_and_rejects() {
        let f = parse_fault("1:40:panic").unwrap();
        assert_eq!((f.rank, f.call, f.kind), (1, 40, FaultKind::Panic));
        assert_eq!(parse_fault("0:1:kill").unwrap().kind, FaultKind::Kill);
        for bad in ["1:0:exit", "1:2", "x:1:exit", "1:2:explode", "1:2:exit:3"] {
            let e = parse_fault(bad).unwrap_err().to_string();
            assert!(e.contains("VICREG_MPI_FAULT"), "{bad}: {e}");
        }
    }
}

//! The NCCL backend (cargo feature `nccl`): one rank per process and GPU, the
//! tensors exchanged device to device by NCCL without a trip through the host.
//!
//! Conventions shared by every operation of [`NcclCollective`]:
//! - **Tensors**: `f32`, any shape and layout (a non-contiguous or offset view
//!   is made contiguous first), on the GPU whose ordinal the collective was
//!   built for. A host (CPU) tensor is copied to that GPU, exchanged, and the
//!   result copied back (for the few small host tensors of a run, such as the
//!   online probe's counters). Other dtypes and other devices are refused with
//!   an [`Error::Collective`] naming the operation ([`nccl_placement`]).
//! - **Results** are new tensors on the input tensor's [`candle_core::Device`]
//!   (same `DeviceId`, so they mix with the caller's tensors); no gradient
//!   flows through them (see [`super::gather_with_grad`] and
//!   [`super::all_reduce_with_grad`] for the differentiable wrappers).
//! - **Streams**: NCCL runs on the stream of the collective's own candle
//!   device; cudarc's event tracking orders it after the kernels that wrote
//!   the input and before the kernels that read the output, whichever stream
//!   those run on.
//! - **No rank waits forever**: every operation waits for its own completion
//!   (polling a CUDA event) under a deadline (600 s unless set with
//!   `NcclCollective::new_with_timeout`) and returns an error past it, which
//!   the application turns into an abort of the whole job (`imagenet` calls
//!   `MPI_Abort`). The communicator's creation, which blocks until every rank
//!   has joined, is watched by a thread that ends the process (status 124)
//!   past the same deadline.
//!
//! Bootstrap: rank 0 creates the unique id (`NcclIdBytes::unique`), every
//! rank receives it over another group ([`NcclIdBytes::broadcast`], e.g. the
//! MPI backend) and builds its `NcclCollective::new` with it.
//!
//! The id helpers and [`nccl_placement`] compile in every build (they are
//! tested on the CPU); the collective itself needs the `nccl` feature.

use candle_core::{DType, DeviceLocation, Tensor};

use super::Collective;
use crate::{Error, Result};

/// Bytes in an NCCL unique id (`ncclUniqueId`, `NCCL_UNIQUE_ID_BYTES`).
pub const NCCL_ID_BYTES: usize = 128;

/// An NCCL unique id as plain bytes: made by rank 0, sent to every rank, used
/// once by each to join the communicator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NcclIdBytes(pub [u8; NCCL_ID_BYTES]);

impl std::fmt::Debug for NcclIdBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: String = self.0[..8].iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "NcclIdBytes({head}..)")
    }
}

impl NcclIdBytes {
    /// The id as `NCCL_ID_BYTES` values `0.0..=255.0` (exact in f32), the form in
    /// which it travels through [`Collective::broadcast`].
    pub fn to_f32(&self) -> Vec<f32> {
        self.0.iter().map(|&b| f32::from(b)).collect()
    }

    /// The inverse of [`to_f32`](Self::to_f32); fails unless `v` holds exactly
    /// `NCCL_ID_BYTES` whole numbers in `0..=255`.
    pub fn from_f32(v: &[f32]) -> Result<Self> {
        if v.len() != NCCL_ID_BYTES {
            return Err(Error::Collective(format!(
                "NCCL id: expected {NCCL_ID_BYTES} bytes, got {}",
                v.len()
            )));
        }
        let mut bytes = [0u8; NCCL_ID_BYTES];
        for (i, (dst, &x)) in bytes.iter_mut().zip(v).enumerate() {
            if !(0.0..=255.0).contains(&x) || x.fract() != 0.0 {
                return Err(Error::Collective(format!(
                    "NCCL id: byte {i} arrived as {x}, not a whole number in 0..=255"
                )));
            }
            *dst = x as u8;
        }
        Ok(Self(bytes))
    }

    /// Rank 0's id on every rank of `group`, sent as a CPU tensor of shape
    /// `(NCCL_ID_BYTES,)` through `group.broadcast` (every rank must call it;
    /// the other ranks' own `self` is ignored).
    pub fn broadcast(&self, group: &dyn Collective) -> Result<Self> {
        let t = Tensor::from_vec(self.to_f32(), NCCL_ID_BYTES, &candle_core::Device::Cpu)?;
        let got = group.broadcast(&t)?;
        Self::from_f32(&got.flatten_all()?.to_vec1::<f32>()?)
    }

    /// A fresh id from `ncclGetUniqueId` (rank 0 calls this; the id also
    /// names the network address rank 0 listens on for the bootstrap).
    #[cfg(feature = "nccl")]
    pub fn unique() -> Result<Self> {
        let id = candle_core::cuda_backend::cudarc::nccl::Id::new()
            .map_err(|e| Error::Collective(format!("ncclGetUniqueId failed: {:?}", e.0)))?;
        let mut bytes = [0u8; NCCL_ID_BYTES];
        for (dst, &c) in bytes.iter_mut().zip(id.internal().iter()) {
            *dst = c as u8;
        }
        Ok(Self(bytes))
    }

    #[cfg(feature = "nccl")]
    fn to_nccl(self) -> candle_core::cuda_backend::cudarc::nccl::Id {
        let mut internal = [0 as std::ffi::c_char; NCCL_ID_BYTES];
        for (dst, &b) in internal.iter_mut().zip(self.0.iter()) {
            *dst = b as std::ffi::c_char;
        }
        candle_core::cuda_backend::cudarc::nccl::Id::uninit(internal)
    }
}

/// Where an NCCL operation finds a tensor's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NcclPlacement {
    /// On the communicator's GPU: exchanged where it is.
    Device,
    /// In host memory: copied to the communicator's GPU and back.
    Host,
}

/// Checks that a tensor of `dtype` at `location` can go through NCCL
/// operation `op` of a communicator on GPU `ordinal`: `f32` (checked first),
/// on that GPU or on the CPU. The error names `op`, what is wrong, and what
/// to do.
pub fn nccl_placement(
    op: &str,
    dtype: DType,
    location: DeviceLocation,
    ordinal: usize,
) -> Result<NcclPlacement> {
    if dtype != DType::F32 {
        return Err(Error::Collective(format!(
            "NCCL {op}: tensors of dtype {dtype:?} are not supported (f32 is)"
        )));
    }
    match location {
        DeviceLocation::Cpu => Ok(NcclPlacement::Host),
        DeviceLocation::Cuda { gpu_id } if gpu_id == ordinal => Ok(NcclPlacement::Device),
        DeviceLocation::Cuda { gpu_id } => Err(Error::Collective(format!(
            "NCCL {op}: the tensor is on cuda:{gpu_id} but this rank's communicator is on \
             cuda:{ordinal}; every tensor of a rank must live on its GPU (or on the CPU)"
        ))),
        other => Err(Error::Collective(format!(
            "NCCL {op}: the tensor is on {other:?}; NCCL exchanges CUDA (and host) tensors only"
        ))),
    }
}

#[cfg(feature = "nccl")]
pub use imp::NcclCollective;

#[cfg(feature = "nccl")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{mpsc, Mutex};
    use std::time::{Duration, Instant};

    use candle_core::cuda_backend::cudarc;
    use candle_core::op::BackpropOp;
    use candle_core::{CudaStorage, Device, Shape, Storage, Tensor};
    use cudarc::driver::{CudaSlice, CudaView};
    use cudarc::nccl::{Comm, ReduceOp};

    use super::{nccl_placement, NcclIdBytes, NcclPlacement};
    use crate::collective::Collective;
    use crate::{Error, Result};

    /// Exit status of a process whose communicator creation timed out.
    const INIT_TIMEOUT_EXIT_CODE: i32 = 124;

    /// The communicator. `ncclComm_t` is a raw pointer, so [`Comm`] is neither
    /// `Send` nor `Sync`; NCCL allows a communicator to be used from any thread
    /// as long as its calls do not overlap, which the `Mutex` around this
    /// guarantees.
    struct CommCell(Comm);

    // SAFETY: see the type's docs: every use goes through `NcclCollective::comm`,
    // a `Mutex`, so no two threads call NCCL on this communicator at once.
    unsafe impl Send for CommCell {}

    /// One rank of an NCCL communicator (see the [module docs](super)).
    pub struct NcclCollective {
        rank: usize,
        world: usize,
        ordinal: usize,
        timeout: Duration,
        /// The collective's own candle device on GPU `ordinal`: its stream
        /// carries the NCCL work, and host tensors are staged on it.
        device: Device,
        comm: Mutex<CommCell>,
        calls: AtomicU64,
    }

    impl std::fmt::Debug for NcclCollective {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "NcclCollective(rank {} of {}, cuda:{})",
                self.rank, self.world, self.ordinal
            )
        }
    }

    fn nccl_err(what: &str, e: cudarc::nccl::result::NcclError) -> Error {
        Error::Collective(format!("NCCL {what} failed: {:?}", e.0))
    }

    fn cuda_err(what: &str, e: cudarc::driver::DriverError) -> Error {
        Error::Collective(format!("NCCL {what}: CUDA error {e}"))
    }

    impl NcclCollective {
        /// Joins the communicator of `world` ranks named by `id` as `rank`, on
        /// GPU `ordinal`, with a 600 s deadline (see [`new_with_timeout`](Self::new_with_timeout)).
        pub fn new(rank: usize, world: usize, ordinal: usize, id: NcclIdBytes) -> Result<Self> {
            Self::new_with_timeout(rank, world, ordinal, id, Duration::from_secs(600))
        }

        /// Joins the communicator of `world` ranks named by `id` as `rank`, on
        /// GPU `ordinal`. Blocks until every rank has joined; past `timeout`
        /// the process ends with status 124 and a message (so that the
        /// launcher ends the job). Every later operation gets the same deadline.
        pub fn new_with_timeout(
            rank: usize,
            world: usize,
            ordinal: usize,
            id: NcclIdBytes,
            timeout: Duration,
        ) -> Result<Self> {
            if world == 0 || rank >= world {
                return Err(Error::config(format!(
                    "NCCL: rank {rank} is not in a world of {world}"
                )));
            }
            if timeout.is_zero() {
                return Err(Error::config("the NCCL timeout must be positive"));
            }
            let device = Device::new_cuda(ordinal)
                .map_err(|e| Error::Collective(format!("NCCL: cannot open cuda:{ordinal}: {e}")))?;
            let Device::Cuda(cuda) = &device else {
                return Err(Error::Collective(format!(
                    "NCCL: cuda:{ordinal} did not open as a CUDA device"
                )));
            };
            let stream = cuda.cuda_stream();
            stream
                .context()
                .bind_to_thread()
                .map_err(|e| cuda_err(&format!("cannot make cuda:{ordinal} current"), e))?;
            let (done, wait) = mpsc::channel::<()>();
            let watchdog = std::thread::Builder::new()
                .name("nccl-init-watchdog".into())
                .spawn(move || {
                    if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                        eprintln!(
                            "error: rank {rank} of {world}: the NCCL communicator was not created \
                             within {:.0} s (another rank is probably dead or stuck); exiting",
                            timeout.as_secs_f64()
                        );
                        std::process::exit(INIT_TIMEOUT_EXIT_CODE);
                    }
                })
                .map_err(|e| {
                    Error::Collective(format!("cannot start the NCCL init watchdog: {e}"))
                })?;
            let comm = Comm::from_rank(stream, rank, world, id.to_nccl());
            let _ = done.send(());
            let _ = watchdog.join();
            let comm = comm.map_err(|e| {
                nccl_err(
                    &format!("ncclCommInitRank (rank {rank} of {world}, cuda:{ordinal})"),
                    e,
                )
            })?;
            Ok(Self {
                rank,
                world,
                ordinal,
                timeout,
                device,
                comm: Mutex::new(CommCell(comm)),
                calls: AtomicU64::new(0),
            })
        }

        /// The deadline of every operation.
        pub fn timeout(&self) -> Duration {
            self.timeout
        }

        /// The GPU this rank's communicator lives on.
        pub fn ordinal(&self) -> usize {
            self.ordinal
        }

        /// Runs `f` (which enqueues NCCL work on the collective's stream) as
        /// operation `op`, then waits for that work under the deadline.
        fn run<T>(&self, op: &str, f: impl FnOnce(&Comm) -> Result<T>) -> Result<T> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let cell = self.comm.lock().map_err(|_| {
                Error::Collective(format!("NCCL {op}: a thread panicked mid-collective"))
            })?;
            let stream = cell.0.stream();
            stream
                .context()
                .bind_to_thread()
                .map_err(|e| cuda_err(op, e))?;
            let out = f(&cell.0)?;
            let event = stream.record_event(None).map_err(|e| cuda_err(op, e))?;
            let deadline = Instant::now() + self.timeout;
            let mut pause = Duration::from_micros(10);
            loop {
                if event.try_is_complete().map_err(|e| cuda_err(op, e))? {
                    return Ok(out);
                }
                if Instant::now() >= deadline {
                    return Err(Error::Collective(format!(
                        "rank {} of {}: NCCL {op} #{n} did not complete within {:.0} s \
                         (collective timeout); another rank is probably dead or stuck",
                        self.rank,
                        self.world,
                        self.timeout.as_secs_f64()
                    )));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(1));
            }
        }

        /// Applies `f` to the f32 elements of `t` (checked; staged through the
        /// GPU when `t` is on the CPU) and returns the slice `f` makes as a
        /// tensor of shape `out_shape` on `t`'s device.
        fn with_input(
            &self,
            op: &str,
            t: &Tensor,
            out_shape: Shape,
            f: impl FnOnce(&Comm, &CudaView<'_, f32>) -> Result<CudaSlice<f32>>,
        ) -> Result<Tensor> {
            match nccl_placement(op, t.dtype(), t.device().location(), self.ordinal)? {
                NcclPlacement::Device => self.exchange(op, t, out_shape, f),
                NcclPlacement::Host => {
                    let staged = t.to_device(&self.device)?;
                    Ok(self
                        .exchange(op, &staged, out_shape, f)?
                        .to_device(t.device())?)
                }
            }
        }

        /// [`with_input`](Self::with_input) for a tensor on the GPU.
        fn exchange(
            &self,
            op: &str,
            t: &Tensor,
            out_shape: Shape,
            f: impl FnOnce(&Comm, &CudaView<'_, f32>) -> Result<CudaSlice<f32>>,
        ) -> Result<Tensor> {
            let t = t.contiguous()?;
            let (storage, layout) = t.storage_and_layout();
            let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
                Error::Collective(format!("NCCL {op}: the tensor is not contiguous"))
            })?;
            let Storage::Cuda(cuda) = &*storage else {
                return Err(Error::Collective(format!(
                    "NCCL {op}: the tensor's storage is not on a CUDA device"
                )));
            };
            let device = cuda.device.clone();
            let slice = cuda.as_cuda_slice::<f32>()?;
            let view = slice.slice(start..end);
            let out = self.run(op, |comm| f(comm, &view))?;
            Ok(Tensor::from_storage(
                Storage::Cuda(CudaStorage::wrap_cuda_slice(out, device)),
                out_shape,
                BackpropOp::none(),
                false,
            ))
        }

        fn alloc(&self, comm: &Comm, op: &str, n: usize) -> Result<CudaSlice<f32>> {
            comm.stream()
                .alloc_zeros::<f32>(n.max(1))
                .map_err(|e| cuda_err(&format!("{op}: cannot allocate {n} floats"), e))
        }
    }

    impl Collective for NcclCollective {
        fn rank(&self) -> usize {
            self.rank
        }

        fn world_size(&self) -> usize {
            self.world
        }

        /// `(n, ..)` on every rank -> `(world * n, ..)`, rank `r`'s rows at
        /// `r * n .. (r + 1) * n`.
        fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
            let dims = t.dims();
            if dims.is_empty() {
                return Err(Error::Collective(
                    "NCCL all_gather: a scalar cannot be concatenated along dimension 0".into(),
                ));
            }
            let mut out_dims = dims.to_vec();
            out_dims[0] *= self.world;
            let n = t.elem_count();
            self.with_input("all_gather", t, out_dims.into(), |comm, view| {
                let mut out = self.alloc(comm, "all_gather", n * self.world)?;
                if n > 0 {
                    comm.all_gather(view, &mut out)
                        .map_err(|e| nccl_err("ncclAllGather", e))?;
                }
                Ok(out)
            })
        }

        /// Same shape in, same shape out: the element-wise sum over the ranks.
        fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
            let n = t.elem_count();
            self.with_input("all_reduce_sum", t, t.shape().clone(), |comm, view| {
                let mut out = self.alloc(comm, "all_reduce_sum", n)?;
                if n > 0 {
                    comm.all_reduce(view, &mut out, &ReduceOp::Sum)
                        .map_err(|e| nccl_err("ncclAllReduce", e))?;
                }
                Ok(out)
            })
        }

        /// Rank 0's tensor on every rank (same shape on every rank).
        fn broadcast(&self, t: &Tensor) -> Result<Tensor> {
            let n = t.elem_count();
            self.with_input("broadcast", t, t.shape().clone(), |comm, view| {
                let mut out = self.alloc(comm, "broadcast", n)?;
                if n > 0 {
                    comm.broadcast(Some(view), &mut out, 0)
                        .map_err(|e| nccl_err("ncclBroadcast", e))?;
                }
                Ok(out)
            })
        }

        /// A one-element all-reduce, waited for: returns once every rank has
        /// reached its barrier.
        fn barrier(&self) -> Result<()> {
            self.run("barrier", |comm| {
                let mut one = self.alloc(comm, "barrier", 1)?;
                comm.all_reduce_in_place(&mut one, &ReduceOp::Sum)
                    .map_err(|e| nccl_err("ncclAllReduce (barrier)", e))?;
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::{SingleProcess, ThreadGroup};

    fn sample_id(seed: u8) -> NcclIdBytes {
        let mut b = [0u8; NCCL_ID_BYTES];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37).wrapping_add(seed);
        }
        NcclIdBytes(b)
    }

    #[test]
    fn id_bytes_round_trip_through_f32() {
        let id = sample_id(3);
        let v = id.to_f32();
        assert_eq!(v.len(), NCCL_ID_BYTES);
        assert!(v.iter().zip(id.0.iter()).all(|(&f, &b)| f == f32::from(b)));
        assert_eq!(NcclIdBytes::from_f32(&v).unwrap(), id);
        let all = NcclIdBytes([255u8; NCCL_ID_BYTES]);
        assert_eq!(NcclIdBytes::from_f32(&all.to_f32()).unwrap(), all);
    }

    #[test]
    fn id_bytes_reject_bad_values() {
        let e = NcclIdBytes::from_f32(&[1.0; 12]).unwrap_err().to_string();
        assert!(e.contains("expected 128 bytes, got 12"), "{e}");
        for bad in [256.0, -1.0, 2.5, f32::NAN] {
            let mut v = sample_id(0).to_f32();
            v[7] = bad;
            let e = NcclIdBytes::from_f32(&v).unwrap_err().to_string();
            assert!(e.contains("byte 7"), "{bad}: {e}");
        }
    }

    #[test]
    fn id_broadcast_gives_every_rank_rank0s_id() {
        assert_eq!(
            sample_id(9).broadcast(&SingleProcess).unwrap(),
            sample_id(9)
        );
        let handles: Vec<_> = ThreadGroup::new(3)
            .into_iter()
            .map(|g| std::thread::spawn(move || sample_id(g.rank() as u8 + 1).broadcast(&g)))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), sample_id(1));
        }
    }

    #[test]
    fn placement_accepts_f32_on_its_gpu_or_the_host_and_refuses_the_rest() {
        let cuda = |gpu_id| DeviceLocation::Cuda { gpu_id };
        assert_eq!(
            nccl_placement("all_gather", DType::F32, cuda(1), 1).unwrap(),
            NcclPlacement::Device
        );
        assert_eq!(
            nccl_placement("all_gather", DType::F32, DeviceLocation::Cpu, 1).unwrap(),
            NcclPlacement::Host
        );
        let e = nccl_placement("all_gather", DType::F32, cuda(0), 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("NCCL all_gather") && e.contains("cuda:0") && e.contains("on cuda:1"),
            "{e}"
        );
        let metal = DeviceLocation::Metal { gpu_id: 0 };
        let e = nccl_placement("barrier", DType::F32, metal, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CUDA (and host) tensors only"), "{e}");
        for dtype in [DType::F64, DType::F16, DType::BF16, DType::U32] {
            let e = nccl_placement("broadcast", dtype, cuda(0), 0)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("NCCL broadcast")
                    && e.contains(&format!("{dtype:?}"))
                    && e.contains("f32 is"),
                "{e}"
            );
        }
    }
}

/// World-of-one NCCL on a real GPU against [`SingleProcess`] on the CPU. They
/// run only when `VICREG_TEST_DEVICE` names a CUDA device (scripts/gpu-check.sh
/// does; elsewhere they return at once, saying so).
#[cfg(all(test, feature = "nccl"))]
mod gpu_tests {
    use std::sync::Arc;

    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::collective::{all_reduce_with_grad, SingleProcess};

    fn gpu() -> Option<(Device, usize)> {
        let name = std::env::var("VICREG_TEST_DEVICE").unwrap_or_default();
        let dev = crate::parse_device(&name).ok().filter(|d| d.is_cuda());
        let Some(dev) = dev else {
            eprintln!("VICREG_TEST_DEVICE={name:?} is not a CUDA device: NCCL GPU test skipped");
            return None;
        };
        let DeviceLocation::Cuda { gpu_id } = dev.location() else {
            unreachable!("a CUDA device has a CUDA location")
        };
        Some((dev, gpu_id))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let a = a.to_device(&Device::Cpu).unwrap();
        let b = b.to_device(&Device::Cpu).unwrap();
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn world_of_one_matches_the_cpu() {
        let Some((dev, ordinal)) = gpu() else {
            return;
        };
        let id = NcclIdBytes::unique().unwrap();
        let nccl = NcclCollective::new(0, 1, ordinal, id).unwrap();
        assert_eq!((nccl.rank(), nccl.world_size()), (0, 1));
        let cpu = SingleProcess;
        let base = Tensor::arange(0f32, 4096.0, &Device::Cpu)
            .unwrap()
            .reshape((64, 64))
            .unwrap()
            .affine(0.01, -3.0)
            .unwrap();
        let on_gpu = base.to_device(&dev).unwrap();
        let cases: [(&str, Tensor, Tensor); 3] = [
            ("contiguous", base.clone(), on_gpu.clone()),
            ("transposed", base.t().unwrap(), on_gpu.t().unwrap()),
            (
                "offset view",
                base.narrow(0, 5, 7).unwrap(),
                on_gpu.narrow(0, 5, 7).unwrap(),
            ),
        ];
        for (what, c, g) in cases {
            let checks = [
                (
                    "all_reduce_sum",
                    cpu.all_reduce_sum(&c),
                    nccl.all_reduce_sum(&g),
                ),
                ("all_gather", cpu.all_gather(&c), nccl.all_gather(&g)),
                ("broadcast", cpu.broadcast(&c), nccl.broadcast(&g)),
            ];
            for (op, want, got) in checks {
                let (want, got) = (want.unwrap(), got.unwrap());
                assert!(
                    got.device().same_device(&dev),
                    "{op} {what}: result left the device"
                );
                let d = max_diff(&want, &got);
                eprintln!(
                    "NCCL {op} on a {what} {:?} tensor: max |gpu - cpu| = {d:e}",
                    g.dims()
                );
                assert_eq!(d, 0.0, "{op} {what}");
                // The result mixes with the caller's tensors (same device).
                let _ = (&got + &g.contiguous().unwrap()).unwrap();
            }
        }
        nccl.barrier().unwrap();

        // A large tensor, and the differentiable wrapper over NCCL.
        let group: Arc<dyn Collective> = Arc::new(nccl);
        let big = Tensor::randn(0f32, 1.0, (1 << 20,), &dev).unwrap();
        let summed = all_reduce_with_grad(&group, &big).unwrap();
        assert_eq!(max_diff(&summed, &big), 0.0);

        // A host tensor goes through the GPU and comes back to the host.
        let host = group.all_reduce_sum(&base).unwrap();
        assert!(host.device().is_cpu());
        assert_eq!(max_diff(&host, &base), 0.0);
        // Other dtypes are refused.
        let f64s = on_gpu.to_dtype(DType::F64).unwrap();
        let e = group.all_gather(&f64s).unwrap_err().to_string();
        assert!(e.contains("F64"), "{e}");
    }
}

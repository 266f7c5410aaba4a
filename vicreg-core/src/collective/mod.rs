//! Collective communication between data-parallel ranks.
//!
//! The loss and the engine only talk to the [`Collective`] trait. This crate
//! ships [`SingleProcess`] (world size 1) and [`ThreadGroup`] (several ranks as
//! threads of one process, used to test distributed semantics exactly);
//! MPI (cargo feature `mpi`: `MpiCollective`) plugs in behind the same trait,
//! and so does NCCL for CUDA tensors (cargo feature `nccl`: `NcclCollective`,
//! bootstrapped with an [`NcclIdBytes`] sent over another group).
//! Synchronized BatchNorm ([`set_sync_batchnorm`], [`sync_batch_norm_train`])
//! reduces BatchNorm statistics over a group with [`all_reduce_with_grad`].

mod gather;
mod launch;
#[cfg(feature = "mpi")]
mod mpi;
mod nccl;
mod reduce;
mod sync_bn;
mod sync_bn_cpu;
mod threads;

pub use gather::gather_with_grad;
pub use launch::{
    cuda_request, launcher_world_size, micro_batch, rank_device, sync_bn_enabled, sync_bn_scope,
    Launch,
};
#[cfg(feature = "mpi")]
pub use mpi::{MpiCollective, MpiOptions, MpiRuntime};
#[cfg(feature = "nccl")]
pub use nccl::NcclCollective;
pub use nccl::{nccl_placement, NcclIdBytes, NcclPlacement, NCCL_ID_BYTES};
pub use reduce::all_reduce_with_grad;
pub use sync_bn::{
    set_sync_batchnorm, sync_batch_norm_composed, sync_batch_norm_train, sync_batchnorm,
    SyncBatchNorm, SyncBatchNormScope,
};
pub use threads::ThreadGroup;

use candle_core::Tensor;

use crate::Result;

/// Collective operations over a fixed group of ranks. Every rank must call the
/// same operations in the same order with tensors of the same shape.
pub trait Collective: Send + Sync {
    /// This process's rank, in `0..world_size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// Concatenation along dimension 0 of every rank's tensor, in rank order.
    /// No gradient flows through this (see [`gather_with_grad`]).
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;
    /// Element-wise sum of every rank's tensor, identical on every rank.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor>;
    /// Rank 0's tensor on every rank.
    fn broadcast(&self, t: &Tensor) -> Result<Tensor>;
    /// Waits until every rank has arrived.
    fn barrier(&self) -> Result<()>;
}

/// The trivial group of one rank.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl SingleProcess {
    /// This process alone, as the shared handle the trainer and the apps take.
    pub fn group() -> std::sync::Arc<dyn Collective> {
        std::sync::Arc::new(SingleProcess)
    }
}

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn broadcast(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

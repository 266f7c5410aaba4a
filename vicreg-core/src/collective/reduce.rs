//! All-reduce with gradient: the building block of synchronized BatchNorm.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Shape, Storage, Tensor};

use super::Collective;
use crate::Result;

/// Forward: the already reduced tensor. Backward: the incoming gradient
/// summed over ranks (torch's `SyncBatchNorm` reduces its statistics' gradients
/// the same way).
struct AllReduceSum {
    collective: Arc<dyn Collective>,
    /// Contiguous reduced tensor, computed before the op is applied.
    reduced: Tensor,
}

impl CustomOp1 for AllReduceSum {
    fn name(&self) -> &'static str {
        "all-reduce-sum"
    }

    fn cpu_fwd(&self, _s: &CpuStorage, _l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (storage, layout) = self.reduced.storage_and_layout();
        match &*storage {
            Storage::Cpu(c) => Ok((c.try_clone(layout)?, self.reduced.shape().clone())),
            _ => candle_core::bail!("all-reduce-sum: reduced tensor is not on the CPU"),
        }
    }

    fn cuda_fwd(&self, _s: &CudaStorage, _l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (storage, layout) = self.reduced.storage_and_layout();
        match &*storage {
            Storage::Cuda(c) => Ok((c.try_clone(layout)?, self.reduced.shape().clone())),
            _ => candle_core::bail!("all-reduce-sum: reduced tensor is not on the GPU"),
        }
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = self
            .collective
            .all_reduce_sum(grad_res)
            .map_err(candle_core::Error::wrap)?;
        Ok(Some(g))
    }
}

/// Element-wise sum of `t` over every rank (any shape, same on all ranks),
/// differentiably: the gradient reaching this rank's `t` is the sum over ranks
/// of the gradients of the reduced tensor, i.e. the gradient of the sum of all
/// ranks' losses. Every rank must call this (and run its backward pass) in the
/// same order. With one rank this is the identity in value and gradient.
pub fn all_reduce_with_grad(collective: &Arc<dyn Collective>, t: &Tensor) -> Result<Tensor> {
    let reduced = collective.all_reduce_sum(&t.detach())?.contiguous()?;
    if !t.track_op() {
        return Ok(reduced);
    }
    let op = AllReduceSum {
        collective: collective.clone(),
        reduced,
    };
    Ok(t.apply_op1(op)?)
}

//! All-gather with the gradient semantics of the official `FullGatherLayer`.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Shape, Storage, Tensor};

use super::Collective;
use crate::Result;

/// Forward: the already gathered `(world * b, d)` batch. Backward: the
/// gradient of the gathered batch is summed over ranks and this rank's slice
/// is returned, exactly as `FullGatherLayer.backward`.
struct FullGather {
    collective: Arc<dyn Collective>,
    /// Contiguous gathered tensor, computed before the op is applied.
    gathered: Tensor,
    rank: usize,
    local: usize,
}

impl FullGather {
    fn shape(&self) -> Shape {
        self.gathered.shape().clone()
    }
}

impl CustomOp1 for FullGather {
    fn name(&self) -> &'static str {
        "full-gather"
    }

    fn cpu_fwd(&self, _s: &CpuStorage, _l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (storage, layout) = self.gathered.storage_and_layout();
        match &*storage {
            Storage::Cpu(c) => Ok((c.try_clone(layout)?, self.shape())),
            _ => candle_core::bail!("full-gather: gathered tensor is not on the CPU"),
        }
    }

    fn cuda_fwd(&self, _s: &CudaStorage, _l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (storage, layout) = self.gathered.storage_and_layout();
        match &*storage {
            Storage::Cuda(c) => Ok((c.try_clone(layout)?, self.shape())),
            _ => candle_core::bail!("full-gather: gathered tensor is not on the GPU"),
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
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(Some(g.narrow(0, self.rank * self.local, self.local)?))
    }
}

/// Gathers `(local_batch, dim)` tensors of every rank into `(world * local_batch, dim)`,
/// in rank order, differentiably: the gradient reaching this rank's input is the
/// sum over ranks of the gradient of its slice of the gathered tensor (the
/// official `FullGatherLayer`), so that after averaging parameter gradients
/// across ranks the result equals the gradient of the full-batch loss.
/// With one rank this is the identity.
pub fn gather_with_grad(collective: &Arc<dyn Collective>, t: &Tensor) -> Result<Tensor> {
    let world = collective.world_size();
    if world == 1 {
        return Ok(t.clone());
    }
    let gathered = collective.all_gather(&t.detach())?.contiguous()?;
    let op = FullGather {
        collective: collective.clone(),
        gathered,
        rank: collective.rank(),
        local: t.dim(0)?,
    };
    Ok(t.apply_op1(op)?)
}

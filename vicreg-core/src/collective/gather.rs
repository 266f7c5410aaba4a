//! All-gather with the gradient semantics of the official `FullGatherLayer`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::Collective;
use crate::Result;

/// Identity forward; backward sums the incoming gradient over every rank.
struct AllReduceGrad {
    collective: Arc<dyn Collective>,
}

impl CustomOp1 for AllReduceGrad {
    fn name(&self) -> &'static str {
        "all-reduce-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        // Copy the (possibly strided) input into a contiguous buffer.
        let out = copy_cpu(storage, layout)?;
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = self
            .collective
            .all_reduce_sum(grad_res)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(Some(g))
    }
}

fn copy_cpu(c: &CpuStorage, l: &Layout) -> candle_core::Result<CpuStorage> {
    // `gather_with_grad` makes the input contiguous before applying the op.
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("all-reduce-grad: input must be contiguous")
    };
    Ok(match c {
        CpuStorage::F32(v) => CpuStorage::F32(v[a..b].to_vec()),
        CpuStorage::F64(v) => CpuStorage::F64(v[a..b].to_vec()),
        CpuStorage::F16(v) => CpuStorage::F16(v[a..b].to_vec()),
        CpuStorage::BF16(v) => CpuStorage::BF16(v[a..b].to_vec()),
        _ => candle_core::bail!("all-reduce-grad: unsupported dtype"),
    })
}

/// Gathers `(local_batch, dim)` tensors of every rank into `(world * local_batch, dim)`,
/// in rank order. The gradient that reaches this rank's slice is the sum over
/// ranks of the gradient of the gathered tensor (as `FullGatherLayer` does
/// with `all_reduce` in its backward), so that after gradient averaging
/// across ranks the result equals the gradient of the full-batch loss.
/// With one rank this is the identity.
pub fn gather_with_grad(collective: &Arc<dyn Collective>, t: &Tensor) -> Result<Tensor> {
    let world = collective.world_size();
    if world == 1 {
        return Ok(t.clone());
    }
    let rank = collective.rank();
    let b = t.dim(0)?;
    let all = collective.all_gather(&t.detach())?;
    let own = if t.device().is_cpu() {
        t.contiguous()?.apply_op1(AllReduceGrad {
            collective: collective.clone(),
        })?
    } else {
        // Off the CPU: every rank computes the same loss on the same gathered
        // batch, so the sum over ranks of this slice's gradient is `world` times
        // the local one. `t.detach() + (t - t.detach()) * world` has exactly the
        // value of `t` and that gradient.
        (t.detach() + ((t - t.detach())? * world as f64)?)?
    };
    let mut parts = Vec::with_capacity(3);
    if rank > 0 {
        parts.push(all.narrow(0, 0, rank * b)?);
    }
    parts.push(own);
    if rank + 1 < world {
        parts.push(all.narrow(0, (rank + 1) * b, (world - rank - 1) * b)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

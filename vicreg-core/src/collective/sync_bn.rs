//! Synchronized BatchNorm: train-mode batch statistics over every rank.
//!
//! The official VICReg code converts every BatchNorm to `SyncBatchNorm`, so the
//! mean and variance that normalise a batch are those of the *global* batch.
//! Here the switch is a per-thread *sync group*: while
//! [`set_sync_batchnorm`]`(Some(group))` is in effect on a thread, every
//! train-mode BatchNorm forward on that thread that goes through
//! [`sync_batch_norm_train`] (the ResNet `BatchNorm2d` of the `encoders` crate,
//! the expander's [`SyncBatchNorm`]) reduces its statistics over `group`.
//! Thread-local, so that [`super::ThreadGroup`] ranks running as threads of one
//! process each use their own group. Unset (the default), nothing changes and
//! the layers keep their fast unsynchronized paths; eval mode never syncs.

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::{DType, ModuleT, Tensor, Var};
use candle_nn::BatchNorm;

use super::{all_reduce_with_grad, sync_bn_cpu, Collective};

thread_local! {
    static SYNC_GROUP: RefCell<Option<Arc<dyn Collective>>> = const { RefCell::new(None) };
}

/// Sets (or with `None` clears) this thread's BatchNorm sync group; returns the
/// previous one.
pub fn set_sync_batchnorm(group: Option<Arc<dyn Collective>>) -> Option<Arc<dyn Collective>> {
    SYNC_GROUP.with(|g| std::mem::replace(&mut *g.borrow_mut(), group))
}

/// This thread's BatchNorm sync group, if any.
pub fn sync_batchnorm() -> Option<Arc<dyn Collective>> {
    SYNC_GROUP.with(|g| g.borrow().clone())
}

/// Sets this thread's sync group for the lifetime of the guard and restores
/// the previous one when dropped.
pub struct SyncBatchNormScope {
    previous: Option<Option<Arc<dyn Collective>>>,
}

impl SyncBatchNormScope {
    /// Syncs this thread's BatchNorms over `group` until the guard is dropped.
    pub fn new(group: Option<Arc<dyn Collective>>) -> Self {
        Self {
            previous: Some(set_sync_batchnorm(group)),
        }
    }
}

impl Drop for SyncBatchNormScope {
    fn drop(&mut self) {
        if let Some(p) = self.previous.take() {
            set_sync_batchnorm(p);
        }
    }
}

/// Train-mode BatchNorm of `x` (`(N, C, ...)`, statistics per channel over
/// every other axis) with the statistics of the concatenation of every rank's
/// `x` in `group`, as torch's `SyncBatchNorm`:
///
/// - `mean = sum_ranks sum x / M` and biased `var = sum_ranks sum (x - mean)^2 / M`
///   (two differentiable all-reduces, so the gradient is that of the global
///   batch's loss: each rank's gradient of its statistics is summed over ranks),
///   where `M` is the global count per channel;
/// - `y = (x - mean) / sqrt(var + eps) * weight + bias` (`weight_bias` of shape `(C)`);
/// - running statistics (shape `(C)`, updated in place, no gradient):
///   `r = (1 - momentum) r + momentum s`, with the unbiased variance
///   `var * M / (M - 1)` for the running variance.
///
/// f16/bf16 inputs are computed in f32 and returned in their dtype. Every rank
/// must call this in the same order (once per BatchNorm layer and forward).
/// With a one-rank group the result equals the unsynchronized BatchNorm.
///
/// On the CPU in f32/f64 this runs as one custom op with the analytic
/// backward pass (a few passes over the data; one all-reduce of
/// `(sum dy, sum dy xhat)` in the backward pass, as torch); elsewhere as
/// [`sync_batch_norm_composed`].
pub fn sync_batch_norm_train(
    x: &Tensor,
    weight_bias: Option<(&Tensor, &Tensor)>,
    running_mean: &Var,
    running_var: &Var,
    eps: f64,
    momentum: f64,
    group: &Arc<dyn Collective>,
) -> candle_core::Result<Tensor> {
    let affine_ok = weight_bias.is_none_or(|(w, b)| {
        w.dtype() == x.dtype() && b.dtype() == x.dtype() && w.device().is_cpu()
    });
    if !(sync_bn_cpu::supported(x) && affine_ok && x.rank() >= 2) {
        return sync_batch_norm_composed(
            x,
            weight_bias,
            running_mean,
            running_var,
            eps,
            momentum,
            group,
        );
    }
    let dims = x.dims().to_vec();
    let (n, c) = (dims[0], dims[1]);
    check_running(c, running_mean, running_var)?;
    let l: usize = dims[2..].iter().product();
    let (w, b) = match weight_bias {
        Some((w, b)) => (w.clone(), b.clone()),
        None => (
            Tensor::ones(c, x.dtype(), x.device())?,
            Tensor::zeros(c, x.dtype(), x.device())?,
        ),
    };
    let (y, mean, var, m) =
        sync_bn_cpu::sync_batch_norm_cpu(&x.reshape((n, c, l))?, &w, &b, eps, group)?;
    let dev = x.device();
    update_running(
        running_mean,
        running_var,
        &Tensor::from_vec(mean, c, dev)?,
        &Tensor::from_vec(var, c, dev)?,
        m,
        momentum,
    )?;
    y.reshape(dims)
}

fn check_running(c: usize, running_mean: &Var, running_var: &Var) -> candle_core::Result<()> {
    if running_mean.dims() != [c] || running_var.dims() != [c] {
        candle_core::bail!(
            "sync batch-norm: {c} channels but running statistics of shape {:?} / {:?}",
            running_mean.dims(),
            running_var.dims()
        );
    }
    Ok(())
}

/// `r = (1 - momentum) r + momentum s`, with the unbiased `var * m / (m - 1)`
/// for the running variance (`mean`, `var`: detached, shape `(C)`).
fn update_running(
    running_mean: &Var,
    running_var: &Var,
    mean: &Tensor,
    var: &Tensor,
    m: f64,
    momentum: f64,
) -> candle_core::Result<()> {
    let rm = running_mean.as_tensor();
    let rv = running_var.as_tensor();
    let mean = mean.detach().to_dtype(rm.dtype())?;
    let var = var.detach().to_dtype(rv.dtype())?;
    running_mean.set(&((rm * (1.0 - momentum))? + (mean * momentum)?)?)?;
    running_var.set(&((rv * (1.0 - momentum))? + (var * (momentum * m / (m - 1.0)))?)?)?;
    Ok(())
}

/// [`sync_batch_norm_train`] composed of candle tensor ops and two
/// differentiable all-reduces ([`all_reduce_with_grad`]): any device and
/// dtype (the reference the CPU custom op is tested against).
pub fn sync_batch_norm_composed(
    x: &Tensor,
    weight_bias: Option<(&Tensor, &Tensor)>,
    running_mean: &Var,
    running_var: &Var,
    eps: f64,
    momentum: f64,
    group: &Arc<dyn Collective>,
) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    if dims.len() < 2 {
        candle_core::bail!(
            "sync batch-norm: input must be (N, C, ...), got shape {:?}",
            dims
        );
    }
    let (n, c) = (dims[0], dims[1]);
    check_running(c, running_mean, running_var)?;
    let l: usize = dims[2..].iter().product();
    let internal = match x.dtype() {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    };
    let xf = x.to_dtype(internal)?.reshape((n, c, l))?;
    let dev = xf.device();
    let local_count = Tensor::new(&[(n * l) as f64], dev)?.to_dtype(internal)?;
    // One all-reduce carries the per-channel sums and the sample count.
    let local = Tensor::cat(&[&xf.sum(2)?.sum(0)?, &local_count], 0)?;
    let reduced = all_reduce_with_grad(group, &local).map_err(candle_core::Error::wrap)?;
    let m = reduced
        .narrow(0, c, 1)?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?[0];
    if m < 2.0 {
        candle_core::bail!(
            "sync batch-norm: expected more than 1 value per channel over all ranks in training, got {m}"
        );
    }
    let mean = (reduced.narrow(0, 0, c)? / m)?;
    let d = xf.broadcast_sub(&mean.reshape((1, c, 1))?)?;
    let sq = d.sqr()?.sum(2)?.sum(0)?;
    let var = (all_reduce_with_grad(group, &sq).map_err(candle_core::Error::wrap)? / m)?;
    let inv_std = (var.clone() + eps)?.sqrt()?.recip()?;
    let mut y = d.broadcast_mul(&inv_std.reshape((1, c, 1))?)?;
    if let Some((w, b)) = weight_bias {
        let w = w.to_dtype(internal)?.reshape((1, c, 1))?;
        let b = b.to_dtype(internal)?.reshape((1, c, 1))?;
        y = y.broadcast_mul(&w)?.broadcast_add(&b)?;
    }
    update_running(running_mean, running_var, &mean, &var, m, momentum)?;
    y.reshape(dims)?.to_dtype(x.dtype())
}

/// A `candle_nn::BatchNorm` (any rank of input `(N, C, ...)`) that, in train
/// mode while this thread has a sync group ([`set_sync_batchnorm`]),
/// normalises with the statistics of every rank's batch
/// ([`sync_batch_norm_train`]); otherwise it is exactly the wrapped layer.
/// Tensor names and values are those of the wrapped layer.
#[derive(Clone, Debug)]
pub struct SyncBatchNorm {
    bn: BatchNorm,
    /// The same storage as `bn`'s running statistics.
    running_mean: Var,
    running_var: Var,
}

impl SyncBatchNorm {
    /// Wraps `bn` (sharing its running statistics, which candle always holds
    /// as variables). The layer must subtract the mean (`remove_mean`, the
    /// default); the synchronized path always does.
    pub fn new(bn: BatchNorm) -> candle_core::Result<Self> {
        Ok(Self {
            running_mean: Var::from_tensor(bn.running_mean())?,
            running_var: Var::from_tensor(bn.running_var())?,
            bn,
        })
    }

    /// The wrapped layer.
    pub fn inner(&self) -> &BatchNorm {
        &self.bn
    }
}

impl ModuleT for SyncBatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match sync_batchnorm().filter(|_| train) {
            Some(group) => sync_batch_norm_train(
                x,
                self.bn.weight_and_bias(),
                &self.running_mean,
                &self.running_var,
                self.bn.eps(),
                self.bn.momentum(),
                &group,
            ),
            None => self.bn.forward_t(x, train),
        }
    }
}

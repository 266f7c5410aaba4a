//! The CPU (f32/f64) implementation of synchronized BatchNorm: one custom op
//! with the analytic backward pass, a few passes over the data instead of the
//! dozen of the composed tensor-op path.
//!
//! With `M` the global count per channel, `xhat = (x - mean) * inv_std` and
//! `y = w xhat + b`, the gradient of the sum of every rank's loss is
//! `dx = w inv_std (dy - G1 / M - xhat G2 / M)` with the global sums
//! `G1 = sum_ranks sum dy`, `G2 = sum_ranks sum dy xhat` (one all-reduce),
//! and this rank's `dw = sum dy xhat`, `db = sum dy` (local, as every
//! parameter gradient before the trainer averages them over ranks).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor, WithDType};

use super::Collective;

/// Runs `f` on the contiguous CPU elements of `t` (`None`: not a CPU tensor
/// of a supported dtype).
fn with_slice<R>(
    t: &Tensor,
    f32_fn: impl FnOnce(&[f32]) -> R,
    f64_fn: impl FnOnce(&[f64]) -> R,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("sync batch-norm: expected a CPU tensor");
    };
    let Some((lo, hi)) = layout.contiguous_offsets() else {
        candle_core::bail!("sync batch-norm: expected a contiguous tensor");
    };
    Ok(match cpu {
        CpuStorage::F32(v) => f32_fn(&v[lo..hi]),
        CpuStorage::F64(v) => f64_fn(&v[lo..hi]),
        _ => candle_core::bail!("sync batch-norm: expected f32 or f64, got {:?}", t.dtype()),
    })
}

/// Per-channel sums over `(n, c, l)` data: `sum x` (no `shift`) or
/// `sum (x - shift_c)^2`.
fn channel_sums<T: WithDType>(x: &[T], c: usize, l: usize, shift: Option<&[f64]>) -> Vec<f64> {
    let mut out = vec![0f64; c];
    for (i, chunk) in x.chunks_exact(l).enumerate() {
        let ch = i % c;
        let acc: f64 = match shift {
            None => chunk.iter().map(|v| v.to_f64()).sum(),
            Some(s) => chunk
                .iter()
                .map(|v| {
                    let d = v.to_f64() - s[ch];
                    d * d
                })
                .sum(),
        };
        out[ch] += acc;
    }
    out
}

/// Per-channel local `sum dy` and `sum dy xhat`.
fn grad_sums<T: WithDType>(
    x: &[T],
    dy: &[T],
    c: usize,
    l: usize,
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let mut s1 = vec![0f64; c];
    let mut s2 = vec![0f64; c];
    for (i, (xc, gc)) in x.chunks_exact(l).zip(dy.chunks_exact(l)).enumerate() {
        let ch = i % c;
        let (m, s) = (mean[ch], inv_std[ch]);
        let (mut a, mut b) = (0f64, 0f64);
        for (xv, gv) in xc.iter().zip(gc) {
            let g = gv.to_f64();
            a += g;
            b += g * (xv.to_f64() - m) * s;
        }
        s1[ch] += a;
        s2[ch] += b;
    }
    (s1, s2)
}

/// `(x, weight, bias) -> y` with fixed global statistics.
struct SyncBnOp {
    group: Arc<dyn Collective>,
    c: usize,
    l: usize,
    /// Global count per channel.
    m: f64,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

impl SyncBnOp {
    fn normalize<T: WithDType>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let mut y = Vec::with_capacity(x.len());
        for (i, chunk) in x.chunks_exact(self.l).enumerate() {
            let ch = i % self.c;
            let scale = w[ch].to_f64() * self.inv_std[ch];
            let shift = b[ch].to_f64() - self.mean[ch] * scale;
            y.extend(
                chunk
                    .iter()
                    .map(|v| T::from_f64(v.to_f64() * scale + shift)),
            );
        }
        y
    }

    fn input_grad<T: WithDType>(
        &self,
        x: &[T],
        dy: &[T],
        w: &[T],
        g1: &[f64],
        g2: &[f64],
    ) -> Vec<T> {
        let mut dx = Vec::with_capacity(x.len());
        for (i, (xc, gc)) in x
            .chunks_exact(self.l)
            .zip(dy.chunks_exact(self.l))
            .enumerate()
        {
            let ch = i % self.c;
            let (m, s) = (self.mean[ch], self.inv_std[ch]);
            let k = w[ch].to_f64() * s;
            let (a, b) = (g1[ch] / self.m, g2[ch] / self.m);
            dx.extend(
                xc.iter()
                    .zip(gc)
                    .map(|(xv, gv)| T::from_f64(k * (gv.to_f64() - a - (xv.to_f64() - m) * s * b))),
            );
        }
        dx
    }
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let Some((lo, hi)) = l.contiguous_offsets() else {
        candle_core::bail!("sync batch-norm: expected contiguous inputs");
    };
    Ok(&T::cpu_storage_as_slice(s)?[lo..hi])
}

impl CustomOp3 for SyncBnOp {
    fn name(&self) -> &'static str {
        "sync-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.normalize::<f32>(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(self.normalize::<f64>(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
            )),
            _ => candle_core::bail!("sync batch-norm: expected f32 or f64"),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (c, l) = (self.c, self.l);
        let xs = x.contiguous()?;
        let (s1, s2) = with_slice(
            &xs,
            |xv| {
                with_slice(
                    &grad,
                    |g| grad_sums(xv, g, c, l, &self.mean, &self.inv_std),
                    |_| (vec![], vec![]),
                )
            },
            |xv| {
                with_slice(
                    &grad,
                    |_| (vec![], vec![]),
                    |g| grad_sums(xv, g, c, l, &self.mean, &self.inv_std),
                )
            },
        )??;
        if s1.len() != c {
            candle_core::bail!("sync batch-norm: input and gradient dtypes differ");
        }
        let local = Tensor::from_vec([s1.clone(), s2.clone()].concat(), 2 * c, x.device())?;
        let global = self
            .group
            .all_reduce_sum(&local)
            .map_err(candle_core::Error::wrap)?
            .to_vec1::<f64>()?;
        let (g1, g2) = global.split_at(c);
        let wv = w.contiguous()?;
        let dx = with_slice(
            &xs,
            |xv| -> candle_core::Result<Tensor> {
                let dy = with_slice(&grad, |g| g.to_vec(), |_| vec![])?;
                let wv = with_slice(&wv, |w| w.to_vec(), |_| vec![])?;
                Tensor::from_vec(self.input_grad(xv, &dy, &wv, g1, g2), x.shape(), x.device())
            },
            |xv| -> candle_core::Result<Tensor> {
                let dy = with_slice(&grad, |_| vec![], |g| g.to_vec())?;
                let wv = with_slice(&wv, |_| vec![], |w| w.to_vec())?;
                Tensor::from_vec(self.input_grad(xv, &dy, &wv, g1, g2), x.shape(), x.device())
            },
        )??;
        let dw = Tensor::from_vec(s2, c, x.device())?.to_dtype(w.dtype())?;
        let db = Tensor::from_vec(s1, c, x.device())?.to_dtype(w.dtype())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Whether [`sync_batch_norm_cpu`] handles `x`.
pub(super) fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Global statistics and the normalised output of `x` viewed as `(n, c, l)`
/// (CPU, f32/f64, `w` and `b` of `x`'s dtype, shape `(c)`). Returns
/// `(y (n, c, l), mean, biased var, global count)`.
pub(super) fn sync_batch_norm_cpu(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    group: &Arc<dyn Collective>,
) -> candle_core::Result<(Tensor, Vec<f64>, Vec<f64>, f64)> {
    let (n, c, l) = x.dims3()?;
    let x = x.contiguous()?;
    let dev = x.device();
    let mut local = with_slice(
        &x,
        |v| channel_sums(v, c, l, None),
        |v| channel_sums(v, c, l, None),
    )?;
    local.push((n * l) as f64);
    let reduced = group
        .all_reduce_sum(&Tensor::from_vec(local, c + 1, dev)?)
        .map_err(candle_core::Error::wrap)?
        .to_vec1::<f64>()?;
    let m = reduced[c];
    if m < 2.0 {
        candle_core::bail!(
            "sync batch-norm: expected more than 1 value per channel over all ranks in training, got {m}"
        );
    }
    let mean: Vec<f64> = reduced[..c].iter().map(|s| s / m).collect();
    let sq = with_slice(
        &x,
        |v| channel_sums(v, c, l, Some(&mean)),
        |v| channel_sums(v, c, l, Some(&mean)),
    )?;
    let var: Vec<f64> = group
        .all_reduce_sum(&Tensor::from_vec(sq, c, dev)?)
        .map_err(candle_core::Error::wrap)?
        .to_vec1::<f64>()?
        .into_iter()
        .map(|s| s / m)
        .collect();
    let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let op = SyncBnOp {
        group: group.clone(),
        c,
        l,
        m,
        mean: mean.clone(),
        inv_std,
    };
    let y = x.apply_op3(&w.contiguous()?, &b.contiguous()?, op)?;
    Ok((y, mean, var, m))
}

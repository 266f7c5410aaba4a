//! Fused CPU kernels (F32 / F64) with exact hand-written backward passes for
//! the transformer's element-wise hot spots: exact GELU, softmax over the last
//! dimension and layer norm.
//!
//! The compositions of basic candle ops used elsewhere are correct but slow to
//! differentiate on the CPU (measured on 2 shared cores, F32: layer norm of
//! (64,31,256) 6 ms forward / 72 ms backward; GELU of 2M values 71 / 273 ms;
//! each backward allocates a dozen intermediate tensors). These kernels make one
//! pass forward and one pass backward, computing in f64 internally.
//!
//! They run only on CPU tensors of dtype F32 or F64; the public functions
//! ([`super::layer_norm`], [`super::gelu_exact`], [`softmax_last_dim`]) fall
//! back to the composed ops for any other device or dtype. Second derivatives
//! are not supported (the backward kernels are not themselves differentiable).
//! Each kernel is covered by an F64 finite-difference gradient check and a
//! forward/backward comparison with the composed ops (`tests/text_fused.rs`).

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType,
};

/// True when the fused kernels can run on all of `ts` (CPU, one float dtype F32/F64).
pub fn fused_available(ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else {
        return false;
    };
    let dt = first.dtype();
    matches!(dt, DType::F32 | DType::F64)
        && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == dt)
}

fn contiguous<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Dispatches a kernel generic over the float type on the storage's dtype.
macro_rules! dispatch {
    ($s:expr, $op:expr, |$t:ident| $body:expr) => {
        match $s {
            CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                $body
            }
            _ => bail!("{}: only F32 and F64 are supported", $op),
        }
    };
}

fn erf(x: f64) -> f64 {
    candle_core::cpu::erf::erf_f64(x)
}
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

// ---------------------------------------------------------------- GELU

struct GeluFwd;
struct GeluBwd;

impl CustomOp1 for GeluFwd {
    fn name(&self) -> &'static str {
        "fused-gelu-erf"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch!(s, self.name(), |T| {
            let x = contiguous::<T>(s, l, self.name())?;
            let y: Vec<T> = x
                .iter()
                .map(|v| {
                    let v = v.to_f64();
                    T::from_f64(0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2)))
                })
                .collect();
            Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
        })
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?
                .apply_op2_no_bwd(&arg.contiguous()?, &GeluBwd)?,
        ))
    }
}

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "fused-gelu-erf-bwd"
    }
    /// `(grad, x) -> grad * (Phi(x) + x phi(x))`.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch!(s1, self.name(), |T| {
            let g = contiguous::<T>(s1, l1, self.name())?;
            let x = contiguous::<T>(s2, l2, self.name())?;
            if g.len() != x.len() {
                bail!("{}: grad and input sizes differ", self.name());
            }
            let d: Vec<T> = g
                .iter()
                .zip(x)
                .map(|(g, x)| {
                    let (g, x) = (g.to_f64(), x.to_f64());
                    let cdf = 0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2));
                    let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
                    T::from_f64(g * (cdf + x * pdf))
                })
                .collect();
            Ok((T::to_cpu_storage_owned(d), l1.shape().clone()))
        })
    }
}

/// Exact GELU `x * Phi(x)` as one fused CPU kernel (F32/F64, contiguous copy made if needed).
pub fn gelu_fused(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(GeluFwd)
}

// ---------------------------------------------------------------- softmax

struct SoftmaxFwd;
struct SoftmaxBwd;

fn last_dim(l: &Layout) -> candle_core::Result<usize> {
    match l.shape().dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => bail!(
            "fused op: need a non-empty last dimension, got {:?}",
            l.shape()
        ),
    }
}

impl CustomOp1 for SoftmaxFwd {
    fn name(&self) -> &'static str {
        "fused-softmax-last-dim"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l)?;
        dispatch!(s, self.name(), |T| {
            let x = contiguous::<T>(s, l, self.name())?;
            let mut y: Vec<T> = Vec::with_capacity(x.len());
            let mut row = vec![0f64; n];
            for xr in x.chunks_exact(n) {
                let max = xr
                    .iter()
                    .map(|v| v.to_f64())
                    .fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for (r, v) in row.iter_mut().zip(xr) {
                    *r = (v.to_f64() - max).exp();
                    sum += *r;
                }
                y.extend(row.iter().map(|r| T::from_f64(r / sum)));
            }
            Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
        })
    }
    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            res.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd)?,
        ))
    }
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "fused-softmax-last-dim-bwd"
    }
    /// `(y, grad) -> y * (grad - sum(grad * y))` per row.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        dispatch!(s1, self.name(), |T| {
            let y = contiguous::<T>(s1, l1, self.name())?;
            let g = contiguous::<T>(s2, l2, self.name())?;
            if g.len() != y.len() {
                bail!("{}: grad and output sizes differ", self.name());
            }
            let mut d: Vec<T> = Vec::with_capacity(y.len());
            for (yr, gr) in y.chunks_exact(n).zip(g.chunks_exact(n)) {
                let dot: f64 = yr
                    .iter()
                    .zip(gr)
                    .map(|(y, g)| y.to_f64() * g.to_f64())
                    .sum();
                d.extend(
                    yr.iter()
                        .zip(gr)
                        .map(|(y, g)| T::from_f64(y.to_f64() * (g.to_f64() - dot))),
                );
            }
            Ok((T::to_cpu_storage_owned(d), l1.shape().clone()))
        })
    }
}

/// Softmax over the last dimension; fused kernel on CPU F32/F64, else
/// `candle_nn::ops::softmax` (differentiable; never candle's
/// `softmax_last_dim`, which records no gradient).
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if fused_available(&[x]) {
        x.contiguous()?.apply_op1(SoftmaxFwd)
    } else {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    }
}

// ---------------------------------------------------------------- layer norm

struct LayerNormFwd {
    eps: f64,
}
struct LayerNormBwd {
    eps: f64,
}

/// Per row: mean and 1/sqrt(biased var + eps).
fn row_stats<T: WithDType>(xr: &[T], eps: f64) -> (f64, f64) {
    let n = xr.len() as f64;
    let mean = xr.iter().map(|v| v.to_f64()).sum::<f64>() / n;
    let var = xr.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormFwd {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let n = last_dim(l1)?;
        dispatch!(s1, self.name(), |T| {
            let x = contiguous::<T>(s1, l1, self.name())?;
            let w = contiguous::<T>(s2, l2, self.name())?;
            let b = contiguous::<T>(s3, l3, self.name())?;
            if w.len() != n || b.len() != n {
                bail!(
                    "{}: weight/bias of size {}/{} for rows of {n}",
                    self.name(),
                    w.len(),
                    b.len()
                );
            }
            let mut y: Vec<T> = Vec::with_capacity(x.len());
            for xr in x.chunks_exact(n) {
                let (mean, rstd) = row_stats(xr, self.eps);
                y.extend(xr.iter().zip(w.iter().zip(b)).map(|(v, (w, b))| {
                    T::from_f64((v.to_f64() - mean) * rstd * w.to_f64() + b.to_f64())
                }));
            }
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(candle_core::D::Minus1)?;
        let rows = x.elem_count() / n;
        // One kernel returns (rows + 2, n): dx rows, then dw, then db.
        let all = x.contiguous()?.apply_op3_no_bwd(
            &w.contiguous()?,
            &grad.contiguous()?,
            &LayerNormBwd { eps: self.eps },
        )?;
        let dx = all.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = all.narrow(0, rows, 1)?.reshape(n)?;
        let db = all.narrow(0, rows + 1, 1)?.reshape(n)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "fused-layer-norm-bwd"
    }
    /// `(x, w, grad) -> [dx (rows, n); dw (1, n); db (1, n)]` with
    /// `dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))`, `gw = grad * w`,
    /// `dw = sum_rows(grad * xhat)`, `db = sum_rows(grad)`.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = last_dim(l1)?;
        dispatch!(s1, self.name(), |T| {
            let x = contiguous::<T>(s1, l1, self.name())?;
            let w = contiguous::<T>(s2, l2, self.name())?;
            let g = contiguous::<T>(s3, l3, self.name())?;
            if w.len() != n || g.len() != x.len() {
                bail!("{}: inconsistent sizes", self.name());
            }
            let rows = x.len() / n;
            let mut out: Vec<T> = Vec::with_capacity((rows + 2) * n);
            let (mut dw, mut db) = (vec![0f64; n], vec![0f64; n]);
            let mut xhat = vec![0f64; n];
            let mut gw = vec![0f64; n];
            for (xr, gr) in x.chunks_exact(n).zip(g.chunks_exact(n)) {
                let (mean, rstd) = row_stats(xr, self.eps);
                let (mut sum_gw, mut sum_gw_xhat) = (0.0, 0.0);
                for j in 0..n {
                    let gj = gr[j].to_f64();
                    xhat[j] = (xr[j].to_f64() - mean) * rstd;
                    gw[j] = gj * w[j].to_f64();
                    sum_gw += gw[j];
                    sum_gw_xhat += gw[j] * xhat[j];
                    dw[j] += gj * xhat[j];
                    db[j] += gj;
                }
                let (m1, m2) = (sum_gw / n as f64, sum_gw_xhat / n as f64);
                out.extend((0..n).map(|j| T::from_f64(rstd * (gw[j] - m1 - xhat[j] * m2))));
            }
            out.extend(dw.iter().map(|v| T::from_f64(*v)));
            out.extend(db.iter().map(|v| T::from_f64(*v)));
            Ok((T::to_cpu_storage_owned(out), Shape::from((rows + 2, n))))
        })
    }
}

/// Layer norm over the last dimension as one fused CPU kernel (F32/F64);
/// `weight`, `bias`: `(n)`.
pub fn layer_norm_fused(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormFwd { eps },
    )
}

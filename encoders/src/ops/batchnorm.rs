//! Fused train-mode BatchNorm over the channel axis of `(N, C, ...)` tensors
//! (optionally fused with a following ReLU), as candle custom ops.
//!
//! Forward: per channel `c`, with `M = N * (product of the trailing dims)`,
//! `mean_c` and the biased variance `var_c = mean((x - mean_c)^2)` over the
//! batch and spatial positions, `y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c`
//! (then `max(y, 0)` when fused with ReLU). Statistics are accumulated in f64.
//!
//! Backward (with `dy` masked by `y > 0` for the ReLU variant,
//! `xhat = (x - mean) / sqrt(var + eps)`):
//! `dbeta = sum dy`, `dgamma = sum dy * xhat`,
//! `dx = gamma / sqrt(var + eps) * (dy - dbeta / M - xhat * dgamma / M)`.
//! The backward pass runs two further custom ops (one reduction, one
//! elementwise pass); the running statistics are the caller's business
//! ([`BatchNormTrainOutput`] returns the batch mean and biased variance).
//! f32 and f64 on CPU only.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use candle_core::backend::BackendStorage;
use vicreg_core::ops::gemm::Elem;

/// Sizes: `n` images, `c` channels, `s` positions per channel plane.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
}

impl Dims {
    fn of(dims: &[usize], op: &str) -> candle_core::Result<Self> {
        if dims.len() < 2 {
            candle_core::bail!("{op}: input {dims:?} must have at least 2 dimensions (N, C, ...)");
        }
        Ok(Self {
            n: dims[0],
            c: dims[1],
            s: dims[2..].iter().product(),
        })
    }

    fn m(&self) -> usize {
        self.n * self.s
    }
}

/// Iterates the `n` planes of channel `ch`.
fn planes<T>(x: &[T], d: Dims, ch: usize) -> impl Iterator<Item = &[T]> {
    (0..d.n).map(move |i| &x[(i * d.c + ch) * d.s..][..d.s])
}

/// `x -> (2, C)`: row 0 the mean, row 1 the biased variance (two-pass, f64).
struct BnStats;

fn stats<T: Elem>(x: &[T], d: Dims) -> Vec<T> {
    let m = d.m().max(1) as f64;
    let per: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let mean = planes(x, d, ch)
                .map(|p| p.iter().map(|v| v.to_f64()).sum::<f64>())
                .sum::<f64>()
                / m;
            let var = planes(x, d, ch)
                .map(|p| {
                    p.iter()
                        .map(|v| {
                            let e = v.to_f64() - mean;
                            e * e
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / m;
            (mean, var)
        })
        .collect();
    let mut out: Vec<T> = per.iter().map(|p| T::from_f64(p.0)).collect();
    out.extend(per.iter().map(|p| T::from_f64(p.1)));
    out
}

impl CustomOp1 for BnStats {
    fn name(&self) -> &'static str {
        "batchnorm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::of(l.dims(), self.name())?;
        let out = match s.dtype() {
            DType::F32 => f32::storage(stats(f32::slice(s, l, self.name())?, d)),
            DType::F64 => f64::storage(stats(f64::slice(s, l, self.name())?, d)),
            t => candle_core::bail!("{}: unsupported dtype {t:?}", self.name()),
        };
        Ok((out, Shape::from((2, d.c))))
    }
}

/// Per-channel batch statistics shared by the forward and backward ops.
#[derive(Debug)]
struct Stats {
    mean: Vec<f64>,
    invstd: Vec<f64>,
}

/// Forward op on `(x, gamma, beta)`.
struct BnTrain {
    stats: Arc<Stats>,
    relu: bool,
}

/// Applies `y = x * scale_c + shift_c` (then ReLU) plane by plane.
fn affine<T: Elem>(x: &[T], d: Dims, scale: &[T], shift: &[T], relu: bool) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(d.s.max(1))
        .zip(x.par_chunks(d.s.max(1)))
        .enumerate()
        .for_each(|(q, (yo, xi))| {
            let (a, b) = (scale[q % d.c], shift[q % d.c]);
            for (o, v) in yo.iter_mut().zip(xi) {
                let t = *v * a + b;
                *o = if relu && t <= T::ZERO { T::ZERO } else { t };
            }
        });
    y
}

fn train_fwd<T: Elem>(x: &[T], gamma: &[T], beta: &[T], d: Dims, st: &Stats, relu: bool) -> Vec<T> {
    let scale: Vec<f64> = (0..d.c).map(|c| st.invstd[c] * gamma[c].to_f64()).collect();
    let shift: Vec<T> = (0..d.c)
        .map(|c| T::from_f64(beta[c].to_f64() - st.mean[c] * scale[c]))
        .collect();
    let scale: Vec<T> = scale.into_iter().map(T::from_f64).collect();
    affine(x, d, &scale, &shift, relu)
}

/// Dispatches a three-input CPU kernel on the dtype.
macro_rules! dispatch3 {
    ($op:expr, $s1:expr, $l1:expr, $s2:expr, $l2:expr, $s3:expr, $l3:expr, |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match $s1.dtype() {
            DType::F32 => {
                let $a = f32::slice($s1, $l1, $op)?;
                let $b = f32::slice($s2, $l2, $op)?;
                let $c = f32::slice($s3, $l3, $op)?;
                f32::storage($body)
            }
            DType::F64 => {
                let $a = f64::slice($s1, $l1, $op)?;
                let $b = f64::slice($s2, $l2, $op)?;
                let $c = f64::slice($s3, $l3, $op)?;
                f64::storage($body)
            }
            t => candle_core::bail!("{}: unsupported dtype {t:?}", $op),
        }
    };
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "batchnorm-train"
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
        let d = Dims::of(l1.dims(), self.name())?;
        if l2.dims() != [d.c] || l3.dims() != [d.c] {
            candle_core::bail!(
                "{}: gamma {:?} and beta {:?} must have shape [{}]",
                self.name(),
                l2.dims(),
                l3.dims(),
                d.c
            );
        }
        let out = dispatch3!(self.name(), s1, l1, s2, l2, s3, l3, |x, g, b| train_fwd(
            x,
            g,
            b,
            d,
            &self.stats,
            self.relu
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let reduce = BnBwdReduce {
            stats: self.stats.clone(),
            relu: self.relu,
        };
        // (2, C): row 0 = sum dy (dbeta), row 1 = sum dy * xhat (dgamma).
        let sums = x.apply_op3_no_bwd(&grad, res, &reduce)?;
        let dx = if x.track_op() {
            let sums_v = sums.to_dtype(DType::F64)?.to_vec2::<f64>()?;
            let gamma_v = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let op = BnBwdInput {
                stats: self.stats.clone(),
                relu: self.relu,
                gamma: gamma_v,
                dbeta: sums_v[0].clone(),
                dgamma: sums_v[1].clone(),
            };
            Some(x.apply_op3_no_bwd(&grad, res, &op)?)
        } else {
            None
        };
        let dgamma = if gamma.track_op() {
            Some(sums.get(1)?)
        } else {
            None
        };
        let dbeta = if beta.track_op() {
            Some(sums.get(0)?)
        } else {
            None
        };
        Ok((dx, dgamma, dbeta))
    }
}

/// `(x, dy, y) -> (2, C)`: `[sum dy'; sum dy' * xhat]`, `dy'` = `dy` masked by `y > 0` for ReLU.
struct BnBwdReduce {
    stats: Arc<Stats>,
    relu: bool,
}

fn bwd_reduce<T: Elem>(x: &[T], dy: &[T], y: &[T], d: Dims, st: &Stats, relu: bool) -> Vec<T> {
    let per: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
            for i in 0..d.n {
                let off = (i * d.c + ch) * d.s;
                let (xs, gs, ys) = (&x[off..][..d.s], &dy[off..][..d.s], &y[off..][..d.s]);
                let (mut a, mut b) = (0.0f64, 0.0f64);
                for j in 0..d.s {
                    if relu && ys[j] <= T::ZERO {
                        continue;
                    }
                    let g = gs[j].to_f64();
                    a += g;
                    b += g * xs[j].to_f64();
                }
                sdy += a;
                sdyx += b;
            }
            (sdy, (sdyx - st.mean[ch] * sdy) * st.invstd[ch])
        })
        .collect();
    let mut out: Vec<T> = per.iter().map(|p| T::from_f64(p.0)).collect();
    out.extend(per.iter().map(|p| T::from_f64(p.1)));
    out
}

impl CustomOp3 for BnBwdReduce {
    fn name(&self) -> &'static str {
        "batchnorm-bwd-reduce"
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
        let d = Dims::of(l1.dims(), self.name())?;
        let out = dispatch3!(self.name(), s1, l1, s2, l2, s3, l3, |x, g, y| bwd_reduce(
            x,
            g,
            y,
            d,
            &self.stats,
            self.relu
        ));
        Ok((out, Shape::from((2, d.c))))
    }
}

/// `(x, dy, y) -> dx`.
struct BnBwdInput {
    stats: Arc<Stats>,
    relu: bool,
    gamma: Vec<f64>,
    dbeta: Vec<f64>,
    dgamma: Vec<f64>,
}

impl BnBwdInput {
    fn run<T: Elem>(&self, x: &[T], dy: &[T], y: &[T], d: Dims) -> Vec<T> {
        let m = d.m().max(1) as f64;
        // dx = a dy' + k1 x + k0 with a = gamma invstd, c = dgamma invstd / M,
        // k1 = -a c, k0 = a (c mean - dbeta / M).
        let coef: Vec<(T, T, T)> = (0..d.c)
            .map(|ch| {
                let a = self.gamma[ch] * self.stats.invstd[ch];
                let c = self.dgamma[ch] * self.stats.invstd[ch] / m;
                let k0 = a * (c * self.stats.mean[ch] - self.dbeta[ch] / m);
                (T::from_f64(a), T::from_f64(-a * c), T::from_f64(k0))
            })
            .collect();
        let mut dx = vec![T::ZERO; x.len()];
        let s = d.s.max(1);
        dx.par_chunks_mut(s).enumerate().for_each(|(q, out)| {
            let (a, k1, k0) = coef[q % d.c];
            let off = q * s;
            let (xs, gs, ys) = (&x[off..][..s], &dy[off..][..s], &y[off..][..s]);
            for j in 0..s {
                let g = if self.relu && ys[j] <= T::ZERO {
                    T::ZERO
                } else {
                    gs[j]
                };
                out[j] = a * g + k1 * xs[j] + k0;
            }
        });
        dx
    }
}

impl CustomOp3 for BnBwdInput {
    fn name(&self) -> &'static str {
        "batchnorm-bwd-input"
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
        let d = Dims::of(l1.dims(), self.name())?;
        let out = dispatch3!(self.name(), s1, l1, s2, l2, s3, l3, |x, g, y| self
            .run(x, g, y, d));
        Ok((out, l1.shape().clone()))
    }
}

/// Result of [`batch_norm_train`].
#[derive(Clone, Debug)]
pub struct BatchNormTrainOutput {
    /// Normalised output, same shape as the input.
    pub y: Tensor,
    /// Batch mean per channel `(C,)`, detached, in the input dtype.
    pub mean: Tensor,
    /// Biased batch variance per channel `(C,)`, detached, in the input dtype.
    pub var: Tensor,
    /// Number of values per channel `M` (for the unbiased running variance `var * M / (M - 1)`).
    pub count: usize,
}

/// Train-mode BatchNorm of `x (N, C, ...)` with the batch statistics, affine
/// `gamma`, `beta` of shape `(C,)`, then ReLU when `relu`. Differentiable in
/// `x`, `gamma` and `beta`. Errors on shape/dtype mismatch, non-CPU tensors,
/// dtypes other than f32/f64, or fewer than 2 values per channel.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> candle_core::Result<BatchNormTrainOutput> {
    if !super::conv2d::supported(x) || gamma.dtype() != x.dtype() || beta.dtype() != x.dtype() {
        candle_core::bail!(
            "batchnorm-train: needs f32/f64 CPU tensors of one dtype, got x {:?} on {:?}, gamma {:?}, beta {:?}",
            x.dtype(),
            x.device(),
            gamma.dtype(),
            beta.dtype()
        );
    }
    let d = Dims::of(x.dims(), "batchnorm-train")?;
    if d.m() < 2 {
        candle_core::bail!(
            "batchnorm-train: input {:?} has {} value(s) per channel, need at least 2",
            x.dims(),
            d.m()
        );
    }
    let x = x.contiguous()?;
    let st = x.detach().apply_op1_no_bwd(&BnStats)?;
    let v = st.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let stats = Stats {
        invstd: v[1].iter().map(|var| 1.0 / (var + eps).sqrt()).collect(),
        mean: v[0].clone(),
    };
    let y = x.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        BnTrain {
            stats: Arc::new(stats),
            relu,
        },
    )?;
    Ok(BatchNormTrainOutput {
        y,
        mean: st.get(0)?,
        var: st.get(1)?,
        count: d.m(),
    })
}

//! Depthwise 2-D convolution (one filter per channel, stride 1, "same" zero
//! padding) as a candle custom op with a hand-written backward pass.
//!
//! Shapes: input `x (N, C, H, W)`, weight `w (C, 1, K, K)` with odd `K`,
//! output `(N, C, H, W)`: `y[n, c, i, j] = sum_{a, b} w[c, 0, a, b]
//! x[n, c, i + a - K/2, j + b - K/2]` (PyTorch `F.conv2d(x, w, padding=K//2,
//! groups=C)`, no bias). ConvNeXt's 7x7 depthwise convolution is this op.
//!
//! candle's grouped `conv2d` runs one convolution per channel (hundreds of
//! tiny GEMMs); here each `(image, channel)` plane is one task on the rayon
//! pool, with shifted row-wise multiply-adds the compiler vectorises.
//! f32 and f64 on CPU; [`depthwise_conv2d`] falls back to candle's grouped
//! convolution elsewhere (same values, gradients by composition).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use vicreg_core::ops::gemm::Elem;

use crate::ops::supported;

/// Sizes of one depthwise convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
}

impl Geom {
    fn new(x: &[usize], w: &[usize]) -> candle_core::Result<Self> {
        let (&[n, c, h, wd], &[wc, one, kh, kw]) = (x, w) else {
            candle_core::bail!(
                "depthwise-conv2d: input must be (N, C, H, W) and weight (C, 1, K, K), got {x:?} and {w:?}"
            );
        };
        if wc != c || one != 1 || kh != kw || kh % 2 == 0 {
            candle_core::bail!(
                "depthwise-conv2d: weight must be (C, 1, K, K) with odd K and C = {c}, got {w:?}"
            );
        }
        Ok(Self {
            n,
            c,
            h,
            w: wd,
            k: kh,
        })
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }

    /// For a kernel offset `d = a - K/2` along an axis of length `len`: the
    /// output range `[lo, hi)` whose shifted input `i + d` is inside.
    fn valid(len: usize, d: isize) -> (usize, usize) {
        let lo = (-d).max(0) as usize;
        let hi = (len as isize - d.max(0)).max(lo as isize) as usize;
        (lo.min(len), hi.min(len))
    }
}

/// One kernel tap `(a, b)` and the output rows `[i0, i1)` and columns
/// `[j0, j1)` whose shifted input `(i + a - K/2, j + b - K/2)` is inside the
/// plane; `src(i)` is the input offset of output `(i, j0)`.
struct Tap {
    k: usize,
    rows: (usize, usize),
    cols: (usize, usize),
    da: isize,
    db: isize,
    w: usize,
}

impl Tap {
    /// Every tap of `g`'s kernel that touches the plane, row-major.
    fn all(g: &Geom) -> impl Iterator<Item = Tap> + '_ {
        let r = (g.k / 2) as isize;
        (0..g.k * g.k).filter_map(move |t| {
            let (da, db) = ((t / g.k) as isize - r, (t % g.k) as isize - r);
            let rows = Geom::valid(g.h, da);
            let cols = Geom::valid(g.w, db);
            (rows.0 < rows.1 && cols.0 < cols.1).then_some(Tap {
                k: t,
                rows,
                cols,
                da,
                db,
                w: g.w,
            })
        })
    }

    /// Offset of input `(i + da, j0 + db)`.
    fn src(&self, i: usize) -> usize {
        ((i as isize + self.da) as usize) * self.w + (self.cols.0 as isize + self.db) as usize
    }

    /// Offset of output `(i, j0)` and the run length.
    fn dst(&self, i: usize) -> (usize, usize) {
        (i * self.w + self.cols.0, self.cols.1 - self.cols.0)
    }
}

/// `out += w[a, b] * shift(x, a, b)` over one plane.
fn plane_forward<T: Elem>(x: &[T], wt: &[T], out: &mut [T], g: &Geom) {
    for tap in Tap::all(g) {
        let coef = wt[tap.k];
        for i in tap.rows.0..tap.rows.1 {
            let (o, len) = tap.dst(i);
            let xs = &x[tap.src(i)..][..len];
            for (o, &v) in out[o..o + len].iter_mut().zip(xs) {
                *o += coef * v;
            }
        }
    }
}

/// `dx += w[a, b] * unshift(dy, a, b)` over one plane.
fn plane_input_grad<T: Elem>(dy: &[T], wt: &[T], dx: &mut [T], g: &Geom) {
    for tap in Tap::all(g) {
        let coef = wt[tap.k];
        for i in tap.rows.0..tap.rows.1 {
            let (o, len) = tap.dst(i);
            let s = tap.src(i);
            for (d, &v) in dx[s..s + len].iter_mut().zip(&dy[o..o + len]) {
                *d += coef * v;
            }
        }
    }
}

/// `dw[a, b] += sum_{i, j} dy[i, j] x[i + a - K/2, j + b - K/2]` over one plane.
fn plane_weight_grad<T: Elem>(x: &[T], dy: &[T], dw: &mut [T], g: &Geom) {
    for tap in Tap::all(g) {
        let mut acc = T::ZERO;
        for i in tap.rows.0..tap.rows.1 {
            let (o, len) = tap.dst(i);
            let xs = &x[tap.src(i)..][..len];
            for (&u, &v) in xs.iter().zip(&dy[o..o + len]) {
                acc += u * v;
            }
        }
        dw[tap.k] += acc;
    }
}

fn forward<T: Elem>(x: &[T], w: &[T], g: &Geom) -> Vec<T> {
    let p = g.plane();
    let kk = g.k * g.k;
    let mut out = vec![T::ZERO; g.n * g.c * p];
    out.par_chunks_mut(p).enumerate().for_each(|(nc, o)| {
        let c = nc % g.c;
        plane_forward(&x[nc * p..(nc + 1) * p], &w[c * kk..(c + 1) * kk], o, g);
    });
    out
}

fn input_grad<T: Elem>(w: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let p = g.plane();
    let kk = g.k * g.k;
    let mut dx = vec![T::ZERO; g.n * g.c * p];
    dx.par_chunks_mut(p).enumerate().for_each(|(nc, d)| {
        let c = nc % g.c;
        plane_input_grad(&dy[nc * p..(nc + 1) * p], &w[c * kk..(c + 1) * kk], d, g);
    });
    dx
}

fn weight_grad<T: Elem>(x: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let p = g.plane();
    let kk = g.k * g.k;
    let mut dw = vec![T::ZERO; g.c * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, d)| {
        for n in 0..g.n {
            let nc = n * g.c + c;
            plane_weight_grad(&x[nc * p..(nc + 1) * p], &dy[nc * p..(nc + 1) * p], d, g);
        }
    });
    dw
}

/// Forward op on `(x, w)`.
struct DepthwiseFwd;

impl CustomOp2 for DepthwiseFwd {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims())?;
        let out = dispatch2!(self.name(), s1, l1, s2, l2, |x, w| forward(x, w, &g));
        Ok((out, Shape::from((g.n, g.c, g.h, g.w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(w.apply_op2_no_bwd(&grad, &DepthwiseInputGrad)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &DepthwiseWeightGrad { k: w.dim(2)? })?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `(w, dy) -> dx`.
struct DepthwiseInputGrad;

impl CustomOp2 for DepthwiseInputGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geom::new(l2.dims(), l1.dims())?;
        let out = dispatch2!(self.name(), s1, l1, s2, l2, |w, dy| input_grad(w, dy, &g));
        Ok((out, Shape::from((g.n, g.c, g.h, g.w))))
    }
}

/// `(x, dy) -> dw`.
struct DepthwiseWeightGrad {
    k: usize,
}

impl CustomOp2 for DepthwiseWeightGrad {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = l1.dims().get(1).copied().unwrap_or(0);
        let g = Geom::new(l1.dims(), &[c, 1, self.k, self.k])?;
        if l2.dims() != l1.dims() {
            candle_core::bail!(
                "{}: gradient {:?} does not match the input {:?}",
                self.name(),
                l2.dims(),
                l1.dims()
            );
        }
        let out = dispatch2!(self.name(), s1, l1, s2, l2, |x, dy| weight_grad(x, dy, &g));
        Ok((out, Shape::from((g.c, 1, g.k, g.k))))
    }
}

/// Depthwise convolution `x (N, C, H, W) * w (C, 1, K, K) -> (N, C, H, W)`
/// with padding `K / 2` (odd `K`, stride 1, no bias), differentiable in both
/// arguments. The custom op on CPU f32/f64 tensors of one dtype (while
/// [`crate::ops::fast_ops_enabled`]); candle's grouped convolution otherwise.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    Geom::new(x.dims(), w.dims())?;
    let fast = crate::ops::fast_ops_enabled()
        && supported(x)
        && x.dtype() == w.dtype()
        && w.device().is_cpu();
    if fast {
        return x.contiguous()?.apply_op2(&w.contiguous()?, DepthwiseFwd);
    }
    let c = x.dim(1)?;
    x.conv2d(w, w.dim(2)? / 2, 1, 1, c)
}

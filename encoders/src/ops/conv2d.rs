//! GEMM-based 2-D convolution (forward, input gradient, weight gradient) as
//! candle custom ops.
//!
//! Shapes: input `x (N, C, H, W)`, weight `w (O, C, KH, KW)` (no bias, one
//! group, dilation 1), output `y (N, O, OH, OW)` with
//! `OH = (H + 2 PH - KH) / SH + 1` (floor, PyTorch semantics), likewise `OW`.
//! Stride and zero padding may differ between the two axes (the 1-D audio
//! ResNet runs `1 x K` kernels on height-1 inputs).
//!
//! Method: the batch is processed in chunks of images whose unfolded input
//! ("im2col": a `(C KH KW) x (images OH OW)` matrix) stays under
//! [`COL_BUDGET`] elements; each chunk is then one large GEMM on the `gemm`
//! crate kernels (multithreaded on the rayon pool):
//! - forward: `Y[O, cols] = W[O, K] @ col[K, cols]`;
//! - weight gradient: `dW[O, K] += dY[O, cols] @ col[K, cols]^T`;
//! - input gradient: `dcol[K, cols] = W^T @ dY[O, cols]`, folded back
//!   ("col2im") into `dx`.
//!
//! The backward pass returns tensors produced by the two gradient ops below,
//! so it is as fast as the forward; the input gradient is skipped when the
//! input does not need one (images) or when the op was built with
//! `input_grad = false`. f32 and f64 on CPU only.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::dims_err;
use rayon::prelude::*;

use candle_core::backend::BackendStorage;
use vicreg_core::ops::gemm::{matmul, Elem, MatRef};

/// Upper bound (elements) of the unfolded-input buffer of one chunk of images.
pub const COL_BUDGET: usize = 1 << 22;

/// Stride and zero padding of a convolution, per axis `(height, width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// `(SH, SW)`, both >= 1.
    pub stride: (usize, usize),
    /// `(PH, PW)` zero padding on both sides of each axis.
    pub padding: (usize, usize),
}

impl Conv2dParams {
    /// Square stride and padding.
    pub fn square(stride: usize, padding: usize) -> Self {
        Self {
            stride: (stride, stride),
            padding: (padding, padding),
        }
    }
}

/// All sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn new(x: &[usize], w: &[usize], p: Conv2dParams) -> candle_core::Result<Self> {
        let (&[n, c, h, wd], &[o, ci, kh, kw]) = (x, w) else {
            candle_core::bail!("conv2d: input {x:?} and weight {w:?} must both be 4-D");
        };
        let (sh, sw) = p.stride;
        let (ph, pw) = p.padding;
        if ci != c {
            candle_core::bail!("conv2d: input {x:?} has {c} channels, weight {w:?} expects {ci}");
        }
        if sh == 0 || sw == 0 || kh == 0 || kw == 0 {
            candle_core::bail!(
                "conv2d: stride {:?} and kernel {w:?} must be positive",
                p.stride
            );
        }
        if h + 2 * ph < kh || wd + 2 * pw < kw {
            candle_core::bail!(
                "conv2d: padded input {x:?} (padding {:?}) is smaller than the kernel {w:?}",
                p.padding
            );
        }
        Ok(Self {
            n,
            c,
            h,
            w: wd,
            o,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oh: (h + 2 * ph - kh) / sh + 1,
            ow: (wd + 2 * pw - kw) / sw + 1,
        })
    }

    /// GEMM depth `C KH KW`.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per image `OH OW`.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Images per chunk.
    fn chunk(&self) -> usize {
        (COL_BUDGET / (self.k() * self.p()).max(1)).clamp(1, self.n.max(1))
    }
}

/// For kernel offset `b` along an axis of `size` inputs: the output positions
/// `[lo, hi)` (within `0..out`) whose input `o * stride + b - pad` lies inside.
fn valid_range(b: usize, size: usize, stride: usize, pad: usize, out: usize) -> (usize, usize) {
    {
        // lo: smallest o with o*stride + b >= pad.
        let lo = if b >= pad {
            0
        } else {
            (pad - b).div_ceil(stride)
        };
        // hi: smallest o with o*stride + b - pad >= size.
        let hi = if size + pad < b {
            0
        } else {
            (size + pad - b).div_ceil(stride)
        };
        (lo.min(out), hi.min(out).max(lo.min(out)))
    }
}

/// Unfolds images `n0 .. n0 + m` of `x` into `col (K, m * P)` (row-major).
fn im2col<T: Elem>(x: &[T], g: &Geom, n0: usize, m: usize, col: &mut [T]) {
    let (p, cols) = (g.p(), m * g.p());
    let plane = g.h * g.w;
    col[..g.k() * cols]
        .par_chunks_mut(cols)
        .enumerate()
        .for_each(|(r, row)| {
            let ch = r / (g.kh * g.kw);
            let a = (r / g.kw) % g.kh;
            let b = r % g.kw;
            let (wlo, whi) = valid_range(b, g.w, g.sw, g.pw, g.ow);
            for i in 0..m {
                let src = &x[((n0 + i) * g.c + ch) * plane..][..plane];
                let dst = &mut row[i * p..][..p];
                for oy in 0..g.oh {
                    let d = &mut dst[oy * g.ow..][..g.ow];
                    let iy = oy * g.sh + a;
                    if iy < g.ph || iy - g.ph >= g.h {
                        d.fill(T::ZERO);
                        continue;
                    }
                    let srow = &src[(iy - g.ph) * g.w..][..g.w];
                    d[..wlo].fill(T::ZERO);
                    d[whi..].fill(T::ZERO);
                    if whi > wlo {
                        let start = wlo * g.sw + b - g.pw;
                        if g.sw == 1 {
                            d[wlo..whi].copy_from_slice(&srow[start..start + (whi - wlo)]);
                        } else {
                            for (j, v) in d[wlo..whi].iter_mut().enumerate() {
                                *v = srow[start + j * g.sw];
                            }
                        }
                    }
                }
            }
        });
}

/// Folds `dcol (K, m * P)` back into `dx` images `n0 .. n0 + m` (accumulating).
fn col2im<T: Elem>(dcol: &[T], g: &Geom, n0: usize, m: usize, dx: &mut [T]) {
    let (p, cols) = (g.p(), m * g.p());
    let plane = g.h * g.w;
    dx[n0 * g.c * plane..(n0 + m) * g.c * plane]
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(q, dst)| {
            let (i, ch) = (q / g.c, q % g.c);
            for a in 0..g.kh {
                for b in 0..g.kw {
                    let r = (ch * g.kh + a) * g.kw + b;
                    let src = &dcol[r * cols + i * p..][..p];
                    let (wlo, whi) = valid_range(b, g.w, g.sw, g.pw, g.ow);
                    if whi <= wlo {
                        continue;
                    }
                    for oy in 0..g.oh {
                        let iy = oy * g.sh + a;
                        if iy < g.ph || iy - g.ph >= g.h {
                            continue;
                        }
                        let drow = &mut dst[(iy - g.ph) * g.w..][..g.w];
                        let s = &src[oy * g.ow..][..g.ow];
                        let start = wlo * g.sw + b - g.pw;
                        for (j, v) in s[wlo..whi].iter().enumerate() {
                            drow[start + j * g.sw] += *v;
                        }
                    }
                }
            }
        });
}

/// Gathers `dy` images `n0 .. n0 + m` from `(N, O, P)` into `(O, m * P)`.
fn gather_dy<T: Elem>(dy: &[T], g: &Geom, n0: usize, m: usize, out: &mut [T]) {
    let (p, cols) = (g.p(), m * g.p());
    out[..g.o * cols]
        .par_chunks_mut(cols)
        .enumerate()
        .for_each(|(oc, row)| {
            for i in 0..m {
                row[i * p..][..p].copy_from_slice(&dy[((n0 + i) * g.o + oc) * p..][..p]);
            }
        });
}

fn forward<T: Elem>(x: &[T], w: &[T], g: &Geom) -> Vec<T> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let mut y = vec![T::ZERO; g.n * o * p];
    let nc = g.chunk();
    let mut col = vec![T::ZERO; k * nc * p];
    let mut out = if nc > 1 {
        vec![T::ZERO; o * nc * p]
    } else {
        Vec::new()
    };
    let wm = MatRef::row_major(w, o, k);
    for n0 in (0..g.n).step_by(nc) {
        let m = nc.min(g.n - n0);
        let cols = m * p;
        im2col(x, g, n0, m, &mut col);
        let rhs = MatRef::row_major(&col[..k * cols], k, cols);
        if m == 1 {
            matmul(&mut y[n0 * o * p..(n0 + 1) * o * p], false, wm, rhs, true);
            continue;
        }
        matmul(&mut out[..o * cols], false, wm, rhs, true);
        let out = &out;
        y[n0 * o * p..(n0 + m) * o * p]
            .par_chunks_mut(o * p)
            .enumerate()
            .for_each(|(i, yi)| {
                for oc in 0..o {
                    yi[oc * p..][..p].copy_from_slice(&out[oc * cols + i * p..][..p]);
                }
            });
    }
    y
}

fn weight_grad<T: Elem>(x: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let mut dw = vec![T::ZERO; o * k];
    let nc = g.chunk();
    let mut col = vec![T::ZERO; k * nc * p];
    let mut dyc = vec![T::ZERO; o * nc * p];
    for n0 in (0..g.n).step_by(nc) {
        let m = nc.min(g.n - n0);
        let cols = m * p;
        im2col(x, g, n0, m, &mut col);
        gather_dy(dy, g, n0, m, &mut dyc);
        matmul(
            &mut dw,
            n0 > 0,
            MatRef::row_major(&dyc[..o * cols], o, cols),
            MatRef::row_major(&col[..k * cols], k, cols).t(),
            true,
        );
    }
    dw
}

fn input_grad<T: Elem>(w: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let (k, p, o) = (g.k(), g.p(), g.o);
    let mut dx = vec![T::ZERO; g.n * g.c * g.h * g.w];
    let nc = g.chunk();
    let mut dcol = vec![T::ZERO; k * nc * p];
    let mut dyc = vec![T::ZERO; o * nc * p];
    let wt = MatRef::row_major(w, o, k).t();
    for n0 in (0..g.n).step_by(nc) {
        let m = nc.min(g.n - n0);
        let cols = m * p;
        let rhs = if m == 1 {
            MatRef::row_major(&dy[n0 * o * p..(n0 + 1) * o * p], o, cols)
        } else {
            gather_dy(dy, g, n0, m, &mut dyc);
            MatRef::row_major(&dyc[..o * cols], o, cols)
        };
        matmul(&mut dcol[..k * cols], false, wt, rhs, true);
        col2im(&dcol, g, n0, m, &mut dx);
    }
    dx
}

/// Forward op on `(x, w)`.
struct Conv2dFwd {
    params: Conv2dParams,
    input_grad: bool,
}

impl CustomOp2 for Conv2dFwd {
    fn name(&self) -> &'static str {
        "conv2d-gemm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.params)?;
        let out = dispatch2!(self.name(), s1, l1, s2, l2, |x, w| forward(x, w, &g));
        Ok((out, Shape::from((g.n, g.o, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if self.input_grad && x.track_op() {
            let (_, _, h, wd) = x.dims4()?;
            Some(w.apply_op2_no_bwd(
                &grad,
                &Conv2dInputGrad {
                    params: self.params,
                    input_hw: (h, wd),
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let (_, _, kh, kw) = w.dims4()?;
            Some(x.apply_op2_no_bwd(
                &grad,
                &Conv2dWeightGrad {
                    params: self.params,
                    kernel: (kh, kw),
                },
            )?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `(w, dy) -> dx`.
struct Conv2dInputGrad {
    params: Conv2dParams,
    input_hw: (usize, usize),
}

impl CustomOp2 for Conv2dInputGrad {
    fn name(&self) -> &'static str {
        "conv2d-gemm-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (&[o, c, kh, kw], &[n, o2, _, _]) = (l1.dims(), l2.dims()) else {
            return Err(dims_err(self.name(), "weight and gradient must be 4-D"));
        };
        let (h, w) = self.input_hw;
        let g = Geom::new(&[n, c, h, w], &[o, c, kh, kw], self.params)?;
        if o2 != o || l2.dims()[2] != g.oh || l2.dims()[3] != g.ow {
            return Err(dims_err(
                self.name(),
                "gradient shape does not match the convolution",
            ));
        }
        let out = dispatch2!(self.name(), s1, l1, s2, l2, |wt, dy| input_grad(wt, dy, &g));
        Ok((out, Shape::from((n, c, h, w))))
    }
}

/// `(x, dy) -> dw`.
struct Conv2dWeightGrad {
    params: Conv2dParams,
    kernel: (usize, usize),
}

impl CustomOp2 for Conv2dWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-gemm-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (&[_, c, _, _], &[_, o, _, _]) = (l1.dims(), l2.dims()) else {
            return Err(dims_err(self.name(), "input and gradient must be 4-D"));
        };
        let (kh, kw) = self.kernel;
        let g = Geom::new(l1.dims(), &[o, c, kh, kw], self.params)?;
        if l2.dims() != [g.n, g.o, g.oh, g.ow] {
            return Err(dims_err(
                self.name(),
                "gradient shape does not match the convolution",
            ));
        }
        let out = dispatch2!(self.name(), s1, l1, s2, l2, |x, dy| weight_grad(x, dy, &g));
        Ok((out, Shape::from((o, c, kh, kw))))
    }
}

pub use vicreg_core::ops::supported;

/// Cross-correlation `x (N, C, H, W) * w (O, C, KH, KW) -> (N, O, OH, OW)`
/// (PyTorch `F.conv2d`, no bias, dilation 1, one group), differentiable in
/// both arguments. With `input_grad = false` the backward pass gives `x` no
/// gradient even when it is tracked (use it for the input images). Errors on
/// mismatched shapes/dtypes, non-CPU devices, or dtypes other than f32/f64.
pub fn conv2d_gemm(
    x: &Tensor,
    w: &Tensor,
    params: Conv2dParams,
    input_grad: bool,
) -> candle_core::Result<Tensor> {
    if !supported(x) || x.dtype() != w.dtype() || !w.device().same_device(x.device()) {
        candle_core::bail!(
            "conv2d-gemm: needs f32/f64 CPU tensors of one dtype, got {:?} on {:?} and {:?} on {:?}",
            x.dtype(),
            x.device(),
            w.dtype(),
            w.device()
        );
    }
    Geom::new(x.dims(), w.dims(), params)?;
    let x = if input_grad {
        x.contiguous()?
    } else {
        x.detach().contiguous()?
    };
    x.apply_op2(&w.contiguous()?, Conv2dFwd { params, input_grad })
}

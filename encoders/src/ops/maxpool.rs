//! 2-D max pooling as one candle custom op with an exact backward pass.
//!
//! Shapes: `x (N, C, H, W)` -> `y (N, C, OH, OW)` with
//! `OH = (H + 2 P - K) / S + 1` (floor, PyTorch `nn.MaxPool2d` with
//! `ceil_mode=False`), padding counting as `-inf`. The backward pass sends
//! each output's gradient to the first maximal element of its window in
//! row-major order (PyTorch's choice on ties), found again from `x` (no index
//! buffer is kept). Replaces a chain of ~10 candle ops per axis (padding,
//! strided `index_select`, `maximum`) and their backward passes on the
//! largest activation of the ResNet stem. f32 and f64 on CPU.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use candle_core::backend::BackendStorage;
use vicreg_core::ops::gemm::Elem;

/// Window geometry.
#[derive(Clone, Copy, Debug)]
struct Pool {
    kernel: usize,
    stride: usize,
    padding: usize,
}

#[derive(Clone, Copy, Debug)]
struct Dims {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Pool {
    fn dims(&self, d: &[usize], op: &str) -> candle_core::Result<Dims> {
        let &[n, c, h, w] = d else {
            candle_core::bail!("{op}: expected (N, C, H, W), got {d:?}");
        };
        if self.kernel == 0 || self.stride == 0 {
            candle_core::bail!(
                "{op}: kernel ({}) and stride ({}) must be >= 1",
                self.kernel,
                self.stride
            );
        }
        if 2 * self.padding > self.kernel {
            candle_core::bail!(
                "{op}: padding {} must be at most half the kernel {}",
                self.padding,
                self.kernel
            );
        }
        if h + 2 * self.padding < self.kernel || w + 2 * self.padding < self.kernel {
            candle_core::bail!(
                "{op}: input {d:?} (+2x{} padding) is smaller than the kernel {}",
                self.padding,
                self.kernel
            );
        }
        let out = |len: usize| (len + 2 * self.padding - self.kernel) / self.stride + 1;
        Ok(Dims {
            planes: n * c,
            h,
            w,
            oh: out(h),
            ow: out(w),
        })
    }

    /// Input index range `[lo, hi)` of window `o` along an axis of `len`.
    #[inline(always)]
    fn window(&self, o: usize, len: usize) -> (usize, usize) {
        let start = o * self.stride;
        let lo = start.saturating_sub(self.padding);
        let hi = (start + self.kernel).saturating_sub(self.padding).min(len);
        (lo, hi)
    }

    /// Flat in-plane index of the first maximum of window `(oy, ox)`.
    #[inline(always)]
    fn argmax<T: Elem>(&self, plane: &[T], d: &Dims, oy: usize, ox: usize) -> usize {
        let (y0, y1) = self.window(oy, d.h);
        let (x0, x1) = self.window(ox, d.w);
        let mut best = y0 * d.w + x0;
        let mut v = plane[best];
        for y in y0..y1 {
            let row = &plane[y * d.w..][..d.w];
            for (x, &e) in row.iter().enumerate().take(x1).skip(x0) {
                if e > v {
                    v = e;
                    best = y * d.w + x;
                }
            }
        }
        best
    }
}

fn forward<T: Elem>(x: &[T], d: &Dims, p: &Pool) -> Vec<T> {
    let (ip, op) = (d.h * d.w, d.oh * d.ow);
    let mut y = vec![T::ZERO; d.planes * op];
    y.par_chunks_mut(op.max(1))
        .zip(x.par_chunks(ip.max(1)))
        .for_each(|(yo, xi)| {
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    yo[oy * d.ow + ox] = xi[p.argmax(xi, d, oy, ox)];
                }
            }
        });
    y
}

fn backward<T: Elem>(x: &[T], dy: &[T], d: &Dims, p: &Pool) -> Vec<T> {
    let (ip, op) = (d.h * d.w, d.oh * d.ow);
    let mut dx = vec![T::ZERO; d.planes * ip];
    dx.par_chunks_mut(ip.max(1))
        .zip(x.par_chunks(ip.max(1)))
        .zip(dy.par_chunks(op.max(1)))
        .for_each(|((dxi, xi), dyi)| {
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    dxi[p.argmax(xi, d, oy, ox)] += dyi[oy * d.ow + ox];
                }
            }
        });
    dx
}

/// Forward op on `x`.
struct MaxPoolFwd(Pool);

impl CustomOp1 for MaxPoolFwd {
    fn name(&self) -> &'static str {
        "max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.0.dims(l.dims(), self.name())?;
        let out = match s.dtype() {
            DType::F32 => f32::storage(forward(f32::slice(s, l, self.name())?, &d, &self.0)),
            DType::F64 => f64::storage(forward(f64::slice(s, l, self.name())?, &d, &self.0)),
            t => candle_core::bail!("{}: unsupported dtype {t:?} (f32/f64 only)", self.name()),
        };
        let dims = l.dims();
        Ok((out, Shape::from((dims[0], dims[1], d.oh, d.ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(x.apply_op2_no_bwd(&grad, &MaxPoolBwd(self.0))?))
    }
}

/// `(x, dy) -> dx`.
struct MaxPoolBwd(Pool);

impl CustomOp2 for MaxPoolBwd {
    fn name(&self) -> &'static str {
        "max-pool2d-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.0.dims(l1.dims(), self.name())?;
        let dims = l1.dims();
        if l2.dims() != [dims[0], dims[1], d.oh, d.ow] {
            candle_core::bail!(
                "{}: gradient {:?} does not match the pooled shape of {dims:?}",
                self.name(),
                l2.dims()
            );
        }
        let out = match s1.dtype() {
            DType::F32 => f32::storage(backward(
                f32::slice(s1, l1, self.name())?,
                f32::slice(s2, l2, self.name())?,
                &d,
                &self.0,
            )),
            DType::F64 => f64::storage(backward(
                f64::slice(s1, l1, self.name())?,
                f64::slice(s2, l2, self.name())?,
                &d,
                &self.0,
            )),
            t => candle_core::bail!("{}: unsupported dtype {t:?} (f32/f64 only)", self.name()),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Max pooling of `x (N, C, H, W)` over `kernel x kernel` windows with
/// `stride` and `-inf` padding `padding` (PyTorch `nn.MaxPool2d`,
/// `ceil_mode=False`), differentiable in `x`. Errors on non-4-D input, a
/// zero kernel or stride, padding above half the kernel, an input smaller
/// than the kernel, non-CPU tensors or dtypes other than f32/f64.
pub fn max_pool2d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    if !super::conv2d::supported(x) {
        candle_core::bail!(
            "max-pool2d: needs an f32/f64 CPU tensor, got {:?} on {:?}",
            x.dtype(),
            x.device()
        );
    }
    let p = Pool {
        kernel,
        stride,
        padding,
    };
    p.dims(x.dims(), "max-pool2d")?;
    x.contiguous()?.apply_op1(MaxPoolFwd(p))
}

//! Fully connected layer `y = x w^T` as a candle custom op whose backward
//! pass writes both gradients directly in their final layout.
//!
//! Shapes: `x (B, I)`, `w (O, I)` (PyTorch / candle_nn layout), `y (B, O)`.
//! Backward: `dx = dy w` `(B, I)` and `dw = dy^T x` `(O, I)`, each one GEMM
//! on the `gemm` crate with strided operands (no transposed copies). candle's
//! `x.matmul(&w.t())` instead produces `dw` as an `(I, O)` matrix that goes
//! through the transpose's backward (a strided copy plus a zero-filled
//! accumulator each), which costs several full passes over a 256 MB gradient
//! for an 8192 x 8192 expander layer. f32 and f64 on CPU.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::gemm::{matmul, Elem, MatRef};
use super::supported;
use candle_core::backend::BackendStorage;

fn dims2(d: &[usize], what: &str, op: &str) -> candle_core::Result<(usize, usize)> {
    match d {
        &[a, b] => Ok((a, b)),
        _ => candle_core::bail!("{op}: {what} must be 2-D, got {d:?}"),
    }
}

/// Which product an op computes.
#[derive(Clone, Copy, Debug)]
enum Product {
    /// `(x, w) -> x w^T`.
    Forward,
    /// `(w, dy) -> dy w`.
    InputGrad,
    /// `(x, dy) -> dy^T x`.
    WeightGrad,
}

struct LinearOp(Product);

fn run<T: Elem>(p: Product, a: &[T], ad: (usize, usize), b: &[T], bd: (usize, usize)) -> Vec<T> {
    match p {
        Product::Forward => {
            let ((n, i), (o, _)) = (ad, bd);
            let mut y = vec![T::ZERO; n * o];
            let w = MatRef::row_major(b, o, i).t();
            matmul(&mut y, false, MatRef::row_major(a, n, i), w, true);
            y
        }
        Product::InputGrad => {
            let ((o, i), (n, _)) = (ad, bd);
            let mut dx = vec![T::ZERO; n * i];
            let dy = MatRef::row_major(b, n, o);
            matmul(&mut dx, false, dy, MatRef::row_major(a, o, i), true);
            dx
        }
        Product::WeightGrad => {
            let ((n, i), (_, o)) = (ad, bd);
            let mut dw = vec![T::ZERO; o * i];
            let dyt = MatRef::row_major(b, n, o).t();
            matmul(&mut dw, false, dyt, MatRef::row_major(a, n, i), true);
            dw
        }
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Product::Forward => "linear",
            Product::InputGrad => "linear-input-grad",
            Product::WeightGrad => "linear-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (a, b) = (
            dims2(l1.dims(), "first input", op)?,
            dims2(l2.dims(), "second input", op)?,
        );
        // (inner dimension of a, of b) that must agree, and the output shape.
        let (ka, kb, out) = match self.0 {
            Product::Forward => (a.1, b.1, (a.0, b.0)),
            Product::InputGrad => (a.0, b.1, (b.0, a.1)),
            Product::WeightGrad => (a.0, b.0, (b.1, a.1)),
        };
        if ka != kb {
            candle_core::bail!(
                "{op}: shapes {:?} and {:?} do not fit",
                l1.dims(),
                l2.dims()
            );
        }
        let s = match s1.dtype() {
            DType::F32 => f32::storage(run(
                self.0,
                f32::slice(s1, l1, op)?,
                a,
                f32::slice(s2, l2, op)?,
                b,
            )),
            DType::F64 => f64::storage(run(
                self.0,
                f64::slice(s1, l1, op)?,
                a,
                f64::slice(s2, l2, op)?,
                b,
            )),
            t => candle_core::bail!("{op}: unsupported dtype {t:?} (f32/f64 only)"),
        };
        Ok((s, Shape::from(out)))
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
            Some(w.apply_op2_no_bwd(&grad, &LinearOp(Product::InputGrad))?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &LinearOp(Product::WeightGrad))?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `x (B, I) @ w^T (w: (O, I)) [+ bias (O,)] -> (B, O)`, differentiable in
/// all inputs; the same values as `candle_nn::Linear` (PyTorch `F.linear`).
/// Errors on non-2-D inputs, mismatched widths, non-CPU tensors or dtypes
/// other than f32/f64.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    if !supported(x) || x.dtype() != w.dtype() || !w.device().is_cpu() {
        candle_core::bail!(
            "linear: needs f32/f64 CPU tensors of one dtype, got {:?} on {:?} and {:?} on {:?}",
            x.dtype(),
            x.device(),
            w.dtype(),
            w.device()
        );
    }
    let y = x
        .contiguous()?
        .apply_op2(&w.contiguous()?, LinearOp(Product::Forward))?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

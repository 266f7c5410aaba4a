//! CPU primitives with hand-written backward passes, as candle custom ops:
//! a fully connected layer whose backward writes both gradients in their
//! final layout ([`linear`], used by the expander), and the GEMM wrapper the
//! `encoders` crate's convolution, BatchNorm and pooling ops build on
//! ([`gemm`]). Checked against finite differences (f64) and candle's stock
//! ops (f32). CPU only, f32 and f64; [`set_fast_ops`] switches every custom
//! op of the workspace off (benchmarks, cross-checks).

pub mod gemm;
mod linear;

pub use linear::linear;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

static FAST_OPS: AtomicBool = AtomicBool::new(true);

/// Process-wide switch between the custom ops (`true`, the default) and
/// candle's stock ops, here (the expander's layers) and in the `encoders`
/// crate (convolutions, BatchNorm, pooling). Meant for benchmarks and
/// cross-checks (before/after timings in one process); both paths compute the
/// same values.
pub fn set_fast_ops(enabled: bool) {
    FAST_OPS.store(enabled, Ordering::Relaxed);
}

/// Whether [`set_fast_ops`] currently selects the custom ops.
pub fn fast_ops_enabled() -> bool {
    FAST_OPS.load(Ordering::Relaxed)
}

/// Whether the custom ops take `x`: a CPU tensor of f32 or f64.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// `layer` applied to `x` of shape `(..., in)` (e.g. `(batch, in)` rows or
/// `(batch, seq, in)` tokens): through [`linear`] where the custom ops apply
/// (switched on, CPU, f32 / f64), else through candle's `Linear`. The same
/// values either way; the leading dimensions are kept.
pub fn linear_layer(layer: &candle_nn::Linear, x: &Tensor) -> candle_core::Result<Tensor> {
    let w = layer.weight();
    if !(fast_ops_enabled() && supported(x) && x.rank() >= 2 && w.dtype() == x.dtype()) {
        return candle_core::Module::forward(layer, x);
    }
    if x.rank() == 2 {
        return linear(x, w, layer.bias());
    }
    let dims = x.dims().to_vec();
    let (lead, inner) = dims.split_at(dims.len() - 1);
    let rows = x.reshape((lead.iter().product::<usize>(), inner[0]))?;
    let y = linear(&rows, w, layer.bias())?;
    let mut out = lead.to_vec();
    out.push(w.dim(0)?);
    y.reshape(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The custom layer and candle's agree in value and in every gradient,
    /// for rows and for `(batch, seq, in)` tokens.
    #[test]
    fn linear_layer_matches_candle_in_values_and_gradients() {
        check_against_candle(&[5, 7]);
        check_against_candle(&[2, 3, 7]);
    }

    fn check_against_candle(x_dims: &[usize]) {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, x_dims, &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 7), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f64, 1.0, 3, &dev).unwrap()).unwrap();
        let layer = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let run = |fast: bool| {
            set_fast_ops(fast);
            let y = linear_layer(&layer, x.as_tensor()).unwrap();
            let loss = y.sqr().unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            set_fast_ops(true);
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let grads: Vec<Vec<f64>> = [&x, &w, &b]
                .iter()
                .map(|p| v(g.get(p.as_tensor()).unwrap()))
                .collect();
            (v(&y), grads)
        };
        let (fast, stock) = (run(true), run(false));
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-12);
        assert!(close(&fast.0, &stock.0));
        for (a, b) in fast.1.iter().zip(&stock.1) {
            assert!(close(a, b), "{a:?} vs {b:?}");
        }
    }
}

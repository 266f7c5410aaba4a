//! 1-D max pooling built from `narrow` + `maximum`.
//!
//! candle's `max_pool2d` backward is wrong (it fails when kernel != stride and
//! scales the gradient by 1/k^2 otherwise), so the pooling here uses only ops
//! whose gradients are exact: the window maximum is a chain of elementwise
//! `maximum`s over `kernel` shifted views, and the stride is applied afterwards
//! by viewing the time axis as `(out_len, stride)` and keeping column 0.
//! Ties split the gradient equally between the tied inputs (candle's
//! `maximum` convention; PyTorch sends it all to the first).

use candle_core::{Tensor, D};

use super::conv1d::conv_out_len;

/// Max pooling over the last axis of `x` `(batch, channels, time)` with PyTorch
/// `F.max_pool1d` semantics (floor mode, implicit `-inf` padding of `padding`
/// samples on both ends, `padding <= kernel / 2`). Returns
/// `(batch, channels, (time + 2 * padding - kernel) / stride + 1)`.
pub fn max_pool1d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    if kernel == 0 || stride == 0 || padding > kernel / 2 {
        candle_core::bail!("max_pool1d: need kernel > 0, stride > 0 and padding <= kernel / 2 (got {kernel}, {stride}, {padding})");
    }
    let Some(out_len) = conv_out_len(t, kernel, stride, padding) else {
        candle_core::bail!("max_pool1d: input of {t} samples (padding {padding}) is shorter than the kernel {kernel}");
    };
    let x = if padding > 0 {
        let pad = (Tensor::ones((b, c, padding), x.dtype(), x.device())? * f64::NEG_INFINITY)?;
        Tensor::cat(&[&pad, x, &pad], 2)?
    } else {
        x.clone()
    };
    let dense_len = t + 2 * padding - kernel + 1;
    // Stride-1 window maximum: m[i] = max_j x[i + j].
    let mut m = x.narrow(D::Minus1, 0, dense_len)?;
    for j in 1..kernel {
        m = m.maximum(&x.narrow(D::Minus1, j, dense_len)?)?;
    }
    if stride == 1 {
        return Ok(m);
    }
    subsample(&m, stride, out_len)
}

/// Elements `0, stride, ..., (n - 1) * stride` of the last axis of a 3-D tensor.
fn subsample(m: &Tensor, stride: usize, n: usize) -> candle_core::Result<Tensor> {
    let (b, c, len) = m.dims3()?;
    let need = n * stride;
    let m = if len >= need {
        m.narrow(D::Minus1, 0, need)?
    } else {
        // The tail beyond the last kept element only fills the reshape.
        m.pad_with_zeros(D::Minus1, 0, need - len)?
    };
    m.reshape((b, c, n, stride))?
        .narrow(D::Minus1, 0, 1)?
        .squeeze(D::Minus1)
}

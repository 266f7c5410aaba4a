//! Fast CPU primitives for training convolutional encoders, as candle custom
//! ops with hand-written backward passes: GEMM-based 2-D convolution
//! ([`conv2d_gemm`]: forward, input gradient and weight gradient are each
//! one large GEMM per chunk of images) and fused train-mode BatchNorm
//! (+ optional ReLU, [`batch_norm_train`]) and 2-D max pooling
//! ([`max_pool2d`]), and a fully connected layer whose backward writes
//! the weight gradient in place of a transposed copy ([`linear`]).
//!
//! candle's stock conv backward runs at 13-25 GFLOP/s on CPU and its
//! BatchNorm is a chain of ~10 elementwise/reduction passes, which made a
//! ResNet training step several times slower than PyTorch; these ops are
//! checked against finite differences (f64) and against the stock ops'
//! forward (f32) in `tests/ops_*.rs`. CPU only, f32 and f64.

mod batchnorm;
mod conv2d;
mod gemm;
mod linear;
mod maxpool;

pub use batchnorm::{batch_norm_train, BatchNormTrainOutput};
pub use conv2d::{conv2d_gemm, supported, Conv2dParams, COL_BUDGET};
pub use linear::linear;
pub use maxpool::max_pool2d;

use std::sync::atomic::{AtomicBool, Ordering};

static FAST_OPS: AtomicBool = AtomicBool::new(true);

/// Process-wide switch between these custom ops (`true`, the default) and
/// candle's stock conv2d / BatchNorm in [`crate::resnet::ops`] and the 1-D
/// audio convolution. Meant for benchmarks and cross-checks (before/after
/// timings in one process); both paths compute the same values.
pub fn set_fast_ops(enabled: bool) {
    FAST_OPS.store(enabled, Ordering::Relaxed);
}

/// Whether [`set_fast_ops`] currently selects the custom ops.
pub fn fast_ops_enabled() -> bool {
    FAST_OPS.load(Ordering::Relaxed)
}

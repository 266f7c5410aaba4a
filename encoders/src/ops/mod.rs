//! Fast CPU primitives for training convolutional encoders, as candle custom
//! ops with hand-written backward passes: GEMM-based 2-D convolution
//! ([`conv2d_gemm`]: forward, input gradient and weight gradient are each
//! one large GEMM per chunk of images), fused train-mode BatchNorm
//! (+ optional ReLU, [`batch_norm_train`]), 2-D max pooling
//! ([`max_pool2d`]) and the depthwise convolution of ConvNeXt
//! ([`depthwise_conv2d`]); the fully connected layer [`linear`] is
//! `vicreg_core::ops::linear`.
//!
//! candle's stock conv backward runs at 13-25 GFLOP/s on CPU and its
//! BatchNorm is a chain of ~10 elementwise/reduction passes, which made a
//! ResNet training step several times slower than PyTorch; these ops are
//! checked against finite differences (f64) and against the stock ops'
//! forward (f32) in `tests/ops_*.rs`. CPU only, f32 and f64.

/// An error message prefixed by the op's name.
fn dims_err(op: &str, what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: {what}"))
}

/// Dispatches `f` on the dtype (f32 / f64) of two CPU storages, each borrowed
/// as a contiguous slice ([`vicreg_core::ops::gemm::Elem`]).
macro_rules! dispatch2 {
    ($op:expr, $s1:expr, $l1:expr, $s2:expr, $l2:expr, |$a:ident, $b:ident| $body:expr) => {
        match $s1.dtype() {
            DType::F32 => {
                let $a = <f32 as Elem>::slice($s1, $l1, $op)?;
                let $b = <f32 as Elem>::slice($s2, $l2, $op)?;
                <f32 as Elem>::storage($body)
            }
            DType::F64 => {
                let $a = <f64 as Elem>::slice($s1, $l1, $op)?;
                let $b = <f64 as Elem>::slice($s2, $l2, $op)?;
                <f64 as Elem>::storage($body)
            }
            d => {
                return Err(super::dims_err(
                    $op,
                    &format!("unsupported dtype {d:?} (f32/f64 only)"),
                ))
            }
        }
    };
}

mod batchnorm;
mod conv2d;
mod depthwise;
mod maxpool;

pub use batchnorm::{batch_norm_train, BatchNormTrainOutput};
pub use conv2d::{conv2d_gemm, supported, Conv2dParams, COL_BUDGET};
pub use depthwise::depthwise_conv2d;
pub use maxpool::max_pool2d;
/// The fully connected layer and the process-wide switch live in
/// `vicreg_core::ops` (the expander uses them too); [`set_fast_ops`] also
/// selects candle's stock conv2d / BatchNorm in [`crate::resnet::ops`] and
/// the 1-D audio convolution.
pub use vicreg_core::ops::{fast_ops_enabled, linear, set_fast_ops};

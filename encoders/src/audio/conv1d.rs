//! 1-D convolution computed as a height-1 2-D convolution.
//!
//! candle 0.11's own `conv1d` has wrong gradients (the weight gradient always,
//! the input gradient whenever padding is 0), so every 1-D convolution of the
//! audio encoders goes through [`conv1d_via_conv2d`]: `(B, C, T)` is viewed as
//! `(B, C, 1, T)`, the `(O, C, K)` kernel as `(O, C, 1, K)`, zero padding is
//! applied to the time axis only (candle's conv2d padding would also pad the
//! height), samples beyond the last window are dropped (candle's conv2d
//! backward cannot size the input gradient for them along the width), and the
//! result is viewed back as `(B, O, T')`. The gradients of
//! this path are checked against finite differences in `tests/audio_gradcheck.rs`.

use candle_core::{Module, Tensor, D};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};

/// Output length of a 1-D convolution or pooling window sweep (PyTorch floor mode):
/// `(samples + 2 * padding - kernel) / stride + 1`, or `None` when the padded
/// input is shorter than the kernel or `stride` is 0.
pub fn conv_out_len(samples: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = samples + 2 * padding;
    if stride == 0 || kernel == 0 || padded < kernel {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

/// Cross-correlation of `x` `(batch, in_channels, time)` with `weight`
/// `(out_channels, in_channels, kernel)`, zero padding of `padding` samples on
/// both ends of the time axis, no dilation, no groups, no bias (PyTorch
/// `F.conv1d` semantics). Returns `(batch, out_channels, time')` with
/// `time' = (time + 2 * padding - kernel) / stride + 1`.
pub fn conv1d_via_conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let (o, ci, k) = weight.dims3()?;
    if ci != c {
        candle_core::bail!(
            "conv1d: input has {c} channels but the kernel {:?} expects {ci}",
            weight.dims()
        );
    }
    let Some(t_out) = conv_out_len(t, k, stride, padding) else {
        candle_core::bail!("conv1d: input of {t} samples (padding {padding}) is shorter than the kernel {k} or stride is 0");
    };
    let x = if padding > 0 {
        x.pad_with_zeros(D::Minus1, padding, padding)?
    } else {
        x.clone()
    };
    // Drop the tail no window reaches: candle's conv2d backward sizes the input
    // gradient from the height alone and would miss those samples along the width.
    let used = (t_out - 1) * stride + k;
    let x = if used < t + 2 * padding {
        x.narrow(D::Minus1, 0, used)?
    } else {
        x
    };
    let x4 = x.reshape((b, c, 1, used))?;
    let w4 = weight.reshape((o, ci, 1, k))?;
    let y =
        if crate::ops::fast_ops_enabled() && crate::ops::supported(&x4) && w4.dtype() == x4.dtype()
        {
            // GEMM custom op (see `crate::ops`): stride along the time axis only.
            let params = crate::ops::Conv2dParams {
                stride: (1, stride),
                padding: (0, 0),
            };
            crate::ops::conv2d_gemm(&x4, &w4, params, true)?
        } else {
            x4.conv2d(&w4, 0, stride, 1, 1)?
        };
    y.reshape((b, o, t_out))
}

/// A bias-free 1-D convolution layer (the kind ResNets use before BatchNorm).
///
/// Weight `weight` of shape `(out_channels, in_channels, kernel)` (PyTorch
/// `nn.Conv1d` layout and name), initialised Kaiming-normal with `fan_out`
/// (`out_channels * kernel`) and ReLU gain, as torchvision initialises ResNets.
#[derive(Clone, Debug)]
pub struct Conv1d {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv1d {
    /// Creates (or fetches) `weight` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        if in_channels == 0 || out_channels == 0 || kernel == 0 || stride == 0 {
            candle_core::bail!(
                "conv1d {}: channels ({in_channels} -> {out_channels}), kernel ({kernel}) and stride ({stride}) must be positive",
                vb.prefix()
            );
        }
        let init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        let weight = vb.get_with_hints((out_channels, in_channels, kernel), "weight", init)?;
        Ok(Self {
            weight,
            stride,
            padding,
        })
    }

    /// The `(out_channels, in_channels, kernel)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Output length for an input of `samples` time steps (`None` if too short).
    pub fn out_len(&self, samples: usize) -> Option<usize> {
        conv_out_len(
            samples,
            self.weight.dim(2).unwrap_or(0),
            self.stride,
            self.padding,
        )
    }
}

impl Module for Conv1d {
    /// `(batch, in_channels, time)` -> `(batch, out_channels, time')`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv1d_via_conv2d(x, &self.weight, self.stride, self.padding)
    }
}

//! The convolution and BatchNorm primitives of the ResNet family, in one
//! place so that faster implementations (custom ops) can replace them without
//! touching the network code.
//!
//! Conventions: activations are `(batch, channels, height, width)`; conv
//! weights are `(out_channels, in_channels, kh, kw)` without bias, as in
//! torchvision; BatchNorm uses eps `1e-5` and momentum `0.1` (PyTorch:
//! `running = 0.9 running + 0.1 batch`, unbiased batch variance for the
//! running variance, biased for the normalisation).
//!
//! On CPU in f32/f64 (and while [`crate::ops::fast_ops_enabled`]), the
//! convolutions run as GEMM custom ops ([`crate::ops::conv2d_gemm`]) and
//! train-mode BatchNorm as one fused op ([`crate::ops::batch_norm_train`]);
//! elsewhere candle's stock ops compute the same values.

use candle_core::{CpuStorage, CustomOp2, Layout, ModuleT, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{BatchNormConfig, Init, VarBuilder};
use vicreg_core::collective::{sync_batch_norm_train, sync_batchnorm};

use crate::ops::{batch_norm_train, conv2d_gemm, fast_ops_enabled, supported, Conv2dParams};

/// Whether the custom ops handle `x` (and `w`, of the same dtype).
fn use_fast(x: &Tensor, w: &Tensor) -> bool {
    fast_ops_enabled() && supported(x) && w.dtype() == x.dtype() && w.device().is_cpu()
}

/// BatchNorm epsilon (PyTorch default).
pub const BN_EPS: f64 = 1e-5;
/// BatchNorm running-statistics momentum (PyTorch default).
pub const BN_MOMENTUM: f64 = 0.1;

/// torchvision's conv init: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
/// i.e. normal with std `sqrt(2 / (out_channels * kh * kw))`.
pub fn kaiming_fan_out_relu() -> Init {
    Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::ReLU,
    }
}

/// `x (N, C_in, H, W) * w (C_out, C_in, k, k)` with zero padding, dilation 1,
/// one group. Gradients flow to both `x` and `w`.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    if use_fast(x, w) {
        return conv2d_gemm(x, w, Conv2dParams::square(stride, padding), true);
    }
    x.conv2d(w, padding, stride, 1, 1)
}

/// Same value as [`conv2d`], but the backward pass computes only the weight
/// gradient: for the stem convolution, whose input is the image batch, the
/// (large and useless) input gradient is never computed. `x` is treated as a
/// constant.
pub fn conv2d_no_input_grad(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    if use_fast(x, w) {
        return conv2d_gemm(x, w, Conv2dParams::square(stride, padding), false);
    }
    let x = x.detach();
    let y = conv2d(&x, &w.detach(), stride, padding)?.contiguous()?;
    if !w.track_op() {
        // Nothing to differentiate: no need for the graph node.
        return Ok(y);
    }
    w.apply_op2(&y, KernelGradOnly { x, stride, padding })
}

/// A graph node `(w, y) -> y` whose backward pass gives `w` the convolution
/// weight gradient of `y = conv2d(x, w)` and gives `x` nothing.
struct KernelGradOnly {
    x: Tensor,
    stride: usize,
    padding: usize,
}

impl CustomOp2 for KernelGradOnly {
    fn name(&self) -> &'static str {
        "conv2d-kernel-grad-only"
    }

    fn cpu_fwd(
        &self,
        _w: &CpuStorage,
        _lw: &Layout,
        y: &CpuStorage,
        ly: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if !ly.is_contiguous() || ly.start_offset() != 0 {
            candle_core::bail!(
                "conv2d-kernel-grad-only: the precomputed output must be contiguous"
            );
        }
        Ok((y.clone(), ly.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _w: &candle_core::CudaStorage,
        _lw: &Layout,
        y: &candle_core::CudaStorage,
        ly: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        Ok((y.try_clone(ly)?, ly.shape().clone()))
    }

    fn bwd(
        &self,
        w: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // dL/dw[o, i, a, b] = sum_{n, p, q} grad[n, o, p, q] x_pad[n, i, s p + a, s q + b]:
        // a convolution of x (channels as batch) with grad (batch as channels),
        // dilated by the stride.
        let (_, _, kh, kw) = w.dims4()?;
        let g = self
            .x
            .transpose(0, 1)?
            .conv2d(&grad.transpose(0, 1)?, self.padding, 1, self.stride, 1)?
            .transpose(0, 1)?;
        let (_, _, gh, gw) = g.dims4()?;
        let g = if gh != kh || gw != kw {
            g.narrow(2, 0, kh)?.narrow(3, 0, kw)?
        } else {
            g
        };
        Ok((Some(g.to_dtype(w.dtype())?), None))
    }
}

/// A bias-free 2-D convolution layer with a square kernel.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// Creates (or fetches) `weight` of shape `(out_c, in_c, k, k)` under `vb`,
    /// initialised Kaiming-normal fan-out (ReLU gain).
    pub fn new(
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let weight = vb.get_with_hints(
            (out_c, in_c, kernel, kernel),
            "weight",
            kaiming_fan_out_relu(),
        )?;
        Ok(Self {
            weight,
            stride,
            padding,
        })
    }

    /// The weight `(out_c, in_c, k, k)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `(N, in_c, H, W)` -> `(N, out_c, H', W')`, gradients to input and weight.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv2d(x, &self.weight, self.stride, self.padding)
    }

    /// Like [`Conv2d::forward`], but no gradient is computed for `x`.
    pub fn forward_no_input_grad(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv2d_no_input_grad(x, &self.weight, self.stride, self.padding)
    }

    /// Appends `(prefix + "weight", tensor)`.
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((format!("{prefix}weight"), self.weight.clone()));
    }
}

/// 2-D BatchNorm over the channel axis of `(N, C, H, W)` tensors, with
/// torchvision's tensor names `weight`, `bias`, `running_mean`, `running_var`.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    bn: candle_nn::BatchNorm,
    /// The same storage as `bn`'s running statistics (updated by the fused path).
    running_mean: Var,
    running_var: Var,
}

impl BatchNorm2d {
    /// Creates (or fetches) the four tensors under `vb`: weight 1 (or 0 when
    /// `zero_weight`, for zero-initialised residual branches), bias 0,
    /// running mean 0, running variance 1.
    pub fn new(channels: usize, zero_weight: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        if zero_weight {
            // Creates the weight first with a zero hint; batch_norm then fetches it.
            vb.get_with_hints(channels, "weight", Init::Const(0.0))?;
        }
        let cfg = BatchNormConfig {
            eps: BN_EPS,
            remove_mean: true,
            affine: true,
            momentum: BN_MOMENTUM,
        };
        let bn = candle_nn::batch_norm(channels, cfg, vb)?;
        Ok(Self {
            running_mean: Var::from_tensor(bn.running_mean())?,
            running_var: Var::from_tensor(bn.running_var())?,
            bn,
        })
    }

    /// Train mode normalises with the batch statistics (mean and biased
    /// variance over N, H, W) and updates the running statistics; eval mode
    /// uses the running statistics. With a BatchNorm sync group set on this
    /// thread ([`vicreg_core::collective::set_sync_batchnorm`]) the train-mode
    /// statistics are those of every rank's batch.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_fused(x, train, false)
    }

    /// `relu(forward_t(x, train))`, fused into the BatchNorm op in train mode.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_fused(x, train, true)
    }

    fn forward_fused(&self, x: &Tensor, train: bool, relu: bool) -> candle_core::Result<Tensor> {
        let affine = self.bn.weight_and_bias();
        if let Some(group) = sync_batchnorm().filter(|_| train) {
            // Synchronized BatchNorm: statistics of every rank's batch.
            let y = sync_batch_norm_train(
                x,
                affine,
                &self.running_mean,
                &self.running_var,
                BN_EPS,
                BN_MOMENTUM,
                &group,
            )?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let fast = match affine {
            Some((w, _)) => train && use_fast(x, w),
            None => false,
        };
        let Some((w, b)) = affine.filter(|_| fast) else {
            let y = self.bn.forward_t(x, train)?;
            return if relu { y.relu() } else { Ok(y) };
        };
        let out = batch_norm_train(x, w, b, BN_EPS, relu)?;
        let m = out.count as f64;
        let rm = self.running_mean.as_tensor();
        let rv = self.running_var.as_tensor();
        let mean = out.mean.to_dtype(rm.dtype())?;
        let var = out.var.to_dtype(rv.dtype())?;
        self.running_mean
            .set(&((rm * (1.0 - BN_MOMENTUM))? + (mean * BN_MOMENTUM)?)?)?;
        self.running_var
            .set(&((rv * (1.0 - BN_MOMENTUM))? + (var * (BN_MOMENTUM * m / (m - 1.0)))?)?)?;
        Ok(out.y)
    }

    /// Appends the four tensors under `prefix`.
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        if let Some((w, b)) = self.bn.weight_and_bias() {
            out.push((format!("{prefix}weight"), w.clone()));
            out.push((format!("{prefix}bias"), b.clone()));
        }
        out.push((
            format!("{prefix}running_mean"),
            self.bn.running_mean().clone(),
        ));
        out.push((
            format!("{prefix}running_var"),
            self.bn.running_var().clone(),
        ));
    }
}

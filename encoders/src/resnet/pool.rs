//! Pooling with exact gradients.
//!
//! candle's `max_pool2d` backward fails when kernel != stride and its
//! `avg_pool2d` backward is only right when kernel == stride, so the ResNet
//! uses these instead: a max pool built from padding, strided selection and
//! elementwise `maximum`, and a global average pool as a mean over H and W.

use candle_core::Tensor;

/// Max pooling of `(N, C, H, W)` over `kernel x kernel` windows with `stride`
/// and implicit `-inf` padding `padding` (PyTorch `nn.MaxPool2d` with
/// `ceil_mode=False`): output size `floor((H + 2 padding - kernel) / stride) + 1`.
///
/// The window maximum is taken separably (rows, then columns), which is
/// exact. Gradients go to the maximal element of each window (split evenly
/// between exact ties, where PyTorch picks one).
pub fn max_pool2d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    if x.rank() != 4 {
        candle_core::bail!("max_pool2d expects (N, C, H, W), got {:?}", x.dims());
    }
    if kernel == 0 || stride == 0 {
        candle_core::bail!("max_pool2d: kernel ({kernel}) and stride ({stride}) must be >= 1");
    }
    if 2 * padding > kernel {
        candle_core::bail!(
            "max_pool2d: padding {padding} must be at most half the kernel {kernel}"
        );
    }
    let h = max_pool_axis(x, 2, kernel, stride, padding)?;
    max_pool_axis(&h, 3, kernel, stride, padding)
}

/// The stem pooling of torchvision's ResNet: 3x3 windows, stride 2, padding 1.
/// With fast ops on (the default) and an f32/f64 CPU tensor this is the
/// single custom op [`crate::ops::max_pool2d`] (same values; the gradient of
/// an exact tie goes to the first maximum, as in PyTorch), otherwise the
/// separable op chain of [`max_pool2d`].
pub fn stem_max_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    max_pool2d_any(x, 3, 2, 1)
}

/// Max pooling like [`max_pool2d`], through the custom op
/// [`crate::ops::max_pool2d`] where it applies (fast ops on, f32/f64 CPU
/// tensor), else through the separable op chain. The same values either way.
pub fn max_pool2d_any(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    if crate::ops::fast_ops_enabled() && crate::ops::supported(x) {
        crate::ops::max_pool2d(x, kernel, stride, padding)
    } else {
        max_pool2d(x, kernel, stride, padding)
    }
}

/// 1-D max pooling along `dim`.
fn max_pool_axis(
    x: &Tensor,
    dim: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let len = x.dim(dim)?;
    if len + 2 * padding < kernel {
        candle_core::bail!(
            "max_pool2d: input size {len} (+2x{padding} padding) is smaller than the kernel {kernel}"
        );
    }
    let out = (len + 2 * padding - kernel) / stride + 1;
    let xp = if padding > 0 {
        let mut pad_shape = x.dims().to_vec();
        pad_shape[dim] = padding;
        let pad = Tensor::full(f64::NEG_INFINITY, pad_shape, x.device())?.to_dtype(x.dtype())?;
        Tensor::cat(&[&pad, x, &pad], dim)?
    } else {
        x.clone()
    };
    let mut acc: Option<Tensor> = None;
    for k in 0..kernel {
        // Window element k of output o sits at padded index stride * o + k.
        let idx: Vec<u32> = (0..out).map(|o| (stride * o + k) as u32).collect();
        let idx = Tensor::from_vec(idx, out, x.device())?;
        let tap = xp.index_select(&idx, dim)?;
        acc = Some(match acc {
            None => tap,
            Some(a) => a.maximum(&tap)?,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("max_pool2d: kernel size 0".into()))
}

/// Global average pooling: `(N, C, H, W)` -> `(N, C)`, the mean over H and W
/// (PyTorch `AdaptiveAvgPool2d(1)` followed by `flatten(1)`).
pub fn global_avg_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.rank() != 4 {
        candle_core::bail!("global_avg_pool expects (N, C, H, W), got {:?}", x.dims());
    }
    x.flatten_from(2)?.mean(2)
}

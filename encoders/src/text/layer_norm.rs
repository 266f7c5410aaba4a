//! Layer normalisation that autograd sees.
//!
//! candle's fused `candle_nn::LayerNorm` records no gradient (upstream issues
//! 2168, 2977, 3011). [`layer_norm`] runs this crate's fused CPU kernel with a
//! hand-written backward ([`super::fused`]) on CPU F32/F64 tensors and
//! [`layer_norm_composite`] (plain `mean`/`sub`/`sqr`/`sqrt`/`div`) elsewhere;
//! both are covered by finite-difference gradient checks
//! (`tests/text_gradcheck.rs`, `tests/text_fused.rs`).

use candle_core::{DType, Tensor, D};
use candle_nn::{Init, VarBuilder};

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` over the last dimension,
/// with the BIASED variance (divide by n), as in PyTorch / HF BERT.
///
/// `x`: `(..., n)`; `weight`, `bias`: `(n)`. Fused kernel on CPU F32/F64,
/// [`layer_norm_composite`] otherwise.
pub fn layer_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    if super::fused::fused_available(&[x, weight, bias]) {
        super::fused::layer_norm_fused(x, weight, bias, eps)
    } else {
        layer_norm_composite(x, weight, bias, eps)
    }
}

/// [`layer_norm`] composed from basic ops (any device and float dtype;
/// F16/BF16 inputs are normalised in F32).
pub fn layer_norm_composite(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let in_dtype = x.dtype();
    let x = match in_dtype {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    };
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed
        .to_dtype(in_dtype)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// A layer norm with learned `weight` (init 1) and `bias` (init 0), HF names
/// `<prefix>.weight` / `<prefix>.bias`.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Builds (or fetches) the parameters under `vb`.
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
            eps,
        })
    }

    /// Normalises the last dimension of `x` (`(..., size)`).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }

    /// `(weight, bias)`, each `(size)`.
    pub fn parameters(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }
}

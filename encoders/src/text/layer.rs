//! One transformer layer: self-attention and a GELU MLP, each with a residual
//! connection and a layer norm (post-LN as in BERT, or pre-LN).

use candle_core::Tensor;
use candle_nn::{Linear, VarBuilder};
use vicreg_core::ops::linear_layer;

use super::attention::{bert_linear, SelfAttention};
use super::dropout::{Dropout, DropoutRng};
use super::layer_norm::LayerNorm;
use super::{BertConfig, HiddenAct, NormPosition};

/// Exact GELU `x * (1 + erf(x / sqrt 2)) / 2` with an exact gradient: the
/// fused kernel of [`super::fused`] on CPU F32/F64, [`gelu_composite`] otherwise.
///
/// Not candle's `gelu_erf`: its forward is the same, but its backward uses
/// the 6-digit constant 0.398942 for `1/sqrt(2 pi)` (absolute gradient error
/// up to ~2e-7, a 4e-5 relative error in an F64 gradient check; see
/// `tests/text_gradcheck.rs`).
pub fn gelu_exact(x: &Tensor) -> candle_core::Result<Tensor> {
    if super::fused::fused_available(&[x]) {
        super::fused::gelu_fused(x)
    } else {
        gelu_composite(x)
    }
}

/// Exact GELU composed from `erf` (whose backward is the exact
/// `2/sqrt(pi) exp(-x^2)`) and arithmetic; any device and float dtype.
pub fn gelu_composite(x: &Tensor) -> candle_core::Result<Tensor> {
    let cdf = ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5;
    x * cdf?
}

/// Applies the MLP activation: `Gelu` is [`gelu_exact`], `GeluTanh` candle's
/// tanh approximation, `Relu` ReLU.
pub fn activation(x: &Tensor, act: HiddenAct) -> candle_core::Result<Tensor> {
    match act {
        HiddenAct::Gelu => gelu_exact(x),
        HiddenAct::GeluTanh => x.gelu(),
        HiddenAct::Relu => x.relu(),
    }
}

/// `encoder.layer.<i>`: `attention.{self.*, output.dense, output.LayerNorm}`,
/// `intermediate.dense`, `output.{dense, LayerNorm}`.
#[derive(Clone, Debug)]
pub struct BertLayer {
    attention: SelfAttention,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    act: HiddenAct,
    norm_position: NormPosition,
    dropout: Dropout,
}

impl BertLayer {
    /// Builds the layer under `vb` (conventionally `encoder.layer.<i>`).
    pub fn new(cfg: &BertConfig, rng: DropoutRng, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        Ok(Self {
            attention: SelfAttention::new(cfg, rng.clone(), vb.pp("attention"))?,
            attention_norm: LayerNorm::new(
                h,
                cfg.layer_norm_eps,
                vb.pp("attention").pp("output").pp("LayerNorm"),
            )?,
            intermediate: bert_linear(
                h,
                cfg.intermediate_size,
                std,
                vb.pp("intermediate").pp("dense"),
            )?,
            output: bert_linear(cfg.intermediate_size, h, std, vb.pp("output").pp("dense"))?,
            output_norm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            act: cfg.hidden_act,
            norm_position: cfg.norm_position,
            dropout: Dropout::new(cfg.hidden_dropout_prob, rng),
        })
    }

    fn mlp(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = activation(&linear_layer(&self.intermediate, x)?, self.act)?;
        self.dropout
            .forward(&linear_layer(&self.output, &h)?, train)
    }

    /// `x`: `(batch, seq, hidden)`, `bias`: see [`super::attention::attention_bias`].
    /// Returns `(batch, seq, hidden)`.
    pub fn forward(
        &self,
        x: &Tensor,
        bias: Option<&Tensor>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        match self.norm_position {
            NormPosition::Post => {
                let a = self
                    .dropout
                    .forward(&self.attention.forward(x, bias, train)?, train)?;
                let x = self.attention_norm.forward(&(x + a)?)?;
                let m = self.mlp(&x, train)?;
                self.output_norm.forward(&(x + m)?)
            }
            NormPosition::Pre => {
                let a = self
                    .attention
                    .forward(&self.attention_norm.forward(x)?, bias, train)?;
                let x = (x + self.dropout.forward(&a, train)?)?;
                let m = self.mlp(&self.output_norm.forward(&x)?, train)?;
                x + m
            }
        }
    }
}

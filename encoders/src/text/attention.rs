//! Multi-head self-attention with a padding mask (HF `attention.self` +
//! `attention.output.dense`).

use candle_core::{DType, Tensor};
use candle_nn::{Init, Linear, VarBuilder};
use vicreg_core::ops::linear_layer;

use super::dropout::{Dropout, DropoutRng};
use super::BertConfig;

/// A linear layer `x @ W^T + b` with HF BERT initialisation (weight
/// `N(0, std^2)`, bias 0) and names `<prefix>.weight` `(out, in)`, `<prefix>.bias` `(out)`.
pub fn bert_linear(
    in_dim: usize,
    out_dim: usize,
    std: f64,
    vb: VarBuilder,
) -> candle_core::Result<Linear> {
    let w = vb.get_with_hints(
        (out_dim, in_dim),
        "weight",
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )?;
    let b = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

/// The additive attention bias of a `(batch, seq)` float mask (1 = token):
/// 0 on tokens, a large negative number on padding, shaped `(batch, 1, 1, seq)`
/// so that it broadcasts over heads and query positions.
pub fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    let neg = match mask.dtype() {
        DType::F16 => -6.0e4,
        DType::BF16 => -1.0e30,
        _ => -1.0e9,
    };
    let (b, s) = mask.dims2()?;
    ((1.0 - mask)? * neg)?.reshape((b, 1, 1, s))
}

/// `softmax(q k^T / sqrt(d_head) + bias) v` per head, heads concatenated, then
/// the output projection. The score softmax is [`super::fused::softmax_last_dim`]
/// (differentiable), never candle's `softmax_last_dim` (no gradient).
#[derive(Clone, Debug)]
pub struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    heads: usize,
    head_dim: usize,
    probs_dropout: Dropout,
}

impl SelfAttention {
    /// Builds `self.{query,key,value}` and `output.dense` under `vb`
    /// (conventionally `encoder.layer.<i>.attention`).
    pub fn new(cfg: &BertConfig, rng: DropoutRng, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        let sv = vb.pp("self");
        Ok(Self {
            query: bert_linear(h, h, std, sv.pp("query"))?,
            key: bert_linear(h, h, std, sv.pp("key"))?,
            value: bert_linear(h, h, std, sv.pp("value"))?,
            output: bert_linear(h, h, std, vb.pp("output").pp("dense"))?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            probs_dropout: Dropout::new(cfg.attention_probs_dropout_prob, rng),
        })
    }

    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        x.reshape((b, s, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `x`: `(batch, seq, hidden)`; `bias`: `(batch, 1, 1, seq)` from
    /// [`attention_bias`] (or `None` when every position is a token).
    /// Returns `(batch, seq, hidden)` (before the residual connection).
    pub fn forward(
        &self,
        x: &Tensor,
        bias: Option<&Tensor>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let q = self.split_heads(&linear_layer(&self.query, x)?)?;
        let k = self.split_heads(&linear_layer(&self.key, x)?)?;
        let v = self.split_heads(&linear_layer(&self.value, x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (self.head_dim as f64).sqrt())?;
        let scores = match bias {
            Some(bias) => scores.broadcast_add(bias)?,
            None => scores,
        };
        let probs = super::fused::softmax_last_dim(&scores)?;
        let probs = self.probs_dropout.forward(&probs, train)?;
        let ctx = probs.matmul(&v)?; // (b, heads, s, head_dim)
        let ctx = ctx.transpose(1, 2)?.contiguous()?.reshape((b, s, h))?;
        linear_layer(&self.output, &ctx)
    }
}

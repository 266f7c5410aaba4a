//! A VSE++-style text encoder: word embeddings -> one-layer GRU -> the last
//! valid hidden state (or the mean over valid steps).
//!
//! The GRU is written with matmuls, `tanh` and a `tanh`-based sigmoid so that
//! every step is differentiable by candle's autograd (checked in
//! `tests/text_gradcheck.rs`). Gate order and names follow PyTorch `nn.GRU`:
//! `rnn.weight_ih_l0` `(3H, E)`, `rnn.weight_hh_l0` `(3H, H)`,
//! `rnn.bias_ih_l0`, `rnn.bias_hh_l0` `(3H)`, rows `[reset; update; new]`.

use candle_core::{Module, Tensor};
use candle_nn::{Embedding, Init, VarBuilder};
use serde::{Deserialize, Serialize};
use vicreg_core::model::Encoder;

use super::TextBatch;
use crate::{Error, Result};

/// How the GRU states become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GruPooling {
    /// The hidden state after the last token (masked steps keep the state, so
    /// this is the state at each sentence's own last token), as in VSE++.
    #[default]
    Last,
    /// Mean of the hidden states over the tokens.
    Mean,
}

/// Sizes of the GRU text encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GruConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Word-embedding width.
    pub embed_dim: usize,
    /// GRU state width (the representation size).
    pub hidden_size: usize,
    /// Sentence pooling.
    pub pooling: GruPooling,
}

impl Default for GruConfig {
    /// VSE++ (Faghri et al. 2018) sizes: 300-d word embeddings, 1024-d GRU,
    /// vocabulary 30000 (set it to the tokenizer's size).
    fn default() -> Self {
        Self {
            vocab_size: 30000,
            embed_dim: 300,
            hidden_size: 1024,
            pooling: GruPooling::Last,
        }
    }
}

impl GruConfig {
    /// VSE++ sizes (the default) with the given vocabulary size.
    pub fn vsepp(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            ..Self::default()
        }
    }

    /// A small model for CPU experiments: 128-d embeddings, 256-d GRU.
    pub fn small(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            embed_dim: 128,
            hidden_size: 256,
            pooling: GruPooling::Last,
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        if self.vocab_size == 0 || self.embed_dim == 0 || self.hidden_size == 0 {
            return Err(Error::config(format!(
                "GruConfig: vocab_size, embed_dim and hidden_size must be > 0 (got {}, {}, {})",
                self.vocab_size, self.embed_dim, self.hidden_size
            )));
        }
        Ok(())
    }
}

/// `sigmoid(x) = (1 + tanh(x / 2)) / 2`: overflow-free in both directions and
/// differentiable through candle's `tanh`.
pub fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    ((x * 0.5)?.tanh()? + 1.0)? * 0.5
}

/// One GRU step (PyTorch semantics).
///
/// `gi`: `(batch, 3H)` input projection `x W_ih^T + b_ih` of this step;
/// `h`: `(batch, H)` previous state; `w_hh`: `(3H, H)`; `b_hh`: `(3H)`.
/// `r = σ(gi_r + gh_r)`, `z = σ(gi_z + gh_z)`, `n = tanh(gi_n + r * gh_n)`,
/// returns `h' = (1 - z) * n + z * h`, `(batch, H)`.
pub fn gru_cell(
    gi: &Tensor,
    h: &Tensor,
    w_hh: &Tensor,
    b_hh: &Tensor,
) -> candle_core::Result<Tensor> {
    let hs = h.dim(1)?;
    let gh = h.matmul(&w_hh.t()?)?.broadcast_add(b_hh)?;
    let part = |t: &Tensor, i: usize| t.narrow(1, i * hs, hs);
    let r = sigmoid(&(part(gi, 0)? + part(&gh, 0)?)?)?;
    let z = sigmoid(&(part(gi, 1)? + part(&gh, 1)?)?)?;
    let n = (part(gi, 2)? + (r * part(&gh, 2)?)?)?.tanh()?;
    // (1 - z) * n + z * h  ==  n + z * (h - n)
    &n + (z * (h - &n)?)?
}

/// The GRU text encoder; implements [`Encoder`] over [`TextBatch`] with
/// `repr_dim = hidden_size`. Variables: `embed.weight` `(vocab, E)` and the
/// `rnn.*` tensors listed in the module docs.
pub struct GruTextEncoder {
    cfg: GruConfig,
    embed: Embedding,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
}

impl GruTextEncoder {
    /// Builds the encoder under `vb`: embeddings `U(-0.1, 0.1)` (VSE++),
    /// GRU weights and biases `U(-1/sqrt(H), 1/sqrt(H))` (PyTorch).
    pub fn new(cfg: &GruConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (e, h) = (cfg.embed_dim, cfg.hidden_size);
        let k = 1.0 / (h as f64).sqrt();
        let u = Init::Uniform { lo: -k, up: k };
        let emb = vb.pp("embed").get_with_hints(
            (cfg.vocab_size, e),
            "weight",
            Init::Uniform { lo: -0.1, up: 0.1 },
        )?;
        let rnn = vb.pp("rnn");
        Ok(Self {
            cfg: cfg.clone(),
            embed: Embedding::new(emb, e),
            w_ih: rnn.get_with_hints((3 * h, e), "weight_ih_l0", u)?,
            w_hh: rnn.get_with_hints((3 * h, h), "weight_hh_l0", u)?,
            b_ih: rnn.get_with_hints(3 * h, "bias_ih_l0", u)?,
            b_hh: rnn.get_with_hints(3 * h, "bias_hh_l0", u)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GruConfig {
        &self.cfg
    }

    /// All hidden states `(batch, seq, H)` (a masked step repeats the previous
    /// state) and the final state `(batch, H)`.
    pub fn states(&self, batch: &TextBatch) -> vicreg_core::Result<(Tensor, Tensor)> {
        batch.validate()?;
        let max_id = batch.ids.max_all()?.to_scalar::<u32>()? as usize;
        if max_id >= self.cfg.vocab_size {
            return Err(vicreg_core::Error::invalid(format!(
                "GruTextEncoder: token id {max_id} is outside the vocabulary of {} ids",
                self.cfg.vocab_size
            )));
        }
        let dev = self.w_ih.device();
        let dtype = self.w_ih.dtype();
        let (b, s) = batch.ids.dims2()?;
        let hs = self.cfg.hidden_size;
        let x = self.embed.forward(&batch.ids.to_device(dev)?)?; // (b, s, e)
        let gi = x
            .reshape((b * s, self.cfg.embed_dim))?
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&self.b_ih)?
            .reshape((b, s, 3 * hs))?;
        let mask = batch.mask_as(dtype)?.to_device(dev)?; // (b, s)
        let mut h = Tensor::zeros((b, hs), dtype, dev)?;
        let mut all = Vec::with_capacity(s);
        for t in 0..s {
            let gi_t = gi.narrow(1, t, 1)?.squeeze(1)?;
            let h_new = gru_cell(&gi_t, &h, &self.w_hh, &self.b_hh)?;
            let m = mask.narrow(1, t, 1)?; // (b, 1)
            h = (&h + (h_new - &h)?.broadcast_mul(&m)?)?;
            all.push(h.clone());
        }
        Ok((Tensor::stack(&all, 1)?, h))
    }
}

impl Encoder for GruTextEncoder {
    type Input = TextBatch;

    /// `(batch, hidden_size)`; there is no dropout, so `train` changes nothing.
    fn forward_t(&self, input: &TextBatch, _train: bool) -> vicreg_core::Result<Tensor> {
        let (all, last) = self.states(input)?;
        Ok(match self.cfg.pooling {
            GruPooling::Last => last,
            GruPooling::Mean => {
                let mask = input.mask_as(all.dtype())?.to_device(all.device())?;
                super::pooling::masked_mean(&all, &mask)?
            }
        })
    }

    fn repr_dim(&self) -> usize {
        self.cfg.hidden_size
    }
}

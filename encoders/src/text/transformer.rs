//! The BERT-style text encoder: embeddings, N layers, pooling.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vicreg_core::model::Encoder;

use super::attention::attention_bias;
use super::dropout::{dropout_rng, DropoutRng};
use super::embeddings::BertEmbeddings;
use super::layer::BertLayer;
use super::layer_norm::LayerNorm;
use super::pooling::{first_token, masked_mean};
use super::{BertConfig, NormPosition, TextBatch, TextPooling};
use crate::Result;

/// A trainable BERT encoder whose every op has a working gradient
/// (checked in `tests/text_gradcheck.rs` and `tests/text_transformer.rs`).
///
/// Variables, under the `VarBuilder` prefix it is built with, carry the HF
/// `BertModel` names: `embeddings.word_embeddings.weight`,
/// `encoder.layer.0.attention.self.query.weight`, ... (pre-LN models add
/// `encoder.LayerNorm.{weight,bias}`).
pub struct TextTransformer {
    cfg: BertConfig,
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    final_norm: Option<LayerNorm>,
    rng: DropoutRng,
    dtype: DType,
    device: Device,
}

impl TextTransformer {
    /// Builds the model; with a [`vicreg_core::ParamStore`] var builder the
    /// variables get HF's initialisation (normal weights with std
    /// `initializer_range`, zero biases, unit layer-norm weights), seeded.
    /// Dropout masks come from a stream keyed by `cfg.dropout_seed` and the
    /// builder's prefix.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let rng = dropout_rng(cfg.dropout_seed, &vb.prefix());
        let embeddings = BertEmbeddings::new(cfg, rng.clone(), vb.pp("embeddings"))?;
        let enc = vb.pp("encoder");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| BertLayer::new(cfg, rng.clone(), enc.pp("layer").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let final_norm = match cfg.norm_position {
            NormPosition::Pre => Some(LayerNorm::new(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                enc.pp("LayerNorm"),
            )?),
            NormPosition::Post => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            embeddings,
            layers,
            final_norm,
            rng,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Restarts the dropout stream (e.g. when resuming from a checkpoint).
    pub fn reseed_dropout(&self, seed: u64, key: &str) {
        let fresh = super::dropout::dropout_stream(seed, key);
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    fn check_input(&self, batch: &TextBatch) -> vicreg_core::Result<()> {
        batch.validate()?;
        let seq = batch.seq_len();
        if seq > self.cfg.max_position_embeddings {
            return Err(vicreg_core::Error::invalid(format!(
                "TextTransformer: sequence length {seq} exceeds max_position_embeddings {}",
                self.cfg.max_position_embeddings
            )));
        }
        let max_id = batch.ids.max_all()?.to_scalar::<u32>()? as usize;
        if max_id >= self.cfg.vocab_size {
            return Err(vicreg_core::Error::invalid(format!(
                "TextTransformer: token id {max_id} is outside the vocabulary of {} ids",
                self.cfg.vocab_size
            )));
        }
        if let Some(t) = &batch.type_ids {
            let max_t = t.max_all()?.to_scalar::<u32>()? as usize;
            if max_t >= self.cfg.type_vocab_size {
                return Err(vicreg_core::Error::invalid(format!(
                    "TextTransformer: token type {max_t} is outside type_vocab_size {}",
                    self.cfg.type_vocab_size
                )));
            }
        }
        Ok(())
    }

    /// Final token states `(batch, seq, hidden)`. Padding positions attend to
    /// tokens only (their own states are computed but meaningless).
    pub fn hidden_states(&self, batch: &TextBatch, train: bool) -> vicreg_core::Result<Tensor> {
        self.check_input(batch)?;
        let ids = batch.ids.to_device(&self.device)?;
        let type_ids = batch
            .type_ids
            .as_ref()
            .map(|t| t.to_device(&self.device))
            .transpose()?;
        let mask = batch.mask_as(self.dtype)?.to_device(&self.device)?;
        let bias = attention_bias(&mask)?;
        let mut x = self.embeddings.forward(&ids, type_ids.as_ref(), train)?;
        for layer in &self.layers {
            x = layer.forward(&x, Some(&bias), train)?;
        }
        if let Some(norm) = &self.final_norm {
            x = norm.forward(&x)?;
        }
        Ok(x)
    }

    /// Pools token states `(batch, seq, hidden)` into `(batch, hidden)` with the configured pooling.
    pub fn pool(&self, hidden: &Tensor, batch: &TextBatch) -> vicreg_core::Result<Tensor> {
        Ok(match self.cfg.pooling {
            TextPooling::Mean => {
                let mask = batch.mask_as(hidden.dtype())?.to_device(hidden.device())?;
                masked_mean(hidden, &mask)?
            }
            TextPooling::Cls => first_token(hidden)?,
        })
    }
}

impl Encoder for TextTransformer {
    type Input = TextBatch;

    /// `(batch, hidden_size)` sentence representations; `train` enables dropout.
    fn forward_t(&self, input: &TextBatch, train: bool) -> vicreg_core::Result<Tensor> {
        let h = self.hidden_states(input, train)?;
        self.pool(&h, input)
    }

    fn repr_dim(&self) -> usize {
        self.cfg.hidden_size
    }
}

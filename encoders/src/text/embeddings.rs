//! BERT input embeddings: word + position + token type, then layer norm and dropout.

use candle_core::{Module, Tensor};
use candle_nn::{Embedding, Init, VarBuilder};

use super::dropout::{Dropout, DropoutRng};
use super::layer_norm::LayerNorm;
use super::BertConfig;

/// `embeddings.{word_embeddings, position_embeddings, token_type_embeddings, LayerNorm}`.
#[derive(Clone, Debug)]
pub struct BertEmbeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    dropout: Dropout,
    hidden: usize,
}

fn table(rows: usize, cols: usize, std: f64, vb: VarBuilder) -> candle_core::Result<Embedding> {
    let w = vb.get_with_hints(
        (rows, cols),
        "weight",
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )?;
    Ok(Embedding::new(w, cols))
}

impl BertEmbeddings {
    /// Builds the tables under `vb` (conventionally `<model>.embeddings`),
    /// initialised `N(0, initializer_range^2)`.
    pub fn new(cfg: &BertConfig, rng: DropoutRng, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let std = cfg.initializer_range;
        Ok(Self {
            word: table(cfg.vocab_size, h, std, vb.pp("word_embeddings"))?,
            position: table(
                cfg.max_position_embeddings,
                h,
                std,
                vb.pp("position_embeddings"),
            )?,
            token_type: table(cfg.type_vocab_size, h, std, vb.pp("token_type_embeddings"))?,
            norm: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
            dropout: Dropout::new(cfg.hidden_dropout_prob, rng),
            hidden: h,
        })
    }

    /// `ids`, `type_ids`: `(batch, seq)` U32 (type ids default to 0); positions
    /// are `0..seq`. Returns `(batch, seq, hidden)`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: Option<&Tensor>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (_b, seq) = ids.dims2()?;
        let words = self.word.forward(ids)?;
        let pos_ids = Tensor::arange(0u32, seq as u32, ids.device())?;
        let pos = self.position.forward(&pos_ids)?; // (seq, hidden)
        let types = match type_ids {
            Some(t) => self.token_type.forward(t)?,
            None => {
                // Token type 0 everywhere: row 0 of the table, broadcast.
                self.token_type
                    .embeddings()
                    .narrow(0, 0, 1)?
                    .reshape((1, 1, self.hidden))?
            }
        };
        let x = words
            .broadcast_add(&pos.unsqueeze(0)?)?
            .broadcast_add(&types)?;
        let x = self.norm.forward(&x)?;
        self.dropout.forward(&x, train)
    }
}

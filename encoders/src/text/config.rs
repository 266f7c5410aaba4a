//! Configuration of the BERT-style transformer text encoder.
//!
//! [`BertConfig`] reads the `config.json` of a Hugging Face `BertModel`
//! checkpoint as is (unknown fields are ignored); the fields after
//! `position_embedding_type` are this crate's own additions, all with
//! defaults, so an HF file leaves them at "post-LN, mean pooling".

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The MLP activation (`hidden_act` in HF configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HiddenAct {
    /// Exact GELU, `x * (1 + erf(x / sqrt 2)) / 2` (HF `"gelu"`, BERT's own).
    #[default]
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh approximation of GELU (HF `"gelu_new"` / `"gelu_pytorch_tanh"`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
    /// ReLU.
    #[serde(rename = "relu")]
    Relu,
}

/// Where the layer norms sit in each transformer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormPosition {
    /// Original BERT: `x = LN(x + sublayer(x))`.
    #[default]
    Post,
    /// Pre-LN: `x = x + sublayer(LN(x))`, plus a final LN after the last layer
    /// (`encoder.LayerNorm`); trains more stably from scratch.
    Pre,
}

/// How token states become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TextPooling {
    /// Mean of the final hidden states over the tokens where the mask is 1
    /// (sentence-transformers' mean pooling).
    #[default]
    Mean,
    /// The final hidden state of the first token (`[CLS]`).
    Cls,
}

fn default_seed() -> u64 {
    0
}

/// Hyper-parameters of a BERT encoder; field names follow HF `BertConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of every token state (the representation size).
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the MLP inside each layer.
    pub intermediate_size: usize,
    /// MLP activation.
    #[serde(default)]
    pub hidden_act: HiddenAct,
    /// Dropout probability on embeddings and sub-layer outputs (train mode only).
    #[serde(default)]
    pub hidden_dropout_prob: f64,
    /// Dropout probability on attention probabilities (train mode only).
    #[serde(default)]
    pub attention_probs_dropout_prob: f64,
    /// Longest sequence the position table can encode.
    pub max_position_embeddings: usize,
    /// Number of token-type (segment) ids.
    pub type_vocab_size: usize,
    /// Standard deviation of the normal initialisation of weights and embeddings.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Layer-norm epsilon (added to the biased variance).
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: u32,
    /// Only `"absolute"` (learned position table) is supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    /// Layer-norm placement (not an HF field; default post-LN).
    #[serde(default)]
    pub norm_position: NormPosition,
    /// Sentence pooling (not an HF field; default mean over the mask).
    #[serde(default)]
    pub pooling: TextPooling,
    /// Seed of the dropout masks (not an HF field); the stream is further keyed
    /// by the encoder's variable prefix.
    #[serde(default = "default_seed")]
    pub dropout_seed: u64,
}

fn default_init_range() -> f64 {
    0.02
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".to_string()
}

impl Default for BertConfig {
    /// BERT-base (uncased): 12 layers, hidden 768, 12 heads, MLP 3072.
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            position_embedding_type: default_position_type(),
            norm_position: NormPosition::Post,
            pooling: TextPooling::Mean,
            dropout_seed: 0,
        }
    }
}

impl BertConfig {
    /// all-MiniLM-L6-v2 (sentence-transformers): 6 layers, hidden 384,
    /// 12 heads of 32, MLP 1536, vocab 30522, 512 positions.
    pub fn minilm_l6() -> Self {
        Self {
            hidden_size: 384,
            num_hidden_layers: 6,
            intermediate_size: 1536,
            ..Self::default()
        }
    }

    /// A small pre-LN model for training from scratch on a laptop CPU:
    /// 4 layers, hidden 256, 4 heads, MLP 1024, 8192-token vocabulary,
    /// 128 positions. Set `vocab_size` to the trained tokenizer's size.
    pub fn small() -> Self {
        Self {
            vocab_size: 8192,
            hidden_size: 256,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 1024,
            max_position_embeddings: 128,
            norm_position: NormPosition::Pre,
            ..Self::default()
        }
    }

    /// A tiny model for tests: 2 layers, hidden 16, 2 heads, MLP 32,
    /// vocab 64, 16 positions, no dropout.
    pub fn tiny() -> Self {
        Self {
            vocab_size: 64,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 32,
            max_position_embeddings: 16,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            ..Self::default()
        }
    }

    /// The same config with another vocabulary size.
    pub fn with_vocab_size(mut self, vocab_size: usize) -> Self {
        self.vocab_size = vocab_size;
        self
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks that the numbers fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config(format!("BertConfig: {m}")));
        if self.vocab_size == 0
            || self.hidden_size == 0
            || self.num_attention_heads == 0
            || self.intermediate_size == 0
            || self.max_position_embeddings == 0
            || self.type_vocab_size == 0
        {
            return bad(format!(
                "vocab_size, hidden_size, num_attention_heads, intermediate_size, \
                 max_position_embeddings and type_vocab_size must be > 0 (got {}, {}, {}, {}, {}, {})",
                self.vocab_size,
                self.hidden_size,
                self.num_attention_heads,
                self.intermediate_size,
                self.max_position_embeddings,
                self.type_vocab_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad(format!(
                "layer_norm_eps must be > 0, got {}",
                self.layer_norm_eps
            ));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        Ok(())
    }

    /// Reads an HF `config.json` (errors name the file).
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(path, format!("not a usable BERT config.json: {e}")))?;
        cfg.validate()
            .map_err(|e| Error::bad_file(path, e.to_string()))?;
        Ok(cfg)
    }
}

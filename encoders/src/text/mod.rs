//! Text encoders: a BERT-style transformer (trainable from scratch or loaded
//! from an HF checkpoint such as all-MiniLM-L6-v2) and a VSE++-style GRU,
//! both implementing [`vicreg_core::model::Encoder`] over a [`TextBatch`].
//!
//! - [`TextTransformer`] ([`BertConfig`]): token + position + token-type
//!   embeddings, N post-LN (BERT) or pre-LN layers of masked multi-head
//!   self-attention and an exact-GELU MLP, seeded dropout in train mode, mean
//!   (over the mask) or `[CLS]` pooling. Every op has a working gradient:
//!   candle's fused layer norm and `softmax_last_dim` (which drop gradients)
//!   are not used.
//! - [`GruTextEncoder`] ([`GruConfig`]): embeddings -> one-layer GRU -> last
//!   valid state or mean, as in VSE++ (the paper's COCO setting).
//! - [`TextTokenizer`]: `tokenizer.json` loading and batch encoding;
//!   [`train_wordpiece`] trains a BERT-style WordPiece vocabulary on a
//!   dataset's own text.
//! - [`PretrainedFiles`] / [`TextTransformer::from_pretrained`]: offline
//!   loading from a model directory or the HF hub cache.
//!
//! ```
//! use candle_core::{DType, Device};
//! use encoders::text::{train_wordpiece, BertConfig, TextTransformer, WordPieceTrainConfig};
//! use vicreg_core::model::Encoder;
//! use vicreg_core::ParamStore;
//!
//! // A vocabulary trained on the dataset's own sentences.
//! let corpus = ["a dog runs on the beach", "two dogs play in the park", "a cat sleeps on a sofa"];
//! let tokenizer = train_wordpiece(corpus.iter(), &WordPieceTrainConfig::tiny())?;
//!
//! // A tiny transformer over that vocabulary; variables seeded from the store.
//! let store = ParamStore::new(0);
//! let cfg = BertConfig::tiny().with_vocab_size(tokenizer.vocab_size());
//! let model = TextTransformer::new(&cfg, store.var_builder(DType::F32, &Device::Cpu))?;
//!
//! // (batch, seq) ids + mask -> (batch, hidden) mean-pooled representations.
//! let batch = tokenizer.encode_batch(&["a dog on a sofa", "cats"], 16, false, &Device::Cpu)?;
//! let repr = model.forward_t(&batch, false)?;
//! assert_eq!(repr.dims(), &[2, cfg.hidden_size]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attention;
mod batch;
mod choice;
mod config;
mod dropout;
mod embeddings;
mod frozen_table;
pub mod fused;
mod gru;
mod layer;
mod layer_norm;
mod pooling;
mod pretrained;
mod tokenizer;
mod tokenizer_train;
mod transformer;
mod wordpiece_merges;

pub use attention::{attention_bias, bert_linear, SelfAttention};
pub use batch::TextBatch;
pub use choice::{pretrained_files, TextEncoderChoice};
pub use config::{BertConfig, HiddenAct, NormPosition, TextPooling};
pub use dropout::{dropout_rng, dropout_stream, Dropout, DropoutRng};
pub use embeddings::BertEmbeddings;
pub use frozen_table::{FrozenTextTable, TABLE_BATCH};
pub use gru::{gru_cell, sigmoid, GruConfig, GruPooling, GruTextEncoder};
pub use layer::{activation, gelu_composite, gelu_exact, BertLayer};
pub use layer_norm::{layer_norm, layer_norm_composite, LayerNorm};
pub use pooling::{first_token, l2_normalize, masked_mean};
pub use pretrained::{
    canonical_bert_name, default_hf_cache_dir, load_bert_weights, LoadReport, PretrainedFiles,
    CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE,
};
pub use tokenizer::TextTokenizer;
pub use tokenizer_train::{train_wordpiece, WordPieceTrainConfig, SPECIAL_TOKENS};
pub use transformer::TextTransformer;

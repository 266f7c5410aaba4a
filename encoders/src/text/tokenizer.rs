//! A thin wrapper around the `tokenizers` crate producing [`TextBatch`]es.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::TextBatch;
use crate::{Error, Result};

/// A `tokenizer.json` tokenizer (WordPiece for BERT models) that encodes
/// batches of sentences into padded id / mask tensors.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

fn tok_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Core(vicreg_core::Error::invalid(format!(
        "tokenizer: {what}: {e}"
    )))
}

impl TextTokenizer {
    /// Wraps a `tokenizers::Tokenizer`. Its own padding and truncation
    /// settings are ignored ([`TextTokenizer::encode_batch`] sets them per call);
    /// the padding id is taken from its padding settings, else `[PAD]`, else 0.
    pub fn new(inner: Tokenizer) -> Self {
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        Self { inner, pad_id }
    }

    /// Loads a `tokenizer.json`; a missing or unreadable file gives an error naming it.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json not found"),
            ));
        }
        let inner = Tokenizer::from_file(path)
            .map_err(|e| Error::bad_file(path, format!("not a usable tokenizer.json: {e}")))?;
        Ok(Self::new(inner))
    }

    /// Saves as `tokenizer.json` (pretty-printed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self
            .inner
            .to_string(true)
            .map_err(|e| Error::bad_file(path, format!("cannot serialise tokenizer: {e}")))?;
        vicreg_core::io::write_atomic(path, json.as_bytes())?;
        Ok(())
    }

    /// The wrapped tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Number of ids (including added special tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The padding id used by [`TextTokenizer::encode_batch`].
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of a token string, if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of one sentence with special tokens (`[CLS] ... [SEP]` for
    /// BERT), no padding, truncated to `max_len` if given.
    pub fn encode(&self, text: &str, max_len: Option<usize>) -> Result<Vec<u32>> {
        let tok = self.configured(max_len, None)?;
        let enc = tok.encode(text, true).map_err(|e| tok_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes `texts` into a [`TextBatch`] on `device`: each sentence gets its
    /// special tokens, is truncated to `max_len` tokens (special tokens
    /// included), and the batch is right-padded with the padding id to the
    /// longest sentence (`pad_to_max = false`) or to exactly `max_len`
    /// (`pad_to_max = true`). ids, mask and type ids are U32 `(batch, seq)`.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        max_len: usize,
        pad_to_max: bool,
        device: &Device,
    ) -> Result<TextBatch> {
        if texts.is_empty() {
            return Err(Error::Core(vicreg_core::Error::invalid(
                "encode_batch: no sentences",
            )));
        }
        if max_len < 2 {
            return Err(Error::config(format!(
                "encode_batch: max_len {max_len} leaves no room for [CLS] and [SEP]"
            )));
        }
        let strategy = if pad_to_max {
            PaddingStrategy::Fixed(max_len)
        } else {
            PaddingStrategy::BatchLongest
        };
        let tok = self.configured(Some(max_len), Some(strategy))?;
        let encs = tok
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| tok_err("encode_batch", e))?;
        let seq = encs[0].get_ids().len();
        let (b, mut ids, mut mask, mut types) = (encs.len(), vec![], vec![], vec![]);
        for e in &encs {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
            types.extend_from_slice(e.get_type_ids());
        }
        let t = |v: Vec<u32>| Tensor::from_vec(v, (b, seq), device);
        let batch = TextBatch {
            ids: t(ids)?,
            mask: t(mask)?,
            type_ids: Some(t(types)?),
        };
        batch.validate()?;
        Ok(batch)
    }

    /// Text of a list of ids; `skip_special` drops `[CLS]`, `[SEP]`, `[PAD]`...
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| tok_err("decode", e))
    }

    fn configured(
        &self,
        max_len: Option<usize>,
        padding: Option<PaddingStrategy>,
    ) -> Result<Tokenizer> {
        let mut tok = self.inner.clone();
        let trunc = max_len.map(|max_length| TruncationParams {
            max_length,
            ..Default::default()
        });
        tok.with_truncation(trunc)
            .map_err(|e| tok_err("truncation", e))?;
        let pad_token = self
            .inner
            .id_to_token(self.pad_id)
            .unwrap_or_else(|| "[PAD]".to_string());
        tok.with_padding(padding.map(|strategy| PaddingParams {
            strategy,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: self.pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        Ok(tok)
    }
}

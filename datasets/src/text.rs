//! Tokenization for text datasets: a `tokenizer.json` (HF `tokenizers` format) applied with
//! truncation and padding to a fixed `max_len`, giving token ids and an attention mask per
//! sample (`Vec<u32>` of length `max_len`) or batched `(B, max_len)` u32 tensors.
//!
//! Also builds small word-level tokenizers (written in the same `tokenizer.json` format)
//! from a caption corpus, for the synthetic caption data.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{Error, Result};

/// How texts are turned into fixed-length token sequences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextConfig {
    /// Sequence length after truncation/padding (special tokens included).
    pub max_len: usize,
    /// Add the tokenizer's special tokens (e.g. `[CLS] ... [SEP]`).
    pub add_special_tokens: bool,
    /// Padding token; `None` picks the first of `[PAD]`, `<pad>`, `<|padding|>` in the
    /// vocabulary, else id 0.
    pub pad_token: Option<String>,
}

impl Default for TextConfig {
    /// 32 tokens with special tokens, automatic padding token.
    fn default() -> Self {
        Self {
            max_len: 32,
            add_special_tokens: true,
            pad_token: None,
        }
    }
}

/// One tokenized text: `ids` and `mask` both have length `max_len`; `mask[i]` is 1 for a
/// real token and 0 for padding (padding is on the right).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedText {
    /// Token ids, padded with the padding id.
    pub ids: Vec<u32>,
    /// Attention mask.
    pub mask: Vec<u32>,
}

impl TokenizedText {
    /// Number of real (unpadded) tokens.
    pub fn len(&self) -> usize {
        self.mask.iter().filter(|m| **m != 0).count()
    }

    /// True when there are no real tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tokenizer with fixed-length truncation and padding.
#[derive(Clone)]
pub struct TextTokenizer {
    tok: Tokenizer,
    cfg: TextConfig,
    pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("cfg", &self.cfg)
            .field("pad_id", &self.pad_id)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl TextTokenizer {
    /// Loads a `tokenizer.json`. A missing file is [`Error::Io`]; invalid content is
    /// [`Error::BadFile`] naming the file. The file's own padding/truncation settings are
    /// replaced by `cfg`.
    pub fn from_file(path: &Path, cfg: TextConfig) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let tok = Tokenizer::from_str(&text)
            .map_err(|e| Error::bad_file(path, format!("not a valid tokenizer.json: {e}")))?;
        Self::from_tokenizer(tok, cfg)
    }

    /// Wraps an in-memory tokenizer (its padding/truncation settings are replaced by `cfg`).
    pub fn from_tokenizer(mut tok: Tokenizer, cfg: TextConfig) -> Result<Self> {
        if cfg.max_len == 0 {
            return Err(Error::Config("text max_len must be > 0".into()));
        }
        let pad_id = match &cfg.pad_token {
            Some(t) => tok.token_to_id(t).ok_or_else(|| {
                Error::Config(format!("padding token {t:?} is not in the vocabulary"))
            })?,
            None => ["[PAD]", "<pad>", "<|padding|>"]
                .iter()
                .find_map(|t| tok.token_to_id(t))
                .unwrap_or(0),
        };
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: cfg.max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| Error::Config(format!("cannot truncate to {} tokens: {e}", cfg.max_len)))?;
        Ok(Self { tok, cfg, pad_id })
    }

    /// The configuration.
    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    /// Sequence length of every encoding.
    pub fn max_len(&self) -> usize {
        self.cfg.max_len
    }

    /// Id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size including added tokens (embedding tables need this many rows).
    pub fn vocab_size(&self) -> usize {
        self.tok.get_vocab_size(true)
    }

    /// The wrapped tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tok
    }

    /// Tokenizes one text to `max_len` ids and mask.
    pub fn encode(&self, text: &str) -> Result<TokenizedText> {
        let enc = self
            .tok
            .encode(text, self.cfg.add_special_tokens)
            .map_err(|e| Error::Config(format!("tokenizer failed on {text:?}: {e}")))?;
        let n = enc.get_ids().len().min(self.cfg.max_len);
        let mut ids = vec![self.pad_id; self.cfg.max_len];
        ids[..n].copy_from_slice(&enc.get_ids()[..n]);
        let mut mask = vec![0u32; self.cfg.max_len];
        mask[..n].iter_mut().for_each(|m| *m = 1);
        Ok(TokenizedText { ids, mask })
    }

    /// Tokenizes several texts.
    pub fn encode_many<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<TokenizedText>> {
        texts.iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Tokenizes a batch into `(ids, mask)`, both u32 tensors of shape `(B, max_len)`.
    pub fn encode_batch<S: AsRef<str>>(
        &self,
        texts: &[S],
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let enc = self.encode_many(texts)?;
        stack_tokenized(&enc, device)
    }
}

/// Stacks equal-length encodings into `(ids, mask)` u32 tensors of shape `(B, L)`.
pub fn stack_tokenized(batch: &[TokenizedText], device: &Device) -> Result<(Tensor, Tensor)> {
    let l = batch.first().map(|t| t.ids.len()).unwrap_or(0);
    if let Some(bad) = batch.iter().find(|t| t.ids.len() != l || t.mask.len() != l) {
        return Err(Error::Config(format!(
            "cannot stack token sequences of lengths {l} and {}",
            bad.ids.len()
        )));
    }
    let ids: Vec<u32> = batch.iter().flat_map(|t| t.ids.iter().copied()).collect();
    let mask: Vec<u32> = batch.iter().flat_map(|t| t.mask.iter().copied()).collect();
    Ok((
        Tensor::from_vec(ids, (batch.len(), l), device)?,
        Tensor::from_vec(mask, (batch.len(), l), device)?,
    ))
}

/// Special tokens of [`word_level_tokenizer_json`], with ids 0..4.
pub const WORD_LEVEL_SPECIALS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];

/// A word-level `tokenizer.json` (as a JSON value) whose vocabulary is every lower-cased
/// word and punctuation mark of `corpus` (split like BERT: on whitespace and punctuation),
/// sorted, after the specials `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3; encodings are
/// `[CLS] words [SEP]`.
pub fn word_level_tokenizer_json<'a>(
    corpus: impl IntoIterator<Item = &'a str>,
) -> serde_json::Value {
    let mut words = BTreeSet::new();
    for text in corpus {
        let lower = text.to_lowercase();
        let mut cur = String::new();
        for ch in lower.chars() {
            if ch.is_whitespace() || ch.is_ascii_punctuation() {
                if !cur.is_empty() {
                    words.insert(std::mem::take(&mut cur));
                }
                if !ch.is_whitespace() {
                    words.insert(ch.to_string());
                }
            } else {
                cur.push(ch);
            }
        }
        if !cur.is_empty() {
            words.insert(cur);
        }
    }
    let mut vocab = serde_json::Map::new();
    for (i, t) in WORD_LEVEL_SPECIALS.iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for w in words {
        if !vocab.contains_key(&w) {
            let id = vocab.len();
            vocab.insert(w, json!(id));
        }
    }
    let added: Vec<_> = WORD_LEVEL_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let special = |name: &str, id: usize| json!({"id": name, "ids": [id], "tokens": [name]});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": special("[CLS]", 2), "[SEP]": special("[SEP]", 3)}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// Writes [`word_level_tokenizer_json`] of `corpus` to `path` (pretty JSON).
pub fn write_word_level_tokenizer<'a>(
    path: &Path,
    corpus: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let v = word_level_tokenizer_json(corpus);
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| Error::Config(format!("tokenizer JSON: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

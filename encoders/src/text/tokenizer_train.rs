//! Training a BERT-style WordPiece tokenizer on a dataset's own text (for
//! models trained from scratch), with the `tokenizers` crate.

use serde::{Deserialize, Serialize};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder, TokenizerImpl};

use super::TextTokenizer;
use crate::{Error, Result};

/// The special tokens, in id order: `[PAD]` = 0, `[UNK]` = 1, `[CLS]` = 2,
/// `[SEP]` = 3, `[MASK]` = 4.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Settings of WordPiece training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WordPieceTrainConfig {
    /// Target vocabulary size, special tokens included (the result can be
    /// smaller on a small corpus).
    pub vocab_size: usize,
    /// Pieces seen fewer times than this are not merged into the vocabulary.
    pub min_frequency: u64,
    /// Lower-case the text (BERT uncased normaliser).
    pub lowercase: bool,
    /// Keep at most this many distinct characters (rarer ones become `[UNK]`).
    pub limit_alphabet: Option<usize>,
}

impl Default for WordPieceTrainConfig {
    /// 8192 pieces, min frequency 2, lower case, at most 1000 characters.
    fn default() -> Self {
        Self {
            vocab_size: 8192,
            min_frequency: 2,
            lowercase: true,
            limit_alphabet: Some(1000),
        }
    }
}

impl WordPieceTrainConfig {
    /// A vocabulary for a captions dataset such as COCO (30000 pieces, like BERT).
    pub fn bert_sized() -> Self {
        Self {
            vocab_size: 30000,
            ..Self::default()
        }
    }

    /// A tiny vocabulary for tests (500 pieces, every piece kept).
    pub fn tiny() -> Self {
        Self {
            vocab_size: 500,
            min_frequency: 1,
            ..Self::default()
        }
    }
}

type BertTokenizerImpl =
    TokenizerImpl<WordPiece, BertNormalizer, BertPreTokenizer, BertProcessing, WordPieceDecoder>;

/// Trains a WordPiece tokenizer (BERT normaliser, BERT pre-tokenizer,
/// `[CLS] ... [SEP]` post-processing, WordPiece decoder) on `texts`.
pub fn train_wordpiece<S: AsRef<str> + Send>(
    texts: impl IntoIterator<Item = S, IntoIter: Send>,
    cfg: &WordPieceTrainConfig,
) -> Result<TextTokenizer> {
    if cfg.vocab_size <= SPECIAL_TOKENS.len() {
        return Err(Error::config(format!(
            "WordPieceTrainConfig: vocab_size {} leaves no room beyond the {} special tokens",
            cfg.vocab_size,
            SPECIAL_TOKENS.len()
        )));
    }
    let err = |what: &str, e: tokenizers::Error| {
        Error::config(format!("tokenizer training: {what}: {e}"))
    };
    let mut builder = WordPieceTrainerBuilder::new()
        .vocab_size(cfg.vocab_size)
        .min_frequency(cfg.min_frequency)
        .show_progress(false)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(t.to_string(), true))
                .collect(),
        );
    if let Some(limit) = cfg.limit_alphabet {
        builder = builder.limit_alphabet(limit);
    }
    let mut trainer = builder.build();
    let mut tok: BertTokenizerImpl = TokenizerBuilder::new()
        .with_model(WordPiece::default())
        .with_normalizer(Some(BertNormalizer::new(true, true, None, cfg.lowercase)))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(None)
        .with_decoder(Some(WordPieceDecoder::default()))
        .build()
        .map_err(|e| err("build", e))?;
    tok.train(&mut trainer, texts.into_iter())
        .map_err(|e| err("train", e))?;
    let id = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| {
            Error::config(format!(
                "tokenizer training: special token {t} missing after training"
            ))
        })
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    if tok.get_vocab_size(true) <= SPECIAL_TOKENS.len() {
        return Err(Error::config(
            "tokenizer training: the corpus produced no tokens (empty text?)",
        ));
    }
    Ok(TextTokenizer::new(Tokenizer::from(tok)))
}

//! Training a BERT-style WordPiece tokenizer on a dataset's own text (for
//! models trained from scratch): the `tokenizers` crate's BERT normaliser and
//! pre-tokenizer, a deterministic merge learner ([`learn_vocab`]), and the
//! `tokenizers` WordPiece model over the learned vocabulary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, Tokenizer, TokenizerBuilder, TokenizerImpl,
};

use super::wordpiece_merges::{learn_vocab, CONTINUATION};
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
/// `[CLS] ... [SEP]` post-processing, WordPiece decoder) on `texts`. The
/// same texts and settings always give the same vocabulary (every tie of the
/// merge learner is broken by the pieces' text), so a run with a seed is
/// reproducible and every process of a multi-process run agrees.
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
    let normalizer = BertNormalizer::new(true, true, None, cfg.lowercase);
    let mut words: BTreeMap<String, u64> = BTreeMap::new();
    for text in texts {
        let mut normalized = NormalizedString::from(text.as_ref());
        normalizer
            .normalize(&mut normalized)
            .map_err(|e| err("normalize", e))?;
        let mut split = PreTokenizedString::from(normalized);
        BertPreTokenizer
            .pre_tokenize(&mut split)
            .map_err(|e| err("pre-tokenize", e))?;
        for (word, _, _) in split.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            *words.entry(word.to_string()).or_default() += 1;
        }
    }
    let pieces = learn_vocab(
        &words,
        &SPECIAL_TOKENS,
        cfg.vocab_size,
        cfg.min_frequency,
        cfg.limit_alphabet,
    );
    let vocab: ahash::AHashMap<String, u32> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), i as u32))
        .collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix(CONTINUATION.into())
        .build()
        .map_err(|e| err("build the model", e))?;
    let mut tok: BertTokenizerImpl = TokenizerBuilder::new()
        .with_model(model)
        .with_normalizer(Some(normalizer))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(None)
        .with_decoder(Some(WordPieceDecoder::default()))
        .build()
        .map_err(|e| err("build", e))?;
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    tok.add_special_tokens(specials)
        .map_err(|e| err("special tokens", e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Captions with many count ties (the case where `tokenizers`' own trainer
    /// varies from run to run).
    fn corpus() -> Vec<String> {
        let things = ["dog", "cat", "bird", "fish", "horse", "cow", "duck", "goat"];
        let places = ["park", "beach", "sofa", "street", "field", "lake"];
        let mut v = Vec::new();
        for (i, t) in things.iter().enumerate() {
            for (j, p) in places.iter().enumerate() {
                v.push(format!("A {t} sits on the {p}, {} times.", i + j));
            }
        }
        v
    }

    #[test]
    fn the_same_corpus_always_gives_the_same_tokenizer() {
        let cfg = WordPieceTrainConfig {
            vocab_size: 120,
            ..WordPieceTrainConfig::tiny()
        };
        let dir = std::env::temp_dir().join(format!("wordpiece-det-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for k in 0..4 {
            let tok = train_wordpiece(corpus().iter(), &cfg).unwrap();
            let path = dir.join(format!("tok{k}.json"));
            tok.save(&path).unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files.windows(2).all(|w| w[0] == w[1]));
        let tok = train_wordpiece(corpus().iter(), &cfg).unwrap();
        assert!(tok.vocab_size() <= 120 && tok.vocab_size() > 60);
        for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tok.token_to_id(s), Some(i as u32));
        }
        // Encoding frames with [CLS] ... [SEP], known words round-trip, and a
        // character never seen becomes [UNK].
        let ids = tok.encode("a horse sits on the lake", None).unwrap();
        assert_eq!(ids.first(), Some(&2));
        assert_eq!(ids.last(), Some(&3));
        assert_eq!(tok.decode(&ids, true).unwrap(), "a horse sits on the lake");
        let unk = tok.encode("zebra", None).unwrap();
        assert_eq!(unk, [2, 1, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

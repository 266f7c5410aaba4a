//! The text branch's choices: which encoder (`transformer`, `gru`,
//! `pretrained:<dir or hub id>`), its architecture as recorded in a run
//! directory (`text-encoder.json`), and the run's tokenizer (`tokenizer.json`:
//! a WordPiece vocabulary trained on the training captions for encoders
//! trained from scratch, the checkpoint's own for a pretrained one).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use datasets::text::{TextConfig, TokenizedText};
use encoders::text::{
    pretrained_files, train_wordpiece, BertConfig, GruConfig, GruPooling, NormPosition, TextBatch,
    TextEncoderChoice as TextChoice, TextTokenizer, WordPieceTrainConfig,
};
use serde::{Deserialize, Serialize};

use crate::config::PretrainConfig;

/// File of the run's tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File of the text encoder's architecture.
pub const TEXT_ARCH_FILE: &str = "text-encoder.json";

/// The text encoder's architecture, as written to `<run>/text-encoder.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TextArch {
    /// A BERT-style transformer (from scratch or pretrained).
    Transformer(BertConfig),
    /// A GRU.
    Gru(GruConfig),
}

impl TextArch {
    /// Reads `<run>/text-encoder.json`.
    pub fn of_run(exp_dir: &Path) -> Result<Self> {
        let p = exp_dir.join(TEXT_ARCH_FILE);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {} (was pretraining started in this run directory?)",
                p.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a text encoder description", p.display()))
    }

    /// Writes `<run>/text-encoder.json`.
    pub fn save(&self, exp_dir: &Path) -> Result<()> {
        let p = exp_dir.join(TEXT_ARCH_FILE);
        vicreg_core::io::write_atomic(&p, serde_json::to_string_pretty(self)?.as_bytes())?;
        Ok(())
    }
}

/// What pretraining needs of the text side.
pub struct PreparedText {
    /// The encoder's architecture.
    pub arch: TextArch,
    /// The tokenizer (also written to `<run>/tokenizer.json`).
    pub tokenizer: TextTokenizer,
    /// Weights to load into the text encoder after it is built (pretrained checkpoints).
    pub weights: Option<PathBuf>,
}

/// Chooses the tokenizer and architecture of a pretraining run and writes
/// `tokenizer.json` and `text-encoder.json` into the run directory. A run
/// directory that already holds a tokenizer (a resumed run) keeps it.
///
/// With `write = false` (ranks other than 0 of a multi-process run) nothing
/// is written: the tokenizer rank 0 saved is read back.
pub fn prepare(cfg: &PretrainConfig, train_captions: &[&str], write: bool) -> Result<PreparedText> {
    if write {
        std::fs::create_dir_all(&cfg.train.exp_dir)
            .with_context(|| format!("creating {}", cfg.train.exp_dir.display()))?;
    }
    let tok_path = cfg.train.exp_dir.join(TOKENIZER_FILE);
    let existing = if tok_path.is_file() {
        Some(TextTokenizer::from_file(&tok_path)?)
    } else {
        None
    };
    let prepared = match cfg.text_choice()? {
        TextChoice::Pretrained(spec) => {
            let files = pretrained_files(&spec)?;
            let mut bert = BertConfig::from_json_file(&files.config)?;
            bert.dropout_seed = cfg.train.seed;
            let tokenizer = match existing {
                Some(t) => t,
                None => TextTokenizer::from_file(&files.tokenizer)?,
            };
            if cfg.max_len > bert.max_position_embeddings {
                bail!(
                    "max-len {} exceeds the {} positions of {}",
                    cfg.max_len,
                    bert.max_position_embeddings,
                    files.config.display()
                );
            }
            PreparedText {
                arch: TextArch::Transformer(bert),
                tokenizer,
                weights: Some(files.weights),
            }
        }
        choice => {
            let tokenizer = match existing {
                Some(t) => t,
                None => {
                    let wp = WordPieceTrainConfig {
                        vocab_size: cfg.vocab_size,
                        min_frequency: 1,
                        ..WordPieceTrainConfig::default()
                    };
                    train_wordpiece(train_captions.iter(), &wp)
                        .context("training the WordPiece tokenizer on the training captions")?
                }
            };
            let vocab = tokenizer.vocab_size();
            let arch = if choice == TextChoice::Gru {
                TextArch::Gru(GruConfig {
                    vocab_size: vocab,
                    embed_dim: cfg.text_embed,
                    hidden_size: cfg.text_hidden,
                    pooling: GruPooling::Last,
                })
            } else {
                TextArch::Transformer(BertConfig {
                    vocab_size: vocab,
                    hidden_size: cfg.text_hidden,
                    num_hidden_layers: cfg.text_layers,
                    num_attention_heads: cfg.text_heads,
                    intermediate_size: 4 * cfg.text_hidden,
                    max_position_embeddings: cfg.max_len.max(16),
                    hidden_dropout_prob: cfg.text_dropout,
                    attention_probs_dropout_prob: cfg.text_dropout,
                    norm_position: NormPosition::Pre,
                    dropout_seed: cfg.train.seed,
                    ..BertConfig::small()
                })
            };
            PreparedText {
                arch,
                tokenizer,
                weights: None,
            }
        }
    };
    if let TextArch::Transformer(b) = &prepared.arch {
        b.validate().context("text transformer configuration")?;
    }
    if write {
        prepared.tokenizer.save(&tok_path)?;
        prepared.arch.save(&cfg.train.exp_dir)?;
    }
    Ok(prepared)
}

/// The caption tokenizer of the datasets crate (fixed-length ids + mask) over `tok`.
pub fn caption_tokenizer(
    tok: &TextTokenizer,
    max_len: usize,
) -> Result<datasets::text::TextTokenizer> {
    Ok(datasets::text::TextTokenizer::from_tokenizer(
        tok.inner().clone(),
        TextConfig {
            max_len,
            add_special_tokens: true,
            pad_token: tok.inner().id_to_token(tok.pad_id()),
        },
    )?)
}

/// The run's tokenizer (`<run>/tokenizer.json`) for captions of `max_len` tokens.
pub fn run_tokenizer(exp_dir: &Path, max_len: usize) -> Result<datasets::text::TextTokenizer> {
    let tok = TextTokenizer::from_file(&exp_dir.join(TOKENIZER_FILE))?;
    caption_tokenizer(&tok, max_len)
}

/// `(ids, mask)` u32 `(B, L)` tensors as a [`TextBatch`], with the padding
/// columns that no row uses cut off (L = the longest caption of the batch).
pub fn text_batch(ids: &Tensor, mask: &Tensor) -> Result<TextBatch> {
    let lens: Vec<u32> = mask.sum(1)?.to_vec1()?;
    let l = (lens.into_iter().max().unwrap_or(1) as usize).max(1);
    Ok(TextBatch::new(ids.narrow(1, 0, l)?, mask.narrow(1, 0, l)?)?)
}

/// Tokenizes `texts` into one trimmed [`TextBatch`] on `device`.
pub fn encode_texts(
    tok: &datasets::text::TextTokenizer,
    texts: &[&str],
    device: &Device,
) -> Result<TextBatch> {
    let enc: Vec<TokenizedText> = tok.encode_many(texts)?;
    let (ids, mask) = datasets::text::stack_tokenized(&enc, device)?;
    text_batch(&ids, &mask)
}

/// Most bytes the frozen text encoder's precomputed outputs may take.
pub const FROZEN_TABLE_MAX_BYTES: usize = 2 << 30;

/// The real (unpadded) token ids of every caption, as the training batches hold them.
pub fn token_sequences(
    tokenizer: &datasets::text::TextTokenizer,
    captions: &[&str],
) -> Result<Vec<Vec<u32>>> {
    captions
        .iter()
        .map(|c| {
            let t = tokenizer.encode(c)?;
            Ok(t.ids
                .iter()
                .zip(&t.mask)
                .filter(|(_, &m)| m != 0)
                .map(|(&i, _)| i)
                .collect())
        })
        .collect()
}

/// With a frozen text encoder, computes its output for every distinct
/// caption once (fixed order and batches, so a resumed run gets the same
/// values) and serves training steps from that table. Skipped, saying why,
/// when it would cost more forward passes than training does (`draws`
/// captions drawn in the whole run) or take more than
/// [`FROZEN_TABLE_MAX_BYTES`].
pub fn precompute_frozen(
    net: &crate::model::ImageTextModel,
    captions: Vec<Vec<u32>>,
    draws: usize,
    device: &Device,
) -> Result<()> {
    use vicreg_core::model::Encoder;
    let distinct: std::collections::HashSet<&Vec<u32>> = captions.iter().collect();
    let n = distinct.len();
    if n > draws {
        eprintln!("frozen text encoder: {n} distinct captions > {draws} drawn in training; encoding each step");
        return Ok(());
    }
    let enc = &net.branch_b().encoder;
    let t = encoders::text::FrozenTextTable::build(
        captions,
        enc.repr_dim(),
        FROZEN_TABLE_MAX_BYTES,
        device,
        |b| enc.inner.forward_t(b, false),
    )?;
    match t {
        Some(t) => {
            eprintln!("frozen text encoder: outputs of {} distinct captions computed once", t.len());
            enc.precompute(Box::new(t));
        }
        None => eprintln!(
            "frozen text encoder: the table of {n} captions would exceed {} MiB; encoding each step",
            FROZEN_TABLE_MAX_BYTES >> 20
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::model::Encoder;
    use vicreg_core::ParamStore;

    #[test]
    fn a_frozen_text_encoder_serves_precomputed_outputs_equal_to_its_own() {
        let cfg = PretrainConfig {
            freeze_text: true,
            image_arch: "resnet18".into(),
            ..PretrainConfig::default()
        };
        let arch = TextArch::Transformer(BertConfig::tiny().with_vocab_size(40));
        let store = ParamStore::new(3);
        let net = crate::model::build(&cfg, &arch, &store, &Device::Cpu).unwrap();
        let captions = vec![
            vec![2, 7, 9, 3],
            vec![2, 11, 3],
            vec![2, 7, 9, 3],
            vec![2, 5, 3],
        ];
        let rows = [vec![2, 5, 3], vec![2, 7, 9, 3]];
        let batch = TextBatch::from_rows(&rows, 0, &Device::Cpu).unwrap();
        let text = &net.branch_b().encoder;
        let direct = text.forward_t(&batch, true).unwrap();
        precompute_frozen(&net, captions.clone(), 1, &Device::Cpu).unwrap();
        // Fewer draws than distinct captions: nothing was precomputed.
        assert_eq!(
            text.forward_t(&batch, true)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            direct.to_vec2::<f32>().unwrap()
        );
        precompute_frozen(&net, captions, 100, &Device::Cpu).unwrap();
        let served = text.forward_t(&batch, true).unwrap();
        let d = (&served - &direct)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // A caption outside the table is encoded as before.
        let other = TextBatch::from_rows(&[vec![2, 13, 3]], 0, &Device::Cpu).unwrap();
        let want = text.inner.forward_t(&other, false).unwrap();
        assert_eq!(
            text.forward_t(&other, true)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            want.to_vec2::<f32>().unwrap()
        );
    }
}

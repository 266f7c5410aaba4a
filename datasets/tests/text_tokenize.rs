//! Tokenization wrapper: fixed-length ids + mask, tensors, word-level tokenizer files,
//! bad tokenizer files, and (when the MiniLM tokenizer is cached locally) its golden ids.

use std::path::{Path, PathBuf};

use candle_core::Device;
use datasets::text::{stack_tokenized, write_word_level_tokenizer, TextConfig, TextTokenizer};
use datasets::Error;

/// A fresh temporary directory, removed when dropped.
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp_dir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("vicreg_text_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

fn small_tokenizer(max_len: usize) -> TextTokenizer {
    let d = tmp_dir(&format!("wl{max_len}"));
    let p = d.join("tokenizer.json");
    let corpus = [
        "A small red circle in the top left",
        "top-left: a tiny crimson disc",
    ];
    write_word_level_tokenizer(&p, corpus).unwrap();
    TextTokenizer::from_file(
        &p,
        TextConfig {
            max_len,
            ..TextConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn word_level_tokenizer_pads_truncates_and_masks() {
    let t = small_tokenizer(8);
    // Vocabulary: 4 specials + sorted words/punctuation of the corpus.
    // "-" ":" "a" "circle" "crimson" "disc" "in" "left" "red" "small" "the" "tiny" "top"
    assert_eq!(t.vocab_size(), 4 + 13);
    assert_eq!(t.pad_id(), 0);
    let e = t.encode("A RED circle!").unwrap();
    // [CLS]=2 a=6 red=12 circle=7 !=[UNK]=1 [SEP]=3 then padding.
    assert_eq!(e.ids, vec![2, 6, 12, 7, 1, 3, 0, 0]);
    assert_eq!(e.mask, vec![1, 1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(e.len(), 6);
    // Truncation keeps [CLS] ... [SEP] inside max_len.
    let long = t
        .encode("a small red circle in the top left top left")
        .unwrap();
    assert_eq!(long.ids.len(), 8);
    assert_eq!((long.ids[0], long.ids[7]), (2, 3));
    assert!(long.mask.iter().all(|m| *m == 1));
    // "top-left:" splits into top - left :
    let tl = t.encode("top-left:").unwrap();
    assert_eq!(&tl.ids[..6], &[2, 16, 4, 11, 5, 3]);
}

#[test]
fn batches_become_u32_tensors() {
    let t = small_tokenizer(6);
    let (ids, mask) = t
        .encode_batch(&["red circle", "a tiny disc in the top left"], &Device::Cpu)
        .unwrap();
    assert_eq!(ids.dims(), &[2, 6]);
    assert_eq!(ids.dtype(), candle_core::DType::U32);
    let m: Vec<Vec<u32>> = mask.to_vec2().unwrap();
    assert_eq!(m, vec![vec![1, 1, 1, 1, 0, 0], vec![1; 6]]);
    let i: Vec<Vec<u32>> = ids.to_vec2().unwrap();
    assert_eq!(i[0], t.encode("red circle").unwrap().ids);
    let a = t.encode("red").unwrap();
    let mut b = a.clone();
    b.ids.push(0);
    b.mask.push(0);
    assert!(stack_tokenized(&[a, b], &Device::Cpu).is_err());
}

#[test]
fn bad_tokenizer_files_and_config_are_clear_errors() {
    let d = tmp_dir("bad");
    let p = d.join("tokenizer.json");
    std::fs::write(&p, "{\"model\": {\"type\": \"WordLevel\", ").unwrap();
    let e = TextTokenizer::from_file(&p, TextConfig::default()).unwrap_err();
    assert!(matches!(e, Error::BadFile { .. }), "{e:?}");
    assert!(
        e.to_string().contains("tokenizer.json") && e.to_string().contains("not a valid"),
        "{e}"
    );
    let e = TextTokenizer::from_file(&d.join("absent.json"), TextConfig::default()).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("absent.json"),
        "{e}"
    );
    write_word_level_tokenizer(&p, ["hello world"]).unwrap();
    let zero = TextConfig {
        max_len: 0,
        ..TextConfig::default()
    };
    assert!(TextTokenizer::from_file(&p, zero).is_err());
    let pad = TextConfig {
        pad_token: Some("<nope>".into()),
        ..TextConfig::default()
    };
    assert!(TextTokenizer::from_file(&p, pad)
        .unwrap_err()
        .to_string()
        .contains("<nope>"));
}

#[test]
fn minilm_tokenizer_matches_golden_ids_when_cached() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/minilm/tokenizer.json");
    if !p.exists() {
        eprintln!("SKIPPED: {} not present", p.display());
        return;
    }
    let t = TextTokenizer::from_file(
        &p,
        TextConfig {
            max_len: 16,
            ..TextConfig::default()
        },
    )
    .unwrap();
    let golden = [
        101, 1037, 3899, 11286, 2015, 2012, 1996, 5653, 2386, 1012, 102,
    ];
    let e = t.encode("A dog barks at the mailman.").unwrap();
    assert_eq!(&e.ids[..11], &golden);
    assert_eq!(t.pad_id(), 0);
    assert_eq!(&e.ids[11..], &[0; 5]);
    assert_eq!(e.len(), 11);
    let short = TextTokenizer::from_file(
        &p,
        TextConfig {
            max_len: 6,
            ..TextConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        short.encode("A dog barks at the mailman.").unwrap().ids,
        vec![101, 1037, 3899, 11286, 2015, 102]
    );
    assert_eq!(t.vocab_size(), 30522);
}

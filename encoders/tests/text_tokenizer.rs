//! WordPiece tokenizer trained on a small corpus: special tokens, round trip
//! of known words, save/load, padding and truncation of batches.

use candle_core::Device;
use encoders::text::{train_wordpiece, TextTokenizer, WordPieceTrainConfig, SPECIAL_TOKENS};

/// 50 caption-like sentences built from a few word lists (deterministic).
fn corpus() -> Vec<String> {
    let subjects = [
        "a dog",
        "two cats",
        "the man",
        "a young woman",
        "some children",
    ];
    let verbs = [
        "runs along",
        "sits on",
        "plays near",
        "walks across",
        "looks at",
    ];
    let places = [
        "the beach",
        "a wooden bench",
        "the green park",
        "a busy street",
        "the kitchen table",
    ];
    let mut out = vec![];
    for (i, s) in subjects.iter().enumerate() {
        for (j, v) in verbs.iter().enumerate() {
            let p = places[(i + 2 * j) % places.len()];
            out.push(format!("{s} {v} {p}."));
            out.push(format!("{} {v} {p} while it rains", s.to_uppercase()));
        }
    }
    out
}

fn trained() -> TextTokenizer {
    train_wordpiece(corpus().iter(), &WordPieceTrainConfig::tiny()).unwrap()
}

#[test]
fn special_tokens_have_fixed_ids() {
    let tok = trained();
    for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.token_to_id(t), Some(i as u32), "{t}");
    }
    assert_eq!(tok.pad_id(), 0);
    assert!(
        tok.vocab_size() > 30 && tok.vocab_size() <= 500,
        "vocab {}",
        tok.vocab_size()
    );
}

#[test]
fn known_words_round_trip() {
    let tok = trained();
    assert_eq!(corpus().len(), 50);
    for text in [
        "a dog runs on the beach",
        "two cats sit on a wooden bench",
        "children play near the street",
    ] {
        let ids = tok.encode(text, None).unwrap();
        assert_eq!(ids[0], 2, "[CLS] first");
        assert_eq!(*ids.last().unwrap(), 3, "[SEP] last");
        assert!(!ids.contains(&1), "no [UNK] in {text:?}: {ids:?}");
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
    }
    // Lower-cased like BERT uncased; an unseen character is [UNK].
    assert_eq!(
        tok.encode("A DOG", None).unwrap(),
        tok.encode("a dog", None).unwrap()
    );
    let ids = tok.encode("a ж dog", None).unwrap();
    assert!(ids.contains(&1), "{ids:?}");
}

#[test]
fn save_and_load_keep_the_vocabulary() {
    let tok = trained();
    let path = std::env::temp_dir().join(format!("vicreg-tok-{}.json", std::process::id()));
    tok.save(&path).unwrap();
    let back = TextTokenizer::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for text in corpus().iter().take(10) {
        assert_eq!(
            tok.encode(text, None).unwrap(),
            back.encode(text, None).unwrap()
        );
    }
    assert_eq!(back.vocab_size(), tok.vocab_size());

    let missing = std::env::temp_dir().join("vicreg-no-such-tokenizer.json");
    let err = TextTokenizer::from_file(&missing)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("vicreg-no-such-tokenizer.json"), "{err}");
    let bad = std::env::temp_dir().join(format!("vicreg-bad-tok-{}.json", std::process::id()));
    std::fs::write(&bad, "{ not json").unwrap();
    let err = TextTokenizer::from_file(&bad).err().unwrap().to_string();
    std::fs::remove_file(&bad).unwrap();
    assert!(
        err.contains("vicreg-bad-tok") && err.contains("tokenizer.json"),
        "{err}"
    );
}

#[test]
fn batches_are_padded_and_truncated() {
    let tok = trained();
    let dev = Device::Cpu;
    let texts = [
        "a dog",
        "the man walks across the green park while it rains",
    ];
    let long_len = tok.encode(texts[1], None).unwrap().len();

    // Pad to the longest sentence.
    let b = tok.encode_batch(&texts, 64, false, &dev).unwrap();
    assert_eq!(b.ids.dims(), &[2, long_len]);
    let mask: Vec<Vec<u32>> = b.mask.to_vec2().unwrap();
    let ids: Vec<Vec<u32>> = b.ids.to_vec2().unwrap();
    assert_eq!(mask[0].iter().sum::<u32>(), 4, "[CLS] a dog [SEP]");
    assert!(mask[1].iter().all(|m| *m == 1));
    assert!(
        ids[0][4..].iter().all(|i| *i == 0),
        "padding id 0: {:?}",
        ids[0]
    );

    // Pad to exactly max_len.
    let b = tok.encode_batch(&texts, 64, true, &dev).unwrap();
    assert_eq!(b.ids.dims(), &[2, 64]);

    // Truncate: [SEP] stays the last token.
    let b = tok.encode_batch(&texts, 6, false, &dev).unwrap();
    assert_eq!(b.ids.dims(), &[2, 6]);
    let ids: Vec<Vec<u32>> = b.ids.to_vec2().unwrap();
    assert_eq!(ids[1][0], 2);
    assert_eq!(ids[1][5], 3);
    assert!(tok.encode_batch(&texts, 1, false, &dev).is_err());
}

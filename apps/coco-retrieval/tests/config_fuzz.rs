//! Property test of the TOML config loader: random and mutated config text
//! given to `coco-retrieval check-config` (load, range checks, resolve, validate) makes
//! the binary exit 0 (`: ok`) or 1 with an error naming the file; never a
//! panic, never a hang. Bounded: a few hundred cases, seconds.

use proptest::prelude::*;
use vicreg_tests::config_fuzz::{check_config, config_text, Kind};

const BIN: &str = env!("CARGO_BIN_EXE_coco-retrieval");

/// The keys of `pretrain --config` with their kinds (plus one unknown key).
const KEYS: &[(&str, Kind)] = &[
    ("data-dir", Kind::Text),
    ("karpathy-split", Kind::Text),
    ("train-images", Kind::Text),
    ("train-captions", Kind::Text),
    ("val-images", Kind::Text),
    ("val-captions", Kind::Text),
    ("exp-dir", Kind::Text),
    ("image-arch", Kind::Text),
    ("zero-init-residual", Kind::Bool),
    ("image-size", Kind::Int),
    ("augment", Kind::Text),
    ("text-encoder", Kind::Text),
    ("text-layers", Kind::Int),
    ("text-hidden", Kind::Int),
    ("text-heads", Kind::Int),
    ("text-embed", Kind::Int),
    ("text-dropout", Kind::Float),
    ("vocab-size", Kind::Int),
    ("max-len", Kind::Int),
    ("mlp", Kind::Text),
    ("mlp-image", Kind::Text),
    ("mlp-text", Kind::Text),
    ("freeze-image", Kind::Bool),
    ("freeze-text", Kind::Bool),
    ("epochs", Kind::Int),
    ("batch-size", Kind::Int),
    ("base-lr", Kind::Float),
    ("wd", Kind::Float),
    ("optimizer", Kind::Text),
    ("warmup-epochs", Kind::Int),
    ("loss", Kind::Text),
    ("barlow-lambda", Kind::Float),
    ("temperature", Kind::Float),
    ("sim-coeff", Kind::Float),
    ("std-coeff-image", Kind::Float),
    ("std-coeff-text", Kind::Float),
    ("cov-coeff-image", Kind::Float),
    ("cov-coeff-text", Kind::Float),
    ("variance-reduction", Kind::Text),
    ("normalization", Kind::Text),
    ("num-workers", Kind::Int),
    ("seed", Kind::Int),
    ("log-every", Kind::Int),
    ("checkpoint-every", Kind::Int),
    ("clip-grad", Kind::Float),
    ("strict", Kind::Bool),
    ("quiet", Kind::Bool),
    ("device", Kind::Text),
    ("sync-bn", Kind::Bool),
    ("collective-timeout", Kind::Float),
    ("no-such-key", Kind::Int),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn mutated_config_text_is_ok_or_a_named_error(text in config_text(KEYS)) {
        check_config(BIN, &text)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_ok_or_a_named_error(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_config(BIN, &bytes)?;
    }
}

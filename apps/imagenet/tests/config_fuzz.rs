//! Property test of the TOML config loader: random and mutated config text
//! given to `imagenet check-config` (load, range checks, resolve, validate) makes
//! the binary exit 0 (`: ok`) or 1 with an error naming the file; never a
//! panic, never a hang. Bounded: a few hundred cases, seconds.

use proptest::prelude::*;
use vicreg_tests::config_fuzz::{check_config, config_text, Kind};

const BIN: &str = env!("CARGO_BIN_EXE_imagenet");

/// The keys of `pretrain --config` with their kinds (plus one unknown key).
const KEYS: &[(&str, Kind)] = &[
    ("data-dir", Kind::Text),
    ("exp-dir", Kind::Text),
    ("arch", Kind::Text),
    ("zero-init-residual", Kind::Bool),
    ("mlp", Kind::Text),
    ("epochs", Kind::Int),
    ("batch-size", Kind::Int),
    ("base-lr", Kind::Float),
    ("wd", Kind::Float),
    ("sim-coeff", Kind::Float),
    ("std-coeff", Kind::Float),
    ("cov-coeff", Kind::Float),
    ("variance-reduction", Kind::Text),
    ("normalization", Kind::Text),
    ("optimizer", Kind::Text),
    ("warmup-epochs", Kind::Int),
    ("num-workers", Kind::Int),
    ("seed", Kind::Int),
    ("image-size", Kind::Int),
    ("augment", Kind::Text),
    ("log-every", Kind::Int),
    ("checkpoint-every", Kind::Int),
    ("clip-grad", Kind::Float),
    ("accumulate", Kind::Int),
    ("online-probe", Kind::Bool),
    ("strict", Kind::Bool),
    ("quiet", Kind::Bool),
    ("device", Kind::Text),
    ("loss", Kind::Text),
    ("barlow-lambda", Kind::Float),
    ("temperature", Kind::Float),
    ("predictor", Kind::Bool),
    ("predictor-hidden", Kind::Int),
    ("momentum-base", Kind::Float),
    ("stop-gradient", Kind::Bool),
    ("vicreg-terms", Kind::Bool),
    ("share-weights", Kind::Bool),
    ("expander-bn", Kind::Bool),
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

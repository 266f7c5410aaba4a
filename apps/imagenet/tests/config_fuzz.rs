//! Property test of the TOML config loader: random and mutated config text
//! given to `imagenet check-config` (load, range checks, resolve, validate) makes
//! the binary exit 0 (`: ok`) or 1 with an error naming the file; never a
//! panic, never a hang. Bounded: a few hundred cases, seconds.

use vicreg_tests::config_fuzz::{Kind, SIAMESE_KEYS};

const BIN: &str = env!("CARGO_BIN_EXE_imagenet");

/// This app's own keys of `pretrain --config`, with their kinds (the
/// recipe layer's keys are added by the macro).
const OWN_KEYS: &[(&str, Kind)] = &[
    ("arch", Kind::Text),
    ("zero-init-residual", Kind::Bool),
    ("base-lr", Kind::Float),
    ("variance-reduction", Kind::Text),
    ("normalization", Kind::Text),
    ("image-size", Kind::Int),
    ("augment", Kind::Text),
    ("accumulate", Kind::Int),
    ("expander-bn", Kind::Bool),
];

vicreg_tests::config_fuzz_tests!(BIN, SIAMESE_KEYS, OWN_KEYS);

//! Property test of the TOML config loader: random and mutated config text
//! given to `esc50-audio check-config` (load, range checks, resolve, validate) makes
//! the binary exit 0 (`: ok`) or 1 with an error naming the file; never a
//! panic, never a hang. Bounded: a few hundred cases, seconds.

use vicreg_tests::config_fuzz::{Kind, SIAMESE_KEYS};

const BIN: &str = env!("CARGO_BIN_EXE_esc50-audio");

/// This app's own keys of `pretrain --config`, with their kinds (the
/// recipe layer's keys are added by the macro).
const OWN_KEYS: &[(&str, Kind)] = &[
    ("pairing", Kind::Text),
    ("sample-rate", Kind::Int),
    ("clip-seconds", Kind::Float),
    ("test-fold", Kind::Int),
    ("wave-arch", Kind::Text),
    ("spec-arch", Kind::Text),
    ("n-mels", Kind::Int),
    ("mel-hop", Kind::Int),
    ("lr", Kind::Float),
    ("std-coeff-b", Kind::Float),
    ("cov-coeff-b", Kind::Float),
    ("crop", Kind::Text),
    ("active-db", Kind::Float),
    ("eval-view", Kind::Text),
    ("time-pool", Kind::Text),
    ("speed-prob", Kind::Float),
    ("speed-range", Kind::Text),
    ("mix-prob", Kind::Float),
    ("noise-colour", Kind::Float),
];

vicreg_tests::config_fuzz_tests!(BIN, SIAMESE_KEYS, OWN_KEYS);

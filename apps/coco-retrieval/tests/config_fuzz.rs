//! Property test of the TOML config loader: random and mutated config text
//! given to `coco-retrieval check-config` (load, range checks, resolve, validate) makes
//! the binary exit 0 (`: ok`) or 1 with an error naming the file; never a
//! panic, never a hang. Bounded: a few hundred cases, seconds.

use vicreg_tests::config_fuzz::Kind;

const BIN: &str = env!("CARGO_BIN_EXE_coco-retrieval");

/// This app's own keys of `pretrain --config`, with their kinds (the
/// recipe layer's keys are added by the macro).
const OWN_KEYS: &[(&str, Kind)] = &[
    ("karpathy-split", Kind::Text),
    ("train-images", Kind::Text),
    ("train-captions", Kind::Text),
    ("val-images", Kind::Text),
    ("val-captions", Kind::Text),
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
    ("mlp-image", Kind::Text),
    ("mlp-text", Kind::Text),
    ("freeze-image", Kind::Bool),
    ("freeze-text", Kind::Bool),
    ("base-lr", Kind::Float),
    ("std-coeff-image", Kind::Float),
    ("std-coeff-text", Kind::Float),
    ("cov-coeff-image", Kind::Float),
    ("cov-coeff-text", Kind::Float),
    ("variance-reduction", Kind::Text),
    ("normalization", Kind::Text),
];

vicreg_tests::config_fuzz_tests!(BIN, OWN_KEYS);

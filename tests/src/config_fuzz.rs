//! The property test of an app's TOML config loader, shared by the apps'
//! `tests/config_fuzz.rs`: random and mutated config text given to
//! `<app> check-config` (load, range checks, resolve, validate) makes the
//! binary exit 0 (`: ok`) or 1 with an error naming the file; never a panic,
//! never a hang. Each app lists its keys and their [`Kind`]s.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// The kind of value a key takes.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// An integer.
    Int,
    /// A float.
    Float,
    /// `true` / `false`.
    Bool,
    /// A string.
    Text,
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// Writes `text` into a scratch folder, runs `<bin> check-config --config
/// <file>` and checks the outcome: exit 0 with `: ok`, or exit 1 with an
/// error naming the file; never a panic, never 20 s or more.
pub fn check_config(bin: &str, text: &[u8]) -> Result<(), TestCaseError> {
    let dir = std::env::temp_dir().join(format!("config-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "case-{}.toml",
        CASE.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, text).unwrap();
    let t = Instant::now();
    let out = Command::new(bin)
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = String::from_utf8_lossy(text);
    prop_assert!(!err.contains("panicked at"), "panic on {shown:?}:\n{err}");
    prop_assert!(t.elapsed() < Duration::from_secs(20), "slow on {shown:?}");
    match out.status.code() {
        Some(0) => prop_assert!(String::from_utf8_lossy(&out.stdout).contains(": ok")),
        Some(1) => prop_assert!(
            err.contains(file.to_str().unwrap()),
            "error does not name the file for {shown:?}:\n{err}"
        ),
        c => prop_assert!(false, "exit {c:?} on {shown:?}:\n{err}"),
    }
    if std::env::var_os("CONFIG_FUZZ_SHOW").is_some() {
        eprintln!(
            "exit {:?}: {}",
            out.status.code(),
            err.lines().last().unwrap_or("ok")
        );
    }
    let _ = std::fs::remove_file(&file);
    Ok(())
}

/// A TOML value: numbers at and beyond every bound, NaN / infinities, other types.
pub fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0u64..70_000).prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "0",
            "1",
            "2",
            "-1",
            "5",
            "6",
            "255",
            "256",
            "257",
            "4096",
            "4097",
            "18446744073709551615",
            "9223372036854775807",
            "-9223372036854775808",
            "nan",
            "+nan",
            "-nan",
            "inf",
            "-inf",
            "0.0",
            "-0.0",
            "1e308",
            "1e-320",
            "0.5",
            "1.0",
            "1.5",
            "true",
            "false",
            "\"\"",
            "\"resnet18\"",
            "\"8-8\"",
            "\"0-0\"",
            "\"cpu\"",
            "\"cuda:99\"",
            "\"vicreg\"",
            "\"simclr\"",
            "\"byol\"",
            "[]",
            "[1, 2]",
            "{}",
            "{ a = 1 }",
            "1979-05-27",
            "\"a\\u0000b\"",
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[ -~]{0,16}",
    ]
}

/// A value of the key's kind (mostly) or of any kind.
pub fn typed(kind: Kind) -> BoxedStrategy<String> {
    let ints = prop_oneof![
        (0u64..5000).prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "0",
            "1",
            "2",
            "3",
            "5",
            "6",
            "8",
            "16",
            "32",
            "255",
            "256",
            "257",
            "4096",
            "4097",
            "4000",
            "768000",
            "768001",
            "100000",
            "100001",
            "1048576",
            "1048577",
            "9223372036854775807",
            "-1",
        ])
        .prop_map(str::to_string),
    ];
    let floats = prop_oneof![
        (-2.0f64..700.0).prop_map(|v| format!("{v:?}")),
        prop::sample::select(vec![
            "nan", "-nan", "inf", "-inf", "0.0", "-0.0", "1e308", "1e-320", "0.5", "1.0", "600.0",
            "600.5", "604800.0", "1e9", "25.0",
        ])
        .prop_map(str::to_string),
    ];
    let texts = prop::sample::select(vec![
        "\"\"",
        "\"resnet18\"",
        "\"resnet18x0\"",
        "\"resnet999\"",
        "\"8-8\"",
        "\"0-0\"",
        "\"8--8\"",
        "\"cpu\"",
        "\"cuda:99\"",
        "\"vicreg\"",
        "\"simclr\"",
        "\"byol\"",
        "\"barlow-twins\"",
        "\"simsiam\"",
        "\"mean\"",
        "\"sum\"",
        "\"l2\"",
        "\"lars\"",
        "\"adamw\"",
        "\"auto\"",
        "\"small\"",
        "\"wave-wave\"",
        "\"wave-spec\"",
        "\"tiny\"",
        "\"transformer\"",
        "\"gru\"",
        "\"pretrained:\"",
        "\"caption-safe\"",
        "\"/nonexistent\"",
    ])
    .prop_map(str::to_string);
    let own = match kind {
        Kind::Int => ints.boxed(),
        Kind::Float => prop_oneof![floats, ints].boxed(),
        Kind::Bool => prop::sample::select(vec!["true", "false"])
            .prop_map(str::to_string)
            .boxed(),
        Kind::Text => texts.boxed(),
    };
    prop_oneof![8 => own, 1 => value()].boxed()
}

/// Config text: a few `key = value` lines of `keys`, then possibly one
/// mutation (bytes inserted, a byte range deleted, or the text truncated).
pub fn config_text(keys: &[(&'static str, Kind)]) -> impl Strategy<Value = Vec<u8>> {
    let line = prop::sample::select(keys.to_vec())
        .prop_flat_map(|(k, kind)| typed(kind).prop_map(move |v| format!("{k} = {v}\n")));
    (
        prop::collection::vec(line, 0..8),
        prop::sample::select(vec![0usize, 0, 0, 1, 2, 3]),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(lines, mutation, at, bytes)| {
            let mut text: Vec<u8> = lines.concat().into_bytes();
            let i = at.index(text.len() + 1);
            match mutation {
                1 => {
                    text.splice(i..i, bytes);
                }
                2 => {
                    let j = (i + bytes.len()).min(text.len());
                    text.drain(i..j);
                }
                3 => text.truncate(i),
                _ => {}
            }
            text
        })
}

/// The keys of the recipe layer's sections that every app's pretraining
/// config has (data, run, loss, the VICReg invariance coefficient, expander).
pub const RECIPE_KEYS: &[(&str, Kind)] = &[
    ("data-dir", Kind::Text),
    ("num-workers", Kind::Int),
    ("strict", Kind::Bool),
    ("exp-dir", Kind::Text),
    ("epochs", Kind::Int),
    ("batch-size", Kind::Int),
    ("wd", Kind::Float),
    ("optimizer", Kind::Text),
    ("warmup-epochs", Kind::Int),
    ("seed", Kind::Int),
    ("log-every", Kind::Int),
    ("checkpoint-every", Kind::Int),
    ("clip-grad", Kind::Float),
    ("quiet", Kind::Bool),
    ("device", Kind::Text),
    ("sync-bn", Kind::Bool),
    ("collective-timeout", Kind::Float),
    ("loss", Kind::Text),
    ("barlow-lambda", Kind::Float),
    ("temperature", Kind::Float),
    ("sim-coeff", Kind::Float),
    ("mlp", Kind::Text),
    ("no-such-key", Kind::Int),
];

/// The keys of apps whose two views go through one kind of encoder (BYOL /
/// SimSiam settings, weight sharing, one pair of VICReg coefficients, the
/// online probe).
pub const SIAMESE_KEYS: &[(&str, Kind)] = &[
    ("std-coeff", Kind::Float),
    ("cov-coeff", Kind::Float),
    ("predictor", Kind::Bool),
    ("predictor-hidden", Kind::Int),
    ("momentum-base", Kind::Float),
    ("stop-gradient", Kind::Bool),
    ("vicreg-terms", Kind::Bool),
    ("share-weights", Kind::Bool),
    ("online-probe", Kind::Bool),
];

/// The two property tests of an app's config loader, over the keys of
/// [`RECIPE_KEYS`] and the lists given: mutated config text, and arbitrary
/// bytes, each `ok` or a named error (see [`check_config`]).
#[macro_export]
macro_rules! config_fuzz_tests {
    ($bin:expr, $($keys:expr),+) => {
        use proptest::prelude::*;
        use $crate::config_fuzz::{check_config, config_text, RECIPE_KEYS};

        proptest! {
            #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

            #[test]
            fn mutated_config_text_is_ok_or_a_named_error(
                text in config_text(&[RECIPE_KEYS, $($keys),+].concat())
            ) {
                check_config($bin, &text)?;
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bytes_are_ok_or_a_named_error(
                bytes in prop::collection::vec(any::<u8>(), 0..200)
            ) {
                check_config($bin, &bytes)?;
            }
        }
    };
}

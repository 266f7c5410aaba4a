//! Out-of-range numeric flags and config keys: the real binary refuses each at
//! parse time, naming the flag (or the config key and file), without a panic.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coco-retrieval"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("coco-flags-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `args`; asserts a failure that is not a panic and returns stderr.
fn refused(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "accepted: {args:?}\n{err}");
    assert!(!err.contains("panicked at"), "panic on {args:?}:\n{err}");
    assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    err
}

#[test]
fn out_of_range_numeric_flags_are_refused_naming_the_flag() {
    let d = tmp("flags");
    let data = d.join("data");
    let data = data.to_str().unwrap();
    let exp = d.join("exp");
    let exp = exp.to_str().unwrap();
    let pretrain: &[&str] = &["pretrain", "--data-dir", data, "--exp-dir", exp];
    let retrieve: &[&str] = &["retrieve", "--exp-dir", exp, "--text", "a cat"];
    let rows: &[(&[&str], &str, &str)] = &[
        (pretrain, "--image-size", "100000"),
        (pretrain, "--image-size", "8"),
        (pretrain, "--text-layers", "0"),
        (pretrain, "--text-hidden", "100000000"),
        (pretrain, "--text-heads", "0"),
        (pretrain, "--text-embed", "0"),
        (pretrain, "--text-dropout", "1.5"),
        (pretrain, "--text-dropout", "nan"),
        (pretrain, "--vocab-size", "0"),
        (pretrain, "--max-len", "2"),
        (pretrain, "--epochs", "0"),
        (pretrain, "--batch-size", "0"),
        (pretrain, "--base-lr", "nan"),
        (pretrain, "--wd", "-1"),
        (pretrain, "--warmup-epochs", "1000000"),
        (pretrain, "--barlow-lambda", "inf"),
        (pretrain, "--temperature", "0"),
        (pretrain, "--sim-coeff", "nan"),
        (pretrain, "--std-coeff-image", "-1"),
        (pretrain, "--std-coeff-text", "nan"),
        (pretrain, "--cov-coeff-image", "inf"),
        (pretrain, "--cov-coeff-text", "-2"),
        (pretrain, "--num-workers", "100000"),
        (pretrain, "--log-every", "0"),
        (pretrain, "--clip-grad", "0"),
        (retrieve, "--k", "0"),
        (retrieve, "--k", "1000000000"),
    ];
    for (base, flag, value) in rows {
        let arg = format!("{flag}={value}");
        let mut args = base.to_vec();
        args.push(&arg);
        let err = refused(&args);
        assert!(
            err.contains(&format!("'{flag} <")) && err.contains("invalid value"),
            "{args:?}: the flag is not named:\n{err}"
        );
    }
    assert!(!std::path::Path::new(exp).exists());
}

#[test]
fn help_states_the_ranges() {
    let out = bin().args(["pretrain", "--help"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Range 16..=4096",
        "Range 0..=256",
        "Finite, >= 0",
        "In [0, 1]",
    ] {
        assert!(s.contains(want), "help lacks {want}:\n{s}");
    }
}

#[test]
fn out_of_range_config_keys_are_refused_naming_key_and_file() {
    let d = tmp("config");
    let rows = [
        ("base-lr = nan", "base-lr"),
        ("wd = -1.0", "wd"),
        ("num-workers = 100000", "num-workers"),
        ("image-size = 100000", "image-size"),
        ("text-dropout = inf", "text-dropout"),
        ("vocab-size = 1", "vocab-size"),
        ("max-len = 100000", "max-len"),
        ("epochs = 0", "epochs"),
        ("temperature = nan", "temperature"),
        ("std-coeff-text = -1.0", "std-coeff-text"),
        ("clip-grad = -1.0", "clip-grad"),
    ];
    for (i, (line, key)) in rows.iter().enumerate() {
        let file = d.join(format!("bad{i}.toml"));
        std::fs::write(&file, format!("{line}\n")).unwrap();
        let f = file.to_str().unwrap();
        for args in [
            vec!["check-config", "--config", f],
            vec!["pretrain", "--config", f, "--data-dir", "/nonexistent-data"],
        ] {
            let err = refused(&args);
            assert!(
                err.contains(&format!("`{key}`")),
                "{args:?}: key not named:\n{err}"
            );
            assert!(err.contains(f), "{args:?}: file not named:\n{err}");
        }
    }
    let good = d.join("good.toml");
    std::fs::write(&good, "epochs = 3\nimage-size = 32\n").unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

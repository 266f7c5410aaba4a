//! Out-of-range numeric flags and config keys: the real binary refuses each at
//! parse time, naming the flag (or the config key and file), without a panic.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imagenet"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imagenet-flags-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `args`; asserts a failure (not a panic) within 60 s and returns stderr.
fn refused(args: &[&str]) -> String {
    let t = Instant::now();
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "accepted: {args:?}\n{err}");
    assert!(!err.contains("panicked at"), "panic on {args:?}:\n{err}");
    assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    assert!(t.elapsed() < Duration::from_secs(60), "{args:?} too slow");
    err
}

#[test]
fn out_of_range_numeric_flags_are_refused_naming_the_flag() {
    let d = tmp("flags");
    let data = d.join("data");
    let data = data.to_str().unwrap();
    let out = d.join("out.safetensors");
    let out = out.to_str().unwrap();
    let pretrain: &[&str] = &["pretrain", "--data-dir", data];
    let linear: &[&str] = &["linear-eval", "--data-dir", data];
    let knn: &[&str] = &["knn-eval", "--data-dir", data];
    let embed: &[&str] = &["embed", "--images", data, "--out", out];
    let make: &[&str] = &["make-data", "--out", data];
    let rows: &[(&[&str], &str, &str)] = &[
        (pretrain, "--num-workers", "100000"),
        (pretrain, "--image-size", "100000"),
        (pretrain, "--image-size", "0"),
        (pretrain, "--epochs", "0"),
        (pretrain, "--batch-size", "0"),
        (pretrain, "--base-lr", "nan"),
        (pretrain, "--base-lr", "-0.1"),
        (pretrain, "--wd", "-1"),
        (pretrain, "--sim-coeff", "inf"),
        (pretrain, "--std-coeff", "NaN"),
        (pretrain, "--cov-coeff", "-0.5"),
        (pretrain, "--warmup-epochs", "1000000"),
        (pretrain, "--log-every", "0"),
        (pretrain, "--checkpoint-every", "99999999999"),
        (pretrain, "--clip-grad", "0"),
        (pretrain, "--accumulate", "0"),
        (pretrain, "--barlow-lambda", "nan"),
        (pretrain, "--temperature", "0"),
        (pretrain, "--predictor-hidden", "0"),
        (pretrain, "--momentum-base", "1.5"),
        (pretrain, "--collective-timeout", "nan"),
        (pretrain, "--epochs", "abc"),
        (linear, "--lr-backbone", "nan"),
        (linear, "--lr-head", "-1"),
        (linear, "--wd", "inf"),
        (linear, "--train-percent", "0"),
        (linear, "--train-percent", "101"),
        (linear, "--epochs", "0"),
        (linear, "--batch-size", "0"),
        (linear, "--image-size", "100000"),
        (linear, "--num-workers", "100000"),
        (knn, "--k", "20,0"),
        (knn, "--temperature", "nan"),
        (knn, "--num-workers", "100000"),
        (knn, "--image-size", "0"),
        (embed, "--image-size", "100000"),
        (embed, "--num-workers", "100000"),
        (make, "--train-per-class", "0"),
        (make, "--image-size", "100000"),
    ];
    for (base, flag, value) in rows {
        let arg = format!("{flag}={value}");
        let mut args = base.to_vec();
        args.push(&arg);
        let err = refused(&args);
        assert!(
            err.contains(&format!("'{flag} <")),
            "{args:?}: the flag is not named:\n{err}"
        );
        assert!(err.contains("invalid value"), "{args:?}:\n{err}");
    }
    // Nothing was created by the refused commands.
    assert!(!std::path::Path::new(data).exists());
}

#[test]
fn help_states_the_ranges() {
    let out = bin().args(["pretrain", "--help"]).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Range 0..=256",
        "Range 1..=4096",
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
        ("epochs = 0", "epochs"),
        ("batch-size = 0", "batch-size"),
        ("sim-coeff = inf", "sim-coeff"),
        ("std-coeff = -inf", "std-coeff"),
        ("cov-coeff = nan", "cov-coeff"),
        ("log-every = 0", "log-every"),
        ("clip-grad = 0.0", "clip-grad"),
        ("accumulate = 0", "accumulate"),
        ("temperature = nan", "temperature"),
        ("momentum-base = 2.0", "momentum-base"),
        ("predictor-hidden = 10000000", "predictor-hidden"),
        ("collective-timeout = -1.0", "collective-timeout"),
        ("warmup-epochs = 100000000", "warmup-epochs"),
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
    // A flag given on the command line is checked too, whatever the file says.
    let good = d.join("good.toml");
    std::fs::write(&good, "epochs = 3\nnum-workers = 1\n").unwrap();
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
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn ablate_grid_sections_are_range_checked() {
    let d = tmp("grid");
    let grid = d.join("grid.toml");
    std::fs::write(
        &grid,
        "[base]\nepochs = 1\n[eval]\nknn-temperature = nan\n[[run]]\nname = \"a\"\n",
    )
    .unwrap();
    let g = grid.to_str().unwrap();
    let exp = d.join("exp");
    let err = refused(&[
        "ablate",
        "--grid",
        g,
        "--exp-dir",
        exp.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(
        err.contains("`knn-temperature`") && err.contains(g),
        "{err}"
    );
    std::fs::write(
        &grid,
        "[base]\nepochs = 1\nbase-lr = nan\n[[run]]\nname = \"a\"\n",
    )
    .unwrap();
    let err = refused(&["ablate", "--grid", g, "--exp-dir", exp.to_str().unwrap()]);
    assert!(err.contains("`base-lr`") && err.contains(g), "{err}");
}

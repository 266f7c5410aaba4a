//! Out-of-range numeric flags and config keys: the real binary refuses each at
//! parse time, naming the flag (or the config key and file), without a panic.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_esc50-audio"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("esc50-flags-{name}-{}", std::process::id()));
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
    let eval: &[&str] = &["eval", "--exp-dir", exp];
    let sup: &[&str] = &["supervised", "--data-dir", data, "--exp-dir", exp];
    let rows: &[(&[&str], &str, &str)] = &[
        (pretrain, "--sample-rate", "3000000000"),
        (pretrain, "--sample-rate", "100"),
        (pretrain, "--clip-seconds", "1e9"),
        (pretrain, "--clip-seconds", "0"),
        (pretrain, "--clip-seconds", "nan"),
        (pretrain, "--test-fold", "6"),
        (pretrain, "--test-fold", "0"),
        (pretrain, "--n-mels", "0"),
        (pretrain, "--n-mels", "100000"),
        (pretrain, "--mel-hop", "0"),
        (pretrain, "--epochs", "0"),
        (pretrain, "--batch-size", "0"),
        (pretrain, "--lr", "nan"),
        (pretrain, "--lr", "-1"),
        (pretrain, "--wd", "inf"),
        (pretrain, "--warmup-epochs", "1000000"),
        (pretrain, "--sim-coeff", "-1"),
        (pretrain, "--std-coeff", "nan"),
        (pretrain, "--cov-coeff", "inf"),
        (pretrain, "--std-coeff-b", "-0.1"),
        (pretrain, "--cov-coeff-b", "nan"),
        (pretrain, "--num-workers", "100000"),
        (pretrain, "--log-every", "0"),
        (pretrain, "--clip-grad", "-1"),
        (pretrain, "--barlow-lambda", "nan"),
        (pretrain, "--temperature", "0"),
        (pretrain, "--predictor-hidden", "0"),
        (pretrain, "--momentum-base", "-0.5"),
        (eval, "--probe-epochs", "0"),
        (eval, "--probe-lr", "nan"),
        (eval, "--probe-wd", "-1"),
        (eval, "--probe-batch-size", "0"),
        (eval, "--batch-size", "0"),
        (eval, "--num-workers", "100000"),
        (sup, "--epochs", "0"),
        (sup, "--lr", "nan"),
        (sup, "--wd", "-1"),
        (sup, "--sample-rate", "1000000000"),
        (sup, "--clip-seconds", "inf"),
        (sup, "--n-mels", "0"),
        (sup, "--num-workers", "100000"),
        (sup, "--batch-size", "0"),
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
        "Range 4000..=768000 Hz",
        "Seconds in (0, 600]",
        "Range 0..=256",
        "Finite, >= 0",
    ] {
        assert!(s.contains(want), "help lacks {want}:\n{s}");
    }
}

#[test]
fn out_of_range_config_keys_are_refused_naming_key_and_file() {
    let d = tmp("config");
    let rows = [
        ("lr = nan", "lr"),
        ("wd = -1.0", "wd"),
        ("num-workers = 100000", "num-workers"),
        ("sample-rate = 2147483648", "sample-rate"),
        ("clip-seconds = 1e9", "clip-seconds"),
        ("clip-seconds = nan", "clip-seconds"),
        ("test-fold = 9", "test-fold"),
        ("n-mels = 0", "n-mels"),
        ("mel-hop = 0", "mel-hop"),
        ("epochs = 0", "epochs"),
        ("batch-size = 0", "batch-size"),
        ("std-coeff-b = inf", "std-coeff-b"),
        ("temperature = -1.0", "temperature"),
        ("momentum-base = nan", "momentum-base"),
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
    std::fs::write(&good, "epochs = 3\nsample-rate = 16000\n").unwrap();
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

//! The `tabular` binary end to end: a new two-branch app on the recipe layer
//! gets the run's flags and config file (overlaid key by key), resume,
//! metrics, plots and clear errors on bad tables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_tabular"), "tabular-cli");

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    out
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    String::from_utf8_lossy(&out.stdout).to_string() + &err
}

fn fails(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn data(dir: &Path, rows: usize) -> PathBuf {
    let d = dir.join("data");
    ok(bin()
        .args(["make-data", "--rows", &rows.to_string(), "--out"])
        .arg(&d));
    d
}

/// Mean total loss of each epoch record in `metrics.jsonl`.
fn epoch_losses(exp: &Path) -> Vec<f64> {
    std::fs::read_to_string(exp.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"epoch\""))
        .map(|l| {
            let i = l.find("\"total\":").unwrap() + 8;
            l[i..].split([',', '}']).next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn pretrains_writes_the_run_dir_and_resumes() {
    let dir = tmp("run");
    let d = data(&dir, 512);
    let exp = dir.join("exp");
    let args = |e: &Path| -> Vec<String> {
        [
            "pretrain",
            "--epochs",
            "4",
            "--batch-size",
            "64",
            "--warmup-epochs",
            "1",
            "--quiet",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            d.display().to_string(),
            "--exp-dir".into(),
            e.display().to_string(),
        ])
        .collect()
    };
    let out = ok(bin().args(args(&exp)));
    assert!(out.contains("done: 32 steps"), "{out}");
    for f in [
        "a-encoder.safetensors",
        "b-encoder.safetensors",
        "checkpoint.safetensors",
        "plot_loss.svg",
    ] {
        assert!(exp.join(f).is_file(), "{f} missing");
    }
    let losses = epoch_losses(&exp);
    assert_eq!(losses.len(), 4);
    assert!(
        losses[3] < losses[0] - 1.0,
        "the loss should fall: {losses:?}"
    );
    // The same command again finds the finished run and trains nothing more.
    let before = std::fs::read(exp.join("a-encoder.safetensors")).unwrap();
    let out = ok(bin().args(args(&exp)));
    assert!(out.contains("done: 32 steps"), "{out}");
    assert_eq!(epoch_losses(&exp).len(), 4);
    assert_eq!(
        std::fs::read(exp.join("a-encoder.safetensors")).unwrap(),
        before
    );
    // --resume without a checkpoint is refused.
    let e = fails(bin().args(args(&dir.join("fresh"))).arg("--resume"));
    assert!(e.contains("checkpoint"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flags_override_the_config_file_key_by_key() {
    let dir = tmp("overlay");
    let d = data(&dir, 256);
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[run]\nepochs = 3\nbatch-size = 32\nquiet = true\n\n[tabular]\ndata-dir = {:?}\nhidden = 16\nmlp = \"32-32\"\n",
            d.display().to_string()
        ),
    )
    .unwrap();
    let exp = dir.join("exp");
    let out = ok(bin()
        .args(["pretrain", "--epochs", "1", "--config"])
        .arg(&cfg)
        .arg("--exp-dir")
        .arg(&exp));
    assert!(
        out.contains("done: 8 steps"),
        "256 rows / 32 per batch, 1 epoch: {out}"
    );
    let written = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    for line in [
        "epochs = 1",
        "batch-size = 32",
        "hidden = 16",
        "mlp = \"32-32\"",
    ] {
        assert!(written.contains(line), "{line} missing in\n{written}");
    }
    // A misspelt key names the file and the key.
    std::fs::write(&cfg, "[run]\nepoch = 3\n").unwrap();
    let e = fails(bin().args(["pretrain", "--config"]).arg(&cfg));
    assert!(e.contains("c.toml") && e.contains("epoch"), "{e}");
    // Out-of-range values are refused by the flag parser and the config check.
    let e = fails(bin().args(["pretrain", "--epochs", "0"]));
    assert!(e.contains("invalid value"), "{e}");
    std::fs::write(&cfg, "[run]\nbase-lr = -1.0\n").unwrap();
    let e = fails(bin().args(["pretrain", "--config"]).arg(&cfg));
    assert!(e.contains("base-lr"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_tables_are_named_with_their_line() {
    let dir = tmp("bad");
    let d = data(&dir, 64);
    let exp = dir.join("exp");
    let pretrain = |batch: &str| {
        let mut c = bin();
        c.args([
            "pretrain",
            "--batch-size",
            batch,
            "--epochs",
            "1",
            "--quiet",
            "--data-dir",
        ])
        .arg(&d)
        .arg("--exp-dir")
        .arg(&exp);
        c
    };
    let a = d.join("a.csv");
    let good = std::fs::read_to_string(&a).unwrap();
    std::fs::write(&a, good.replacen(',', ",x", 1)).unwrap();
    let e = fails(&mut pretrain("16"));
    assert!(
        e.contains("a.csv:1") && e.contains("not a finite number"),
        "{e}"
    );
    let mut short: Vec<&str> = good.lines().collect();
    short.pop();
    std::fs::write(&a, short.join("\n")).unwrap();
    let e = fails(&mut pretrain("16"));
    assert!(e.contains("63 rows") && e.contains("b.csv 64"), "{e}");
    std::fs::write(&a, &good).unwrap();
    let e = fails(&mut pretrain("128"));
    assert!(e.contains("no full batch"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_and_plot_come_with_the_recipe_layer() {
    let dir = tmp("common");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[run]\nepochs = 2\n[tabular]\nhidden = 8\n").unwrap();
    let out = ok(bin().args(["check-config", "--config"]).arg(&cfg));
    assert!(out.contains("c.toml: ok"), "{out}");
    // A size read from a file is bounded, named with the file.
    std::fs::write(&cfg, "[tabular]\nhidden = 1000000000\n").unwrap();
    let e = fails(bin().args(["check-config", "--config"]).arg(&cfg));
    assert!(e.contains("c.toml") && e.contains("`hidden`"), "{e}");
    std::fs::write(&cfg, "[tabular]\nmlp = \"32-x\"\n").unwrap();
    let e = fails(bin().args(["check-config", "--config"]).arg(&cfg));
    assert!(e.contains("c.toml") && e.contains("32-x"), "{e}");
    let d = data(&dir, 64);
    let exp = dir.join("exp");
    ok(bin()
        .args([
            "pretrain",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--quiet",
            "--log-every",
            "1",
        ])
        .args(["--hidden", "8", "--mlp", "16-16", "--data-dir"])
        .arg(&d)
        .arg("--exp-dir")
        .arg(&exp));
    let out = ok(bin().args(["plot", "--exp-dir"]).arg(&exp));
    assert!(out.contains(".svg"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

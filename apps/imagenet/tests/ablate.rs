//! `imagenet ablate` on a tiny grid (run directories, summary rows and
//! columns, resuming), grid errors naming the file and the key, and every
//! `--loss` training a few steps through `imagenet pretrain`.

use std::path::Path;

use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_tests::app::{fails, run};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-ablate");

/// Keys of a run small enough for a test: ResNet-18 on 16 px crops, batch 4.
const TINY_BASE: &str = r#"
arch = "resnet18"
mlp = "32-32"
epochs = 1
batch-size = 4
image-size = 16
warmup-epochs = 0
optimizer = "adamw"
base-lr = 0.01
num-workers = 1
quiet = true
"#;

const TINY_DATA: &str = r#"
[data]
num-classes = 3
train-per-class = 4
val-per-class = 2
image-size = 16

[eval]
probe-epochs = 2
knn-k = 3
"#;

#[test]
fn ablate_writes_runs_and_summary_then_resumes() {
    let root = tmp("grid");
    let grid = root.join("tiny.toml");
    std::fs::write(
        &grid,
        format!("[base]\n{TINY_BASE}\n[grid]\ncov-coeff = [1.0, 0.0]\n{TINY_DATA}"),
    )
    .unwrap();
    let exp = root.join("exp");
    let ablate = |exp: &Path| {
        run(bin()
            .env("VICREG_CACHE", root.join("cache"))
            .args(["ablate", "--grid"])
            .arg(&grid)
            .arg("--exp-dir")
            .arg(exp))
    };
    let out = ablate(&exp);
    for name in ["cov-coeff=1", "cov-coeff=0"] {
        let d = exp.join(name);
        for f in [
            "config.toml",
            "metrics.jsonl",
            "resnet18-encoder.safetensors",
            "linear_eval.json",
            "knn_eval.json",
            "ablate_result.json",
        ] {
            assert!(d.join(f).is_file(), "{} missing", d.join(f).display());
        }
        let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
        assert!(
            cfg.contains("cov-coeff = ") && cfg.contains("loss = \"vicreg\""),
            "{cfg}"
        );
    }
    let csv = std::fs::read_to_string(exp.join("summary.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in [
        "run",
        "cov-coeff",
        "status",
        "linear top-1 %",
        "k-NN top-1 %",
        "loss:invariance",
        "loss:covariance_a",
        "loss:total",
        "corr repr",
        "corr emb",
        "emb std",
        "time s",
    ] {
        assert!(header.contains(&col), "column {col} missing: {header:?}");
    }
    assert!(lines[1].starts_with("cov-coeff=1,1,done,"), "{csv}");
    assert!(lines[2].starts_with("cov-coeff=0,0,done,"), "{csv}");
    for l in &lines[1..] {
        let cells: Vec<&str> = l.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{l}");
        for col in ["linear top-1 %", "corr emb", "emb std"] {
            let i = header.iter().position(|c| *c == col).unwrap();
            let v: f64 = cells[i].parse().unwrap_or_else(|_| panic!("{col}: {l}"));
            assert!(v.is_finite() && v >= 0.0, "{col} = {v}");
        }
    }
    let md = std::fs::read_to_string(exp.join("summary.md")).unwrap();
    assert!(md.contains("| run | cov-coeff | status |"), "{md}");
    assert!(exp.join("summary.svg").is_file());
    assert!(String::from_utf8_lossy(&out.stdout).contains("| cov-coeff=0 | 0 | done |"));

    // Second call: both runs are skipped, the summary is rewritten with them.
    let again = ablate(&exp);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.matches("finished earlier, skipped").count(), 2, "{err}");
    assert!(!err.contains("starting"), "{err}");
    let md2 = std::fs::read_to_string(exp.join("summary.md")).unwrap();
    assert!(
        md2.contains("| cov-coeff=1 | 1 | done (earlier) |"),
        "{md2}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn grid_errors_name_the_file_and_the_key() {
    let root = tmp("errors");
    let check = |file: &str, text: &str, key: &str| {
        let p = root.join(file);
        std::fs::write(&p, text).unwrap();
        let err = fails(
            bin()
                .env("VICREG_CACHE", root.join("cache"))
                .args(["ablate", "--dry-run", "--grid"])
                .arg(&p)
                .arg("--exp-dir")
                .arg(root.join("exp")),
        );
        assert!(err.contains(file), "{file}: {err}");
        assert!(err.contains(key), "{key}: {err}");
    };
    check("typo.toml", "[grid]\nsim-coef = [1.0, 2.0]\n", "sim-coef");
    check("scalar.toml", "[grid]\nmlp = \"64-64\"\n", "mlp");
    check("eval.toml", "[eval]\nprobe-epoch = 3\n", "probe-epoch");
    check("loss.toml", "[[run]]\nloss = \"byoll\"\n", "byoll");
    check("table.toml", "[grids]\nmlp = [\"8-8\"]\n", "grids");
    check(
        "combo.toml",
        "[[run]]\nloss = \"simclr\"\nvicreg-terms = true\n",
        "vicreg-terms",
    );
    assert!(!root.join("exp").exists(), "nothing may run on a bad grid");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn every_loss_trains_a_few_steps() {
    let root = tmp("losses");
    let data = root.join("data");
    generate_image_folder(
        &data,
        &SynthImageConfig {
            train_per_class: 4,
            val_per_class: 1,
            num_classes: 2,
            image_size: 16,
            ..SynthImageConfig::default()
        },
    )
    .unwrap();
    let cases: [&[&str]; 7] = [
        &["--loss", "vicreg"],
        &["--loss", "barlow-twins", "--barlow-lambda", "0.01"],
        &[
            "--loss",
            "simclr",
            "--temperature",
            "0.2",
            "--share-weights",
            "false",
        ],
        &[
            "--loss",
            "byol",
            "--momentum-base",
            "0.9",
            "--predictor-hidden",
            "16",
        ],
        &["--loss", "byol", "--vicreg-terms"],
        &["--loss", "simsiam"],
        &[
            "--loss",
            "vicreg",
            "--expander-bn",
            "false",
            "--normalization",
            "l2",
        ],
    ];
    for (i, case) in cases.iter().enumerate() {
        let exp = root.join(format!("run{i}"));
        run(bin()
            .args([
                "pretrain",
                "--arch",
                "resnet18",
                "--mlp",
                "16-16",
                "--batch-size",
                "4",
                "--image-size",
                "16",
                "--epochs",
                "1",
                "--warmup-epochs",
                "0",
                "--num-workers",
                "1",
                "--log-every",
                "1",
                "--quiet",
            ])
            .args(*case)
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(&exp));
        assert!(
            exp.join("resnet18-encoder.safetensors").is_file(),
            "{case:?}: no encoder exported"
        );
        let metrics = std::fs::read_to_string(exp.join("metrics.jsonl")).unwrap();
        let steps = metrics.matches("\"type\":\"step\"").count();
        assert!(steps >= 2, "{case:?}: {steps} steps logged\n{metrics}");
        let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("loss = \"{}\"", case[1])), "{cfg}");
    }
    let t = std::fs::read_to_string(root.join("run4").join("metrics.jsonl")).unwrap();
    assert!(
        t.contains("variance_a") && t.contains("covariance_a"),
        "D.8 terms logged: {t}"
    );
    let err = fails(
        bin()
            .args(["pretrain", "--loss", "mocov3", "--data-dir"])
            .arg(&data),
    );
    assert!(
        err.contains("mocov3") && err.contains("barlow-twins"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

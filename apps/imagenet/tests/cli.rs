//! The `imagenet` binary end to end on a tiny generated ImageFolder:
//! pretrain -> linear-eval -> knn-eval -> embed, resume, and clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datasets::synth_images::{generate_image_folder, SynthImageConfig};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imagenet"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imagenet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    if !out.status.success() {
        panic!(
            "command failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected failure: {cmd:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn tiny_data(root: &Path) {
    let cfg = SynthImageConfig {
        train_per_class: 3,
        val_per_class: 2,
        num_classes: 4,
        image_size: 32,
        ..SynthImageConfig::default()
    };
    generate_image_folder(root, &cfg).unwrap();
}

fn pretrain(data: &Path, exp: &Path, epochs: usize) -> Output {
    run(bin()
        .args([
            "pretrain",
            "--arch",
            "resnet18",
            "--mlp",
            "32-32",
            "--batch-size",
            "4",
            "--image-size",
            "32",
            "--quiet",
            "--num-workers",
            "1",
            "--warmup-epochs",
            "0",
        ])
        .arg("--epochs")
        .arg(epochs.to_string())
        .arg("--data-dir")
        .arg(data)
        .arg("--exp-dir")
        .arg(exp))
}

#[test]
fn pretrain_then_evaluate_then_embed() {
    let root = tmp("seq");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    pretrain(&data, &exp, 1);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "resnet18-encoder.safetensors",
    ] {
        assert!(exp.join(f).is_file(), "missing {f}");
    }
    // The written config repeats the run: every key resolved.
    let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(
        cfg.contains("base-lr = 0.8") && cfg.contains("image-size = 32"),
        "{cfg}"
    );
    // Resuming a finished run with one more epoch continues from the checkpoint.
    let out = pretrain(&data, &exp, 2);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("done: 6 steps"), "{s}");

    let out = run(bin()
        .args([
            "linear-eval",
            "--epochs",
            "3",
            "--lr-head",
            "0.1",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&exp));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("linear eval (resnet18") && s.contains("top-1"),
        "{s}"
    );
    assert!(exp.join("linear_eval.json").is_file());
    let out = run(bin()
        .args([
            "linear-eval",
            "--epochs",
            "2",
            "--train-percent",
            "50",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&exp));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("8 train / 8 val"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Semi-supervised protocol: backbone + head fine-tuned, one record per epoch.
    let out = run(bin()
        .args([
            "linear-eval",
            "--weights",
            "finetune",
            "--epochs",
            "2",
            "--train-percent",
            "50",
            "--lr-backbone",
            "0.01",
            "--lr-head",
            "0.1",
            "--batch-size",
            "4",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&exp));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("fine-tuned eval (resnet18, 50% labels, 2 epochs)"));
    let log = std::fs::read_to_string(exp.join("finetune_eval.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    assert!(log.contains("\"top5\""));

    let out = run(bin()
        .args(["knn-eval", "--k", "1,3", "--num-workers", "1"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(exp.join("resnet18-encoder.safetensors")));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("1-NN top-1") && s.contains("3-NN top-1"), "{s}");

    let emb = root.join("emb.safetensors");
    run(bin()
        .args(["embed", "--image-size", "32", "--num-workers", "1"])
        .arg("--images")
        .arg(data.join("val"))
        .arg("--pretrained")
        .arg(&exp)
        .arg("--out")
        .arg(&emb));
    let t = vicreg_core::io::load_safetensors(&emb).unwrap();
    assert_eq!(t["embeddings"].dims(), &[8, 512]);
    let files = std::fs::read_to_string(root.join("emb.safetensors.files.txt")).unwrap();
    assert_eq!(files.lines().count(), 8);

    // Weights of another architecture: a clear error listing the mismatch.
    let err = fails(
        bin()
            .args(["knn-eval", "--arch", "resnet34"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--pretrained")
            .arg(exp.join("resnet18-encoder.safetensors")),
    );
    assert!(
        err.contains("resnet18-encoder.safetensors") && err.contains("missing"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn clear_errors_for_bad_input() {
    let root = tmp("errors");
    let err = fails(
        bin()
            .args(["pretrain", "--data-dir", "/nonexistent/data", "--exp-dir"])
            .arg(root.join("r")),
    );
    assert!(
        err.contains("/nonexistent/data") && err.contains("does not exist"),
        "{err}"
    );
    let data = root.join("data");
    tiny_data(&data);
    let err = fails(
        bin()
            .args(["pretrain", "--arch", "resnet19"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("r")),
    );
    assert!(
        err.contains("resnet19") && err.contains("resnet50"),
        "{err}"
    );
    let err = fails(
        bin()
            .args(["pretrain", "--mlp", "64-x"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("r")),
    );
    assert!(err.contains("64-x"), "{err}");
    // An empty class folder is reported by name.
    std::fs::create_dir_all(data.join("train").join("zz_empty")).unwrap();
    let out = bin()
        .args([
            "knn-eval",
            "--arch",
            "resnet18",
            "--num-workers",
            "1",
            "--image-size",
            "32",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zz_empty"), "{err}");
    let bad_cfg = root.join("bad.toml");
    std::fs::write(&bad_cfg, "epochs = 'many'\n").unwrap();
    let err = fails(bin().arg("pretrain").arg("--config").arg(&bad_cfg));
    assert!(err.contains("bad.toml"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn demo_prints_vicreg_random_and_supervised_rows() {
    let root = tmp("demo");
    let exp = root.join("run");
    let out = run(bin()
        .env("VICREG_CACHE", root.join("cache"))
        .args([
            "demo",
            "--train-per-class",
            "2",
            "--val-per-class",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--mlp",
            "32-32",
            "--image-size",
            "16",
            "--num-workers",
            "1",
            "--supervised",
            "--exp-dir",
        ])
        .arg(&exp));
    let s = String::from_utf8_lossy(&out.stdout);
    for row in [
        "| VICReg |",
        "| random init |",
        "| supervised (reference) |",
    ] {
        assert!(s.contains(row), "no {row} row in:\n{s}");
    }
    assert!(s.contains("pretraining: 4 steps"), "{s}");
    assert!(root
        .join("cache/synth-images/train/09_waves/00001.png")
        .is_file());
    assert!(exp.join("resnet18-encoder.safetensors").is_file());
    assert!(exp.join("supervised/finetune_eval.jsonl").is_file());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn make_data_writes_the_builtin_set_once() {
    let root = tmp("make-data");
    let out_dir = root.join("synth");
    let args = [
        "make-data",
        "--train-per-class",
        "2",
        "--val-per-class",
        "1",
        "--image-size",
        "16",
        "--out",
    ];
    let out = run(bin().args(args).arg(&out_dir));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("written (30 images)"), "{s}");
    let img = image::open(out_dir.join("val/05_star/00000.png")).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    let out = run(bin().args(args).arg(&out_dir));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("already complete"), "{s}");
    std::fs::remove_dir_all(root).unwrap();
}

//! `imagenet pretrain --loss vicregl` and `--multi-crop` end to end on a tiny
//! generated ImageFolder: a ConvNeXt VICRegL run (global + local criterion,
//! drop path on) killed mid-run (SIGKILL) and resumed ends with the same
//! weights as the run done at once; its encoder evaluates with knn-eval;
//! and the dense probe; multi-crop VICReg on a ResNet logs only the global
//! terms; clear errors.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_tests::app::{assert_config_lines, fails, run};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-vicregl");

fn tiny_data(root: &Path) {
    let cfg = SynthImageConfig {
        train_per_class: 3,
        val_per_class: 2,
        num_classes: 4,
        image_size: 64,
        ..SynthImageConfig::default()
    };
    generate_image_folder(root, &cfg).unwrap();
}

fn vicregl_cmd(data: &Path, exp: &Path, epochs: usize) -> Command {
    let mut c = bin();
    c.args([
        "pretrain",
        "--arch",
        "convnext_atto",
        "--loss",
        "vicregl",
        "--multi-crop",
        "2x64+2x32",
        "--alpha",
        "0.75",
        "--num-matches",
        "3,1",
        "--mlp",
        "32-32",
        "--maps-mlp",
        "16-16",
        "--optimizer",
        "adamw",
        "--base-lr",
        "1e-3",
        "--batch-size",
        "4",
        "--image-size",
        "64",
        "--quiet",
        "--num-workers",
        "1",
        "--warmup-epochs",
        "0",
        "--checkpoint-every",
        "1",
    ])
    .arg("--epochs")
    .arg(epochs.to_string())
    .arg("--data-dir")
    .arg(data)
    .arg("--exp-dir")
    .arg(exp);
    c
}

fn checkpoint_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["global_step"].as_u64()
}

#[test]
fn convnext_vicregl_killed_and_resumed_matches_the_whole_run() {
    let root = tmp("resume");
    let data = root.join("data");
    tiny_data(&data);
    let whole = root.join("whole");
    let killed = root.join("killed");
    // 12 images, batch 4: 3 steps per epoch, 12 steps in all.
    run(&mut vicregl_cmd(&data, &whole, 4));
    let mut child = vicregl_cmd(&data, &killed, 4)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        if checkpoint_step(&killed).is_some_and(|s| s >= 4) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, mid-epoch 2
    child.wait().unwrap();
    let at = checkpoint_step(&killed).unwrap();
    assert!((4..12).contains(&at), "killed at step {at}");
    let out = run(&mut vicregl_cmd(&data, &killed, 4));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("done: 12 steps"), "{s}");
    let enc = "convnext_atto-encoder.safetensors";
    let a = std::fs::read(whole.join(enc)).unwrap();
    let b = std::fs::read(killed.join(enc)).unwrap();
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    // every term of both criteria is logged
    let metrics = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    for term in [
        "global_inv",
        "global_var",
        "global_cov",
        "local_inv",
        "local_var",
        "local_cov",
    ] {
        assert!(metrics.contains(term), "{term} missing from metrics.jsonl");
    }
    assert_config_lines(
        &whole,
        &["loss = \"vicregl\"", "multi-crop = \"2x64+2x32\""],
    );
    // the exported ConvNeXt evaluates (its architecture read from the run)
    let out = run(bin()
        .args([
            "knn-eval",
            "--k",
            "3",
            "--num-workers",
            "1",
            "--baselines",
            "false",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&whole));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("3-NN"), "{s}");
    // ... and its feature map goes through the dense (segmentation) probe
    let out = run(bin()
        .args([
            "dense-eval",
            "--train-scenes",
            "8",
            "--val-scenes",
            "4",
            "--scene-size",
            "64",
        ])
        .arg("--pretrained")
        .arg(&whole));
    let s = String::from_utf8_lossy(&out.stdout);
    for row in [
        "pretrained convnext_atto",
        "random init convnext_atto",
        "all background",
    ] {
        assert!(s.contains(row), "{row} missing: {s}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("dense_eval.json")).unwrap())
            .unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let miou = r["miou"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&miou), "{r}");
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn multi_crop_vicreg_on_a_resnet_has_only_global_terms() {
    // (with two micro-batches per step)
    let root = tmp("mcvicreg");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    run(bin()
        .args([
            "pretrain",
            "--arch",
            "resnet18",
            "--multi-crop",
            "2x32+3x16",
            "--mlp",
            "32-32",
            "--batch-size",
            "4",
            "--accumulate",
            "2",
            "--epochs",
            "1",
            "--quiet",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--exp-dir")
        .arg(&exp));
    let metrics = std::fs::read_to_string(exp.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("global_inv") && !metrics.contains("local_inv"));
    assert!(exp.join("resnet18-encoder.safetensors").is_file());
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_vicregl_settings_are_refused() {
    let root = tmp("bad");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    let cases: [(&[&str], &str); 5] = [
        (&["--multi-crop", "2x64+x32"], "multi-crop spec"),
        (
            &["--multi-crop", "2x64", "--loss", "simclr"],
            "multi-crop views train with",
        ),
        (
            &["--loss", "vicregl", "--share-weights", "false"],
            "share-weights = true",
        ),
        (
            &["--loss", "vicregl", "--arch", "convnext_huge"],
            "convnext_huge",
        ),
        (
            &["--loss", "vicregl", "--num-matches", "3"],
            "two comma-separated counts",
        ),
    ];
    for (args, want) in cases {
        let e = fails(
            bin()
                .args(["pretrain", "--epochs", "1", "--batch-size", "4"])
                .args(args)
                .arg("--data-dir")
                .arg(&data)
                .arg("--exp-dir")
                .arg(&exp),
        );
        assert!(e.contains(want), "{args:?}: {e}");
    }
    std::fs::remove_dir_all(&root).ok();
}

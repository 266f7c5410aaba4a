//! The real `imagenet` binary on malformed inputs (issue #20): each case builds
//! its bad file on the fly and asserts a clean refusal: exit code non-zero, no
//! panic, the file and the problem named, finished within a time limit.
//! Run-directory safety: a failed run leaves the previous run's files as they were.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_tests::bad_input::{expect_refusal, fresh_dir, png_bytes, snapshot};

const LIMIT: Duration = Duration::from_secs(120);

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-badinputs");

/// 3 classes x 2 train / 1 val images of 32 px.
fn folder(root: &Path) -> PathBuf {
    let d = root.join("data");
    let cfg = SynthImageConfig {
        train_per_class: 2,
        val_per_class: 1,
        num_classes: 3,
        image_size: 32,
        ..SynthImageConfig::default()
    };
    generate_image_folder(&d, &cfg).unwrap();
    d
}

fn first_class(split: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(split)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.remove(0)
}

fn knn(data: &Path) -> Command {
    let mut c = bin();
    c.args([
        "knn-eval",
        "--arch",
        "resnet18",
        "--image-size",
        "32",
        "--k",
        "1",
    ])
    .arg("--data-dir")
    .arg(data);
    c
}

/// An IDX3 header of dims (2^31, 2^31, 4), whose product wraps to exactly 0
/// in 64 bits, with an empty payload (unchecked arithmetic would accept it).
fn idx_wrapping_to_zero(path: &Path) {
    let mut b = vec![0, 0, 0x08, 3];
    for d in [0x8000_0000u32, 0x8000_0000, 4] {
        b.extend(d.to_be_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn idx_header_whose_dimension_product_overflows() {
    let root = fresh_dir("imagenet-bad", "idx");
    let d = root.join("idx");
    std::fs::create_dir_all(&d).unwrap();
    idx_wrapping_to_zero(&d.join("train-images-idx3-ubyte"));
    let mut l = vec![0, 0, 0x08, 1];
    l.extend(3u32.to_be_bytes());
    l.extend([0, 1, 2]);
    std::fs::write(d.join("train-labels-idx1-ubyte"), &l).unwrap();
    std::fs::copy(
        d.join("train-images-idx3-ubyte"),
        d.join("t10k-images-idx3-ubyte"),
    )
    .unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), &l).unwrap();
    expect_refusal(
        "idx overflow",
        &mut knn(&d),
        &["train-images-idx3-ubyte"],
        LIMIT,
    );
}

#[test]
fn a_1x65000_png_at_evaluation_is_refused_by_name() {
    let root = fresh_dir("imagenet-bad", "strip");
    let d = folder(&root);
    let class = first_class(&d.join("val"));
    std::fs::write(class.join("strip.png"), png_bytes(1, 65_000)).unwrap();
    expect_refusal("1x65000 png", &mut knn(&d), &["strip.png"], LIMIT);
}

#[test]
fn a_truncated_png_at_evaluation_is_refused_by_name() {
    let root = fresh_dir("imagenet-bad", "trunc");
    let d = folder(&root);
    let class = first_class(&d.join("train"));
    let victim = std::fs::read_dir(&class)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 3]).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    expect_refusal("truncated png", &mut knn(&d), &[&name], LIMIT);
}

#[test]
fn a_pth_checkpoint_with_a_broken_pickle_is_refused_by_name() {
    let root = fresh_dir("imagenet-bad", "pth");
    let d = folder(&root);
    let pth = root.join("liar.pth");
    // A zip-less, pickle-less file: the loader must say what it is not.
    std::fs::write(&pth, b"PK\x03\x04 this is not a torch checkpoint").unwrap();
    let mut c = knn(&d);
    c.arg("--pretrained").arg(&pth);
    expect_refusal("broken .pth", &mut c, &["liar.pth"], LIMIT);
}

#[test]
fn nan_and_negative_rates_are_refused_at_parse_time() {
    let root = fresh_dir("imagenet-bad", "nan");
    let d = folder(&root);
    for (flag, v) in [
        ("--lr-head", "nan"),
        ("--lr-backbone", "NaN"),
        ("--wd", "-1"),
        ("--lr-head", "inf"),
    ] {
        let mut c = bin();
        c.args(["linear-eval", "--arch", "resnet18"])
            .arg(format!("{flag}={v}"))
            .arg("--data-dir")
            .arg(&d);
        expect_refusal(&format!("{flag} {v}"), &mut c, &[flag], LIMIT);
    }
}

#[test]
fn a_val_class_unknown_to_train_is_refused_by_name() {
    let root = fresh_dir("imagenet-bad", "valclass");
    let d = folder(&root);
    let extra = d.join("val").join("zebra-not-in-train");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("z.png"), png_bytes(32, 32)).unwrap();
    expect_refusal(
        "unknown val class",
        &mut knn(&d),
        &["zebra-not-in-train"],
        LIMIT,
    );
}

fn tiny_pretrain(data: &Path, exp: &Path, epochs: &str) -> Command {
    let mut c = bin();
    c.args([
        "pretrain",
        "--arch",
        "resnet18",
        "--mlp",
        "64-64",
        "--epochs",
        epochs,
        "--batch-size",
        "6",
        "--image-size",
        "32",
        "--num-workers",
        "0",
        "--quiet",
    ])
    .arg("--data-dir")
    .arg(data)
    .arg("--exp-dir")
    .arg(exp);
    c
}

#[test]
fn a_run_that_fails_on_bad_input_leaves_the_run_directory_untouched() {
    let root = fresh_dir("imagenet-bad", "rundir");
    let d = folder(&root);
    let exp = root.join("run");
    let ok = tiny_pretrain(&d, &exp, "1").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = snapshot(&exp);
    assert!(
        before
            .iter()
            .any(|(p, _)| p.ends_with("checkpoint.safetensors")),
        "no checkpoint in {before:?}",
    );
    // The same run asked for one more epoch, strict, on data with a broken image.
    let class = first_class(&d.join("train"));
    std::fs::write(class.join("broken.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let mut c = tiny_pretrain(&d, &exp, "2");
    c.arg("--strict");
    expect_refusal(
        "strict run on a broken image",
        &mut c,
        &["broken.png"],
        LIMIT,
    );
    let after = snapshot(&exp);
    let kept = |n: &str| after.iter().any(|(p, _)| p.ends_with(n));
    assert!(kept("checkpoint.safetensors") && kept("resnet18-encoder.safetensors"));
    let files = |s: &[(PathBuf, Vec<u8>)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    for (p, bytes) in &before {
        let now = after.iter().find(|(q, _)| q == p);
        let name = p.file_name().unwrap().to_string_lossy();
        // Logs may grow (a failed attempt is recorded) and config.toml records the
        // latest command (here: 2 epochs, strict); weights and checkpoints must not change.
        if name.ends_with(".jsonl") || name == "config.toml" || name == "skipped.txt" {
            continue;
        }
        assert_eq!(
            now.map(|x| &x.1),
            Some(bytes),
            "{} changed or vanished after a failed run (files now: {:?})",
            p.display(),
            files(&after)
        );
    }
}

//! Evaluation on real-world splits (issue #20): a val split that lacks a
//! class is matched to train by class name, a val class unknown to train is
//! refused by name, and a corrupt image at evaluation / embedding time stops
//! with its file name instead of being replaced by a neighbour.

use std::path::{Path, PathBuf};

use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_tests::app::copy_tree as copy_dir;

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-evalbad");

/// 4 classes x 3 train images; val is a copy of train (so the 1-NN of every
/// val image is itself: top-1 is 100% exactly when labels are matched right).
fn data(root: &Path) -> PathBuf {
    let d = root.join("data");
    let cfg = SynthImageConfig {
        train_per_class: 3,
        val_per_class: 1,
        num_classes: 4,
        image_size: 32,
        ..SynthImageConfig::default()
    };
    generate_image_folder(&d, &cfg).unwrap();
    std::fs::remove_dir_all(d.join("val")).unwrap();
    copy_dir(&d.join("train"), &d.join("val"));
    d
}

fn knn(data: &Path) -> std::process::Output {
    bin()
        .args([
            "knn-eval",
            "--arch",
            "resnet18",
            "--image-size",
            "32",
            "--k",
            "1",
            "--num-workers",
            "2",
        ])
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn val_lacking_a_class_is_matched_by_name_and_unknown_class_is_refused() {
    let root = tmp("classes");
    let d = data(&root);
    // Drop val's first class: without matching by name every val label would
    // shift by one and 1-NN would score 0%.
    let first = SynthImageConfig::class_dir(0);
    std::fs::remove_dir_all(d.join("val").join(&first)).unwrap();
    let out = knn(&d);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{so}\n{se}");
    assert!(
        so.contains("1-NN top-1") && so.contains("100.00%"),
        "{so}\n{se}"
    );
    assert!(se.contains("have no val folder"), "{se}");

    // A val class train does not have: refused, naming it.
    let second = SynthImageConfig::class_dir(1);
    std::fs::rename(
        d.join("val").join(&second),
        d.join("val").join("zz_unknown"),
    )
    .unwrap();
    let out = knn(&d);
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        se.contains("zz_unknown") && se.contains("not among the 4 training classes"),
        "{se}"
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_corrupt_image_at_evaluation_or_embedding_is_an_error_naming_it() {
    let root = tmp("corrupt");
    let d = data(&root);
    let class = d.join("val").join(SynthImageConfig::class_dir(2));
    let bad = std::fs::read_dir(&class)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    // A truncated PNG: the signature and part of the header only.
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..20]).unwrap();
    let name = bad.file_name().unwrap().to_string_lossy().to_string();

    let out = knn(&d);
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "evaluation must not substitute: {se}"
    );
    assert!(se.contains(&name), "{se}");

    let emb = root.join("emb.safetensors");
    let out = bin()
        .args([
            "embed",
            "--arch",
            "resnet18",
            "--image-size",
            "32",
            "--num-workers",
            "2",
        ])
        .arg("--images")
        .arg(d.join("val"))
        .arg("--out")
        .arg(&emb)
        .output()
        .unwrap();
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "embed must not substitute: {se}");
    assert!(se.contains(&name), "{se}");
    assert!(!emb.exists(), "no embedding file is written");
    std::fs::remove_dir_all(&root).ok();
}

//! The layouts of captioned image sets that `--data-dir` finds by itself:
//! COCO-format caption files beside a flat `images/` folder, and a
//! Karpathy-style `dataset_*.json` whose images sit under `filepath/`, in a
//! flat `images/` folder, or at the root. Each one pretrains and evaluates.

use std::path::Path;

use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
use vicreg_tests::app::{json, run_stdout as run};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_coco-retrieval"), "coco-layouts");

/// One epoch of a tiny model on `data`, then `eval` (with baselines).
fn pretrain_and_eval(data: &Path, exp: &Path) -> String {
    run(bin()
        .args(["pretrain", "--image-arch", "resnet18", "--image-size", "24"])
        .args([
            "--text-hidden",
            "32",
            "--text-layers",
            "1",
            "--text-heads",
            "2",
        ])
        .args([
            "--mlp",
            "32-32",
            "--quiet",
            "--num-workers",
            "1",
            "--max-len",
            "16",
        ])
        .args(["--batch-size", "8", "--epochs", "1", "--data-dir"])
        .arg(data)
        .arg("--exp-dir")
        .arg(exp));
    run(bin().arg("eval").arg("--exp-dir").arg(exp))
}

/// The built-in COCO 2017 tree moved to a flat layout: every image in
/// `images/`, captions in `annotations/captions_{train,val}.json`.
fn flat_layout(root: &Path) {
    let src = root.join("src");
    generate_synth_coco(&src, &SynthCaptionsConfig::tiny()).unwrap();
    let dst = root.join("flat");
    std::fs::create_dir_all(dst.join("images")).unwrap();
    std::fs::create_dir_all(dst.join("annotations")).unwrap();
    for (split, out) in [
        ("train", "captions_train.json"),
        ("val", "captions_val.json"),
    ] {
        for e in std::fs::read_dir(src.join(format!("{split}2017"))).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dst.join("images").join(p.file_name().unwrap())).unwrap();
        }
        std::fs::copy(
            src.join("annotations")
                .join(format!("captions_{split}2017.json")),
            dst.join("annotations").join(out),
        )
        .unwrap();
    }
}

#[test]
fn coco_captions_with_a_flat_images_folder_are_found_by_themselves() {
    let root = tmp("flat");
    flat_layout(&root);
    let exp = root.join("run");
    let out = pretrain_and_eval(&root.join("flat"), &exp);
    assert!(out.contains("| 8 images |"), "{out}");
    let v = json(&exp.join("retrieval_eval.json"));
    assert_eq!(v["test_images"], 8, "{v}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_karpathy_style_split_file_is_found_and_its_images_resolved() {
    let root = tmp("karpathy");
    flat_layout(&root);
    let flat = root.join("flat");
    // dataset_tiny.json: train images under a `filepath` folder, test images in images/.
    let kdir = root.join("karpathy");
    std::fs::create_dir_all(kdir.join("trainpics")).unwrap();
    std::fs::create_dir_all(kdir.join("images")).unwrap();
    let mut images = Vec::new();
    for (split, file, folder) in [
        ("train", "captions_train.json", "trainpics"),
        ("test", "captions_val.json", "images"),
    ] {
        let ann = json(&flat.join("annotations").join(file));
        for im in ann["images"].as_array().unwrap() {
            let name = im["file_name"].as_str().unwrap();
            std::fs::copy(flat.join("images").join(name), kdir.join(folder).join(name)).unwrap();
            let sentences: Vec<serde_json::Value> = ann["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["image_id"] == im["id"])
                .map(|a| serde_json::json!({"raw": a["caption"]}))
                .collect();
            images.push(serde_json::json!({
                "filepath": if split == "train" { "trainpics" } else { "" },
                "filename": name,
                "split": split,
                "imgid": im["id"],
                "sentences": sentences,
            }));
        }
    }
    std::fs::write(
        kdir.join("dataset_tiny.json"),
        serde_json::to_string(&serde_json::json!({"images": images, "dataset": "tiny"})).unwrap(),
    )
    .unwrap();
    let exp = root.join("run");
    let out = pretrain_and_eval(&kdir, &exp);
    assert!(out.contains("| 8 images |"), "{out}");
    // A second split file makes the choice ambiguous: the error names both.
    std::fs::copy(
        kdir.join("dataset_tiny.json"),
        kdir.join("dataset_other.json"),
    )
    .unwrap();
    let o = bin()
        .args(["pretrain", "--data-dir"])
        .arg(&kdir)
        .arg("--exp-dir")
        .arg(root.join("run2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("dataset_other.json")
            && err.contains("dataset_tiny.json")
            && err.contains("--karpathy-split"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).ok();
}

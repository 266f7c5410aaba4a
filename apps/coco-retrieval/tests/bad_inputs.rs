//! The real `coco-retrieval` binary on malformed inputs (issue #20): each case
//! builds its bad annotation or image on the fly and asserts a clean refusal:
//! exit code non-zero, no panic, the file and the problem named, within a
//! time limit.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
use vicreg_tests::bad_input::{expect_refusal, fresh_dir, png_bytes};

const LIMIT: Duration = Duration::from_secs(120);

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_coco-retrieval"), "coco-badinputs");

fn pretrain(data: &Path, exp: &Path) -> Command {
    let mut c = bin();
    c.args([
        "pretrain",
        "--image-arch",
        "resnet18",
        "--image-size",
        "24",
        "--text-hidden",
        "32",
        "--text-layers",
        "1",
        "--text-heads",
        "2",
        "--mlp",
        "64-64",
        "--quiet",
        "--num-workers",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-len",
        "20",
        "--strict",
    ])
    .arg("--data-dir")
    .arg(data)
    .arg("--exp-dir")
    .arg(exp);
    c
}

fn train_json(data: &Path) -> std::path::PathBuf {
    data.join("annotations").join("captions_train2017.json")
}

/// Rewrites the first image entry of the train annotations.
fn edit_first_image(data: &Path, f: impl Fn(&mut serde_json::Value)) -> String {
    let ann = train_json(data);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ann).unwrap()).unwrap();
    let first = v["images"][0]["file_name"].as_str().unwrap().to_string();
    f(&mut v["images"][0]);
    std::fs::write(&ann, serde_json::to_string(&v).unwrap()).unwrap();
    first
}

#[test]
fn file_names_escaping_the_image_folder_are_refused() {
    for (case, name) in [
        ("dotdot", "../../../../etc/passwd"),
        ("absolute", "/etc/passwd"),
        ("inner-dotdot", "a/../../x.png"),
    ] {
        let root = fresh_dir("coco-bad", case);
        let data = root.join("data");
        generate_synth_coco(&data, &SynthCaptionsConfig::tiny()).unwrap();
        edit_first_image(&data, |im| im["file_name"] = name.into());
        expect_refusal(
            case,
            &mut pretrain(&data, &root.join("run")),
            &["captions_train2017.json", name],
            LIMIT,
        );
    }
}

#[test]
fn an_absurdly_shaped_image_is_refused_by_name_under_strict() {
    let root = fresh_dir("coco-bad", "strip");
    let data = root.join("data");
    generate_synth_coco(&data, &SynthCaptionsConfig::tiny()).unwrap();
    let first = edit_first_image(&data, |_| {});
    std::fs::write(data.join("train2017").join(&first), png_bytes(1, 65_000)).unwrap();
    expect_refusal(
        "1x65000 png",
        &mut pretrain(&data, &root.join("run")),
        &[&first],
        LIMIT,
    );
}

#[test]
fn a_truncated_image_is_refused_by_name_under_strict() {
    let root = fresh_dir("coco-bad", "trunc");
    let data = root.join("data");
    generate_synth_coco(&data, &SynthCaptionsConfig::tiny()).unwrap();
    let first = edit_first_image(&data, |_| {});
    let p = data.join("train2017").join(&first);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 4]).unwrap();
    expect_refusal(
        "truncated image",
        &mut pretrain(&data, &root.join("run")),
        &[&first],
        LIMIT,
    );
}

#[test]
fn annotations_of_the_wrong_shape_are_refused_naming_the_file() {
    for (case, text) in [
        ("not-json", "this is not json".to_string()),
        (
            "images-not-a-list",
            r#"{"images": 5, "annotations": []}"#.to_string(),
        ),
        (
            "caption-for-unknown-image",
            r#"{"images": [], "annotations": [{"image_id": 7, "id": 1, "caption": "x"}]}"#
                .to_string(),
        ),
    ] {
        let root = fresh_dir("coco-bad", case);
        let data = root.join("data");
        generate_synth_coco(&data, &SynthCaptionsConfig::tiny()).unwrap();
        std::fs::write(train_json(&data), text).unwrap();
        expect_refusal(
            case,
            &mut pretrain(&data, &root.join("run")),
            &["captions_train2017.json"],
            LIMIT,
        );
    }
}

#[test]
fn absurd_numeric_flags_are_refused_at_parse_time() {
    let root = fresh_dir("coco-bad", "flags");
    let data = root.join("data");
    generate_synth_coco(&data, &SynthCaptionsConfig::tiny()).unwrap();
    for (flag, v) in [
        ("--num-workers", "100000"),
        ("--image-size", "100000"),
        ("--base-lr", "nan"),
        ("--max-len", "0"),
    ] {
        let mut c = pretrain(&data, &root.join("run"));
        c.arg(format!("{flag}={v}"));
        expect_refusal(&format!("{flag} {v}"), &mut c, &[flag], LIMIT);
    }
}

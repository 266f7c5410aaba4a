//! Out-of-range numeric flags and config keys: the real binary refuses each at
//! parse time, naming the flag (or the config key and file), without a panic.

use vicreg_tests::app::{
    assert_config_keys_refused, assert_flags_refused, assert_help_states, copy_tree,
    recipe_flag_rows, FlagRow,
};
vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_coco-retrieval"), "coco-flags");

#[test]
fn out_of_range_numeric_flags_are_refused_naming_the_flag() {
    let d = tmp("flags");
    let data = d.join("data");
    let data = data.to_str().unwrap();
    let exp = d.join("exp");
    let exp = exp.to_str().unwrap();
    let pretrain: &[&str] = &["pretrain", "--data-dir", data, "--exp-dir", exp];
    let retrieve: &[&str] = &["retrieve", "--exp-dir", exp, "--text", "a cat"];
    let rows: &[FlagRow] = &[
        (pretrain, "--image-size", "100000"),
        (pretrain, "--image-size", "8"),
        (pretrain, "--text-layers", "0"),
        (pretrain, "--text-hidden", "100000000"),
        (pretrain, "--text-heads", "0"),
        (pretrain, "--text-embed", "0"),
        (pretrain, "--text-dropout", "1.5"),
        (pretrain, "--text-dropout", "nan"),
        (pretrain, "--vocab-size", "0"),
        (pretrain, "--max-len", "2"),
        (pretrain, "--base-lr", "nan"),
        (pretrain, "--std-coeff-image", "-1"),
        (pretrain, "--std-coeff-text", "nan"),
        (pretrain, "--cov-coeff-image", "inf"),
        (pretrain, "--cov-coeff-text", "-2"),
        (retrieve, "--k", "0"),
        (retrieve, "--k", "1000000000"),
    ];
    assert_flags_refused(bin, rows);
    assert_flags_refused(bin, &recipe_flag_rows(pretrain));
    assert!(!std::path::Path::new(exp).exists());
}

#[test]
fn help_states_the_ranges() {
    assert_help_states(
        bin,
        &["pretrain"],
        &[
            "Range 16..=4096",
            "Range 0..=256",
            "Finite, >= 0",
            "In [0, 1]",
        ],
    );
}

#[test]
fn out_of_range_config_keys_are_refused_naming_key_and_file() {
    let d = tmp("config");
    let rows = [
        ("base-lr = nan", "base-lr"),
        ("image-size = 100000", "image-size"),
        ("text-dropout = inf", "text-dropout"),
        ("vocab-size = 1", "vocab-size"),
        ("max-len = 100000", "max-len"),
        ("std-coeff-text = -1.0", "std-coeff-text"),
    ];
    assert_config_keys_refused(bin, &d, &rows, "epochs = 3\nimage-size = 32\n");
}

#[test]
fn coco_format_sets_anywhere_via_image_and_caption_flags() {
    use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
    let root = tmp("anywhere");
    let gen = root.join("gen");
    generate_synth_coco(&gen, &SynthCaptionsConfig::tiny()).unwrap();
    // The same sets, scattered outside any COCO tree.
    let train_imgs = root.join("photos/train-set");
    let val_imgs = root.join("elsewhere/test-pics");
    copy_tree(&gen.join("train2017"), &train_imgs);
    copy_tree(&gen.join("val2017"), &val_imgs);
    let train_json = root.join("train-caps.json");
    let val_json = root.join("elsewhere/val-caps.json");
    std::fs::copy(gen.join("annotations/captions_train2017.json"), &train_json).unwrap();
    std::fs::copy(gen.join("annotations/captions_val2017.json"), &val_json).unwrap();
    let exp = root.join("run");
    let model: &[&str] = &[
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
        "1",
        "--warmup-epochs",
        "0",
        "--max-len",
        "20",
        "--batch-size",
        "8",
        "--epochs",
        "1",
    ];
    let out = bin()
        .args(model)
        .arg("--train-images")
        .arg(&train_imgs)
        .arg("--train-captions")
        .arg(&train_json)
        .arg("--val-images")
        .arg(&val_imgs)
        .arg("--val-captions")
        .arg(&val_json)
        .arg("--exp-dir")
        .arg(&exp)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("(24 images, 120 captions)"), "{err}");
    let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(
        cfg.contains("train-images") && cfg.contains("val-captions"),
        "{cfg}"
    );
    // The test set of the run's config is the given one (8 images, 40 captions).
    let out = bin()
        .args(["eval", "--random-init", "--exp-dir"])
        .arg(&exp)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.contains("| 8 images |"), "{s}");

    // Only one of a pair, a missing folder, a bad captions file: refused with the names.
    let err = refused(&[
        "pretrain",
        "--train-images",
        train_imgs.to_str().unwrap(),
        "--exp-dir",
        exp.to_str().unwrap(),
    ]);
    assert!(err.contains("--train-captions"), "{err}");
    let missing = root.join("no-such-folder");
    let err = refused(
        &[
            model,
            &[
                "--train-images",
                missing.to_str().unwrap(),
                "--train-captions",
                train_json.to_str().unwrap(),
                "--exp-dir",
                root.join("e2").to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    let bad = root.join("bad.json");
    std::fs::write(&bad, "{\"images\": [").unwrap();
    let err = refused(
        &[
            model,
            &[
                "--train-images",
                train_imgs.to_str().unwrap(),
                "--train-captions",
                bad.to_str().unwrap(),
                "--exp-dir",
                root.join("e3").to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(err.contains(bad.to_str().unwrap()), "{err}");
}

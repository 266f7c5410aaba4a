//! Out-of-range numeric flags and config keys: the real binary refuses each at
//! parse time, naming the flag (or the config key and file), without a panic.

use vicreg_tests::app::{
    assert_config_keys_refused, assert_flags_refused, assert_help_states, recipe_flag_rows, FlagRow,
};
vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-flags");

#[test]
fn out_of_range_numeric_flags_are_refused_naming_the_flag() {
    let d = tmp("flags");
    let data = d.join("data");
    let data = data.to_str().unwrap();
    let out = d.join("out.safetensors");
    let out = out.to_str().unwrap();
    let pretrain: &[&str] = &["pretrain", "--data-dir", data];
    let linear: &[&str] = &["linear-eval", "--data-dir", data];
    let knn: &[&str] = &["knn-eval", "--data-dir", data];
    let embed: &[&str] = &["embed", "--images", data, "--out", out];
    let make: &[&str] = &["make-data", "--out", data];
    let rows: &[FlagRow] = &[
        (pretrain, "--image-size", "100000"),
        (pretrain, "--image-size", "0"),
        (pretrain, "--base-lr", "nan"),
        (pretrain, "--base-lr", "-0.1"),
        (pretrain, "--std-coeff", "NaN"),
        (pretrain, "--cov-coeff", "-0.5"),
        (pretrain, "--accumulate", "0"),
        (pretrain, "--predictor-hidden", "0"),
        (pretrain, "--momentum-base", "1.5"),
        (linear, "--lr-backbone", "nan"),
        (linear, "--lr-head", "-1"),
        (linear, "--wd", "inf"),
        (linear, "--train-percent", "0"),
        (linear, "--train-percent", "101"),
        (linear, "--epochs", "0"),
        (linear, "--batch-size", "0"),
        (linear, "--image-size", "100000"),
        (linear, "--num-workers", "100000"),
        (knn, "--k", "20,0"),
        (knn, "--temperature", "nan"),
        (knn, "--num-workers", "100000"),
        (knn, "--image-size", "0"),
        (embed, "--image-size", "100000"),
        (embed, "--num-workers", "100000"),
        (make, "--train-per-class", "0"),
        (make, "--image-size", "100000"),
    ];
    assert_flags_refused(bin, rows);
    assert_flags_refused(bin, &recipe_flag_rows(pretrain));
    // Nothing was created by the refused commands.
    assert!(!std::path::Path::new(data).exists());
}

#[test]
fn help_states_the_ranges() {
    assert_help_states(
        bin,
        &["pretrain"],
        &[
            "Range 0..=256",
            "Range 1..=4096",
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
        ("sim-coeff = inf", "sim-coeff"),
        ("std-coeff = -inf", "std-coeff"),
        ("cov-coeff = nan", "cov-coeff"),
        ("accumulate = 0", "accumulate"),
        ("momentum-base = 2.0", "momentum-base"),
        ("predictor-hidden = 10000000", "predictor-hidden"),
    ];
    assert_config_keys_refused(bin, &d, &rows, "epochs = 3\nnum-workers = 1\n");
}

#[test]
fn ablate_grid_sections_are_range_checked() {
    let d = tmp("grid");
    let grid = d.join("grid.toml");
    std::fs::write(
        &grid,
        "[base]\nepochs = 1\n[eval]\nknn-temperature = nan\n[[run]]\nname = \"a\"\n",
    )
    .unwrap();
    let g = grid.to_str().unwrap();
    let exp = d.join("exp");
    let err = refused(&[
        "ablate",
        "--grid",
        g,
        "--exp-dir",
        exp.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(
        err.contains("`knn-temperature`") && err.contains(g),
        "{err}"
    );
    std::fs::write(
        &grid,
        "[base]\nepochs = 1\nbase-lr = nan\n[[run]]\nname = \"a\"\n",
    )
    .unwrap();
    let err = refused(&["ablate", "--grid", g, "--exp-dir", exp.to_str().unwrap()]);
    assert!(err.contains("`base-lr`") && err.contains(g), "{err}");
}

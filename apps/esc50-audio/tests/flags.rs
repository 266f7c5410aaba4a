//! Out-of-range numeric flags and config keys: the real binary refuses each at
//! parse time, naming the flag (or the config key and file), without a panic.

use vicreg_tests::app::{
    assert_config_keys_refused, assert_flags_refused, assert_help_states, recipe_flag_rows, FlagRow,
};
vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_esc50-audio"), "esc50-flags");

#[test]
fn out_of_range_numeric_flags_are_refused_naming_the_flag() {
    let d = tmp("flags");
    let data = d.join("data");
    let data = data.to_str().unwrap();
    let exp = d.join("exp");
    let exp = exp.to_str().unwrap();
    let pretrain: &[&str] = &["pretrain", "--data-dir", data, "--exp-dir", exp];
    let eval: &[&str] = &["eval", "--exp-dir", exp];
    let sup: &[&str] = &["supervised", "--data-dir", data, "--exp-dir", exp];
    let rows: &[FlagRow] = &[
        (pretrain, "--sample-rate", "3000000000"),
        (pretrain, "--sample-rate", "100"),
        (pretrain, "--clip-seconds", "1e9"),
        (pretrain, "--clip-seconds", "0"),
        (pretrain, "--clip-seconds", "nan"),
        (pretrain, "--test-fold", "6"),
        (pretrain, "--test-fold", "0"),
        (pretrain, "--n-mels", "0"),
        (pretrain, "--n-mels", "100000"),
        (pretrain, "--mel-hop", "0"),
        (pretrain, "--lr", "nan"),
        (pretrain, "--lr", "-1"),
        (pretrain, "--std-coeff", "nan"),
        (pretrain, "--cov-coeff", "inf"),
        (pretrain, "--std-coeff-b", "-0.1"),
        (pretrain, "--cov-coeff-b", "nan"),
        (pretrain, "--predictor-hidden", "0"),
        (pretrain, "--momentum-base", "-0.5"),
        (eval, "--probe-epochs", "0"),
        (eval, "--probe-lr", "nan"),
        (eval, "--probe-wd", "-1"),
        (eval, "--probe-batch-size", "0"),
        (eval, "--batch-size", "0"),
        (eval, "--num-workers", "100000"),
        (sup, "--epochs", "0"),
        (sup, "--lr", "nan"),
        (sup, "--wd", "-1"),
        (sup, "--sample-rate", "1000000000"),
        (sup, "--clip-seconds", "inf"),
        (sup, "--n-mels", "0"),
        (sup, "--num-workers", "100000"),
        (sup, "--batch-size", "0"),
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
            "Range 4000..=768000 Hz",
            "Seconds in (0, 600]",
            "Range 0..=256",
            "Finite, >= 0",
        ],
    );
}

#[test]
fn out_of_range_config_keys_are_refused_naming_key_and_file() {
    let d = tmp("config");
    let rows = [
        ("lr = nan", "lr"),
        ("sample-rate = 2147483648", "sample-rate"),
        ("clip-seconds = 1e9", "clip-seconds"),
        ("clip-seconds = nan", "clip-seconds"),
        ("test-fold = 9", "test-fold"),
        ("n-mels = 0", "n-mels"),
        ("mel-hop = 0", "mel-hop"),
        ("std-coeff-b = inf", "std-coeff-b"),
        ("momentum-base = nan", "momentum-base"),
    ];
    assert_config_keys_refused(bin, &d, &rows, "epochs = 3\nsample-rate = 16000\n");
}

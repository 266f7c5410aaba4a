//! `esc50-audio pretrain --loss ...`: every loss trains a few steps on tiny
//! generated ESC-50-format data with the pairings and sharing options it
//! supports, and impossible combinations fail with a clear message.

use std::process::{Command, Output};

use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_esc50-audio"), "esc50-losses");

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// Tiny model and data flags (0.25 s clips at 8 kHz, the test wave encoder).
const TINY: [&str; 21] = [
    "pretrain",
    "--sample-rate",
    "8000",
    "--clip-seconds",
    "0.25",
    "--wave-arch",
    "tiny",
    "--n-mels",
    "32",
    "--mlp",
    "16-16",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--warmup-epochs",
    "0",
    "--num-workers",
    "1",
    "--log-every",
    "1",
];

#[test]
fn every_loss_trains_and_bad_combinations_fail() {
    let root = tmp("all");
    let data = root.join("data");
    generate_synth_esc50(&data, &SynthAudioConfig::tiny()).unwrap();
    let ok: [&[&str]; 7] = [
        &["--loss", "vicreg", "--pairing", "wave-spec"],
        &[
            "--loss",
            "barlow-twins",
            "--pairing",
            "wave-spec",
            "--barlow-lambda",
            "0.01",
        ],
        &[
            "--loss",
            "simclr",
            "--pairing",
            "wave-wave",
            "--temperature",
            "0.2",
        ],
        &[
            "--loss",
            "vicreg",
            "--pairing",
            "wave-wave",
            "--share-weights",
            "false",
        ],
        &[
            "--loss",
            "byol",
            "--pairing",
            "wave-wave",
            "--momentum-base",
            "0.9",
        ],
        &["--loss", "byol", "--pairing", "wave-wave", "--vicreg-terms"],
        &[
            "--loss",
            "simsiam",
            "--pairing",
            "wave-wave",
            "--predictor-hidden",
            "8",
        ],
    ];
    for (i, case) in ok.iter().enumerate() {
        let exp = root.join(format!("run{i}"));
        let out = output(
            bin()
                .args(TINY)
                .arg("--quiet")
                .args(*case)
                .arg("--data-dir")
                .arg(&data)
                .arg("--exp-dir")
                .arg(&exp),
        );
        assert!(
            out.status.success(),
            "{case:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(exp.join("wave-encoder.safetensors").is_file(), "{case:?}");
        let m = std::fs::read_to_string(exp.join("metrics.jsonl")).unwrap();
        assert!(m.matches("\"type\":\"step\"").count() >= 2, "{case:?}: {m}");
        let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("loss = \"{}\"", case[1])), "{cfg}");
    }
    let m = std::fs::read_to_string(root.join("run5").join("metrics.jsonl")).unwrap();
    assert!(
        m.contains("variance_a") && m.contains("covariance_a"),
        "D.8 terms: {m}"
    );
    let bad: [(&[&str], &str); 4] = [
        (&["--loss", "byol", "--pairing", "wave-spec"], "wave-wave"),
        (
            &[
                "--loss",
                "vicreg",
                "--pairing",
                "wave-spec",
                "--share-weights",
                "true",
            ],
            "share-weights",
        ),
        (&["--loss", "simclr", "--vicreg-terms"], "vicreg-terms"),
        (&["--loss", "swav"], "swav"),
    ];
    for (case, word) in bad {
        let out = output(
            bin()
                .args(TINY)
                .args(case)
                .arg("--data-dir")
                .arg(&data)
                .arg("--exp-dir")
                .arg(root.join("bad")),
        );
        assert!(!out.status.success(), "{case:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(word), "{case:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

//! Clips padded with digital silence, as real ESC-50 recordings are: the
//! sound sits in the first 20% of each clip. Evaluation must see it (the
//! `full` and `windows` views), where one centred crop of the training length
//! sees only silence (the old behaviour, kept as `--view center`); `classify`
//! must see it too; and eval reports the baselines beside the encoders.

use std::path::Path;

use datasets::audio::write_wav_mono16;
use vicreg_tests::app::{json, run_text as run};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_esc50-audio"), "esc50-padded");

const RATE: u32 = 8000;
const CLIP_S: f64 = 1.25;
const FREQS: [f64; 4] = [250.0, 600.0, 1400.0, 3000.0];

/// 4 classes (a tone each) x 5 folds x 3 clips: 1.25 s at 8 kHz, the tone in
/// the first 0.25 s (20%), digital silence after it.
fn padded_set(root: &Path) {
    std::fs::create_dir_all(root.join("audio")).unwrap();
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let n = (CLIP_S * RATE as f64) as usize;
    let sound = n / 5;
    let mut csv = String::from("filename,fold,target,category,esc10,src_file,take\n");
    for fold in 1..=5u32 {
        for (c, f) in FREQS.iter().enumerate() {
            for k in 0..3u32 {
                let amp = 0.2 + 0.1 * k as f64;
                let detune = 1.0 + 0.03 * (fold as f64 - 3.0) + 0.01 * k as f64;
                let mut x = vec![0f32; n];
                for (i, v) in x[..sound].iter_mut().enumerate() {
                    let t = i as f64 / RATE as f64;
                    let env = (std::f64::consts::PI * i as f64 / sound as f64).sin();
                    *v = (amp * env * (2.0 * std::f64::consts::PI * f * detune * t).sin()) as f32;
                }
                let name = format!("{fold}-{}{k}-A-{c}.wav", 100 + c);
                write_wav_mono16(&root.join("audio").join(&name), &x, RATE).unwrap();
                csv += &format!("{name},{fold},{c},tone{c},False,{}{k},A\n", 100 + c);
            }
        }
    }
    std::fs::write(root.join("meta").join("esc50.csv"), csv).unwrap();
}

/// One epoch of a tiny wave-spec model on 0.25 s views (a fifth of each clip).
fn pretrain(data: &Path, exp: &Path) {
    run(bin()
        .args([
            "pretrain",
            "--sample-rate",
            "8000",
            "--clip-seconds",
            "0.25",
        ])
        .args(["--wave-arch", "tiny", "--n-mels", "32", "--mlp", "32-32"])
        .args(["--epochs", "1", "--batch-size", "12", "--num-workers", "1"])
        .args(["--test-fold", "5", "--quiet", "--data-dir"])
        .arg(data)
        .arg("--exp-dir")
        .arg(exp));
}

fn eval(exp: &Path, view: &str) -> serde_json::Value {
    run(bin()
        .args([
            "eval",
            "--protocol",
            "split",
            "--branch",
            "spec",
            "--baselines",
            "false",
            "--probe-epochs",
            "50",
            "--view",
            view,
            "--exp-dir",
        ])
        .arg(exp));
    let suffix = if view == "full" {
        String::new()
    } else {
        format!("-{view}")
    };
    json(&exp.join(format!("eval-split-spec{suffix}.json")))
}

#[test]
fn evaluation_and_classify_see_sound_in_the_first_fifth_of_the_clip() {
    let root = tmp("first-fifth");
    let data = root.join("data");
    padded_set(&data);
    let exp = root.join("run");
    // Training views of 0.25 s (a fifth of the clip): active crops hold the tone.
    pretrain(&data, &exp);
    let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(
        cfg.contains("crop = \"active\"")
            && cfg.contains("eval-view = \"full\"")
            && cfg.contains("time-pool = \"mean-max\""),
        "{cfg}"
    );

    // One centred 0.25 s crop of a 1.25 s clip is silence: every clip looks alike.
    let center = eval(&exp, "center");
    assert!(center["mean_top1"].as_f64().unwrap() <= 50.0, "{center}");
    // The whole clip, and the windows that hold sound, see the tones.
    for view in ["full", "windows"] {
        let r = eval(&exp, view);
        let top1 = r["mean_top1"].as_f64().unwrap();
        assert!(top1 >= 75.0, "{view}: {r}");
        assert_eq!(r["view"], view, "{r}");
    }

    // classify reads the whole file the way the head's features were made.
    let meta = json(&exp.join("classifier-spec.json"));
    assert_eq!(meta["view"], "windows", "{meta}");
    let probe = data.join("audio").join("5-1032-A-3.wav");
    let (out, _) = run(bin()
        .args(["classify", "--json", "--exp-dir"])
        .arg(&exp)
        .arg(&probe));
    let preds: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(preds[0]["top"][0][0], "tone3", "{preds}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn eval_prints_the_baselines_beside_the_encoders() {
    let root = tmp("baselines");
    let data = root.join("data");
    padded_set(&data);
    let exp = root.join("run");
    pretrain(&data, &exp);
    let (out, _) = run(bin()
        .args([
            "eval",
            "--protocol",
            "split",
            "--branch",
            "wave,spec",
            "--probe-epochs",
            "30",
            "--exp-dir",
        ])
        .arg(&exp));
    for row in [
        "| pretrained wave (full view) |",
        "| random-init spec |",
        "| log-mel statistics (mean, std of 32 bands) |",
        "| chance | 25.0% | 100.0% |",
    ] {
        assert!(out.contains(row), "missing {row:?} in:\n{out}");
    }
    let b = json(&exp.join("eval-split-baselines.json"));
    let logmel = b["logmel_statistics"]["mean_top1"].as_f64().unwrap();
    // Four tones are trivially separable by their band energies.
    assert!(logmel >= 75.0, "{b}");
    let r = json(&exp.join("eval-split-wave.json"));
    assert!(r["baselines"]["random_init"].is_array(), "{r}");
    assert!(r["folds"][0]["probe_wd"].as_f64().is_some(), "{r}");
    std::fs::remove_dir_all(&root).ok();
}

//! The `esc50-audio` binary end to end on tiny generated ESC-50-format data:
//! pretraining, leak-free 5-fold and split evaluation (checked on the clip
//! lists each stage used), the supervised baseline, classification of wav
//! files of other rates and channel counts, and clear errors.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};
use vicreg_tests::app::{fails, json, run};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_esc50-audio"), "esc50-cli");

/// 4 classes x 5 folds x 2 clips of 0.25 s at 8 kHz.
fn tiny_data(root: &Path) -> HashMap<String, u8> {
    let index = generate_synth_esc50(root, &SynthAudioConfig::tiny()).unwrap();
    index
        .clips()
        .iter()
        .map(|c| (c.filename.clone(), c.fold))
        .collect()
}

const TINY: [&str; 22] = [
    "--sample-rate",
    "8000",
    "--clip-seconds",
    "0.25",
    "--wave-arch",
    "tiny",
    "--n-mels",
    "32",
    "--mlp",
    "32-32",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--warmup-epochs",
    "0",
    "--num-workers",
    "1",
    "--lr",
    "1e-3",
    "--log-every",
    "1",
];

fn pretrain(data: &Path, exp: &Path, pairing: &str, test_fold: Option<u8>) {
    pretrain_with(data, exp, pairing, test_fold, &[]);
}

/// [`pretrain`] with `extra` flags.
fn pretrain_with(data: &Path, exp: &Path, pairing: &str, test_fold: Option<u8>, extra: &[&str]) {
    let mut c = bin();
    c.arg("pretrain")
        .args(TINY)
        .args(["--quiet", "--pairing", pairing])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .arg("--exp-dir")
        .arg(exp);
    if let Some(f) = test_fold {
        c.arg("--test-fold").arg(f.to_string());
    }
    run(&mut c);
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn five_fold_eval_never_lets_the_test_fold_into_pretraining_or_the_probe() {
    let root = tmp("folds");
    let data = root.join("data");
    let fold_of = tiny_data(&data);
    let exp = root.join("run");
    // The base run holds fold 3 out: the folds protocol reuses it for fold 3.
    pretrain(&data, &exp, "wave-wave", Some(3));
    run(bin()
        .args([
            "eval",
            "--protocol",
            "folds",
            "--branch",
            "wave",
            "--probe-epochs",
            "3",
            "--num-workers",
            "1",
        ])
        .arg("--exp-dir")
        .arg(&exp));
    let r = json(&exp.join("eval-folds-wave.json"));
    let folds = r["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 5);
    let mut tested = HashSet::new();
    for f in folds {
        let k = f["test_fold"].as_u64().unwrap() as u8;
        let run_dir = PathBuf::from(f["run_dir"].as_str().unwrap());
        if k == 3 {
            assert_eq!(run_dir, exp);
        } else {
            assert_eq!(run_dir, exp.join(format!("fold-{k}")));
        }
        let cfg: toml::Value =
            toml::from_str(&std::fs::read_to_string(run_dir.join("config.toml")).unwrap()).unwrap();
        assert_eq!(cfg["test-fold"].as_integer(), Some(k as i64));
        let pre: Vec<String> = std::fs::read_to_string(run_dir.join("pretrain_clips.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let probe = names(&f["probe_train_clips"]);
        let test = names(&f["test_clips"]);
        assert_eq!(pre.len(), 32);
        assert_eq!(probe.len(), 32);
        assert_eq!(test.len(), 8);
        assert!(
            test.iter().all(|c| fold_of[c] == k),
            "fold {k}: test clips from other folds"
        );
        assert!(
            pre.iter().chain(&probe).all(|c| fold_of[c] != k),
            "fold {k}: a test-fold clip was used for training"
        );
        let test_set: HashSet<&String> = test.iter().collect();
        assert!(!pre.iter().chain(&probe).any(|c| test_set.contains(c)));
        assert!(run_dir.join("classifier-wave.safetensors").is_file());
        tested.extend(test);
    }
    assert_eq!(
        tested.len(),
        40,
        "every clip is tested exactly once over the five folds"
    );
    let mean = r["mean_top1"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&mean));
    let _ = std::fs::remove_dir_all(&root);
}

/// A 16-bit wav of a 440 Hz tone with `channels` channels at `rate` Hz.
fn write_tone(path: &Path, rate: u32, channels: u16, seconds: f64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(rate as f64 * seconds) as usize {
        let v = (0.4
            * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / rate as f64).sin()
            * 32767.0) as i16;
        for _ in 0..channels {
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
}

#[test]
fn split_eval_then_classify_wavs_of_other_rates_and_channel_counts() {
    let root = tmp("split");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    // A run that saw every fold must not be evaluated on the split protocol.
    let all = root.join("all-folds");
    pretrain(&data, &all, "wave-spec", None);
    let err = fails(
        bin()
            .args(["eval", "--protocol", "split"])
            .arg("--exp-dir")
            .arg(&all),
    );
    assert!(
        err.contains("fold 5") && err.contains("--test-fold 5"),
        "{err}"
    );

    pretrain(&data, &exp, "wave-spec", Some(5));
    assert!(
        exp.join("wave-encoder.safetensors").is_file()
            && exp.join("spec-encoder.safetensors").is_file()
    );
    assert!(exp.join("metrics.jsonl").is_file());
    let out = run(bin()
        .args([
            "eval",
            "--protocol",
            "split",
            "--branch",
            "wave,spec,both",
            "--probe-epochs",
            "3",
            "--num-workers",
            "1",
        ])
        .arg("--exp-dir")
        .arg(&exp));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| 5 | 32 | 8 |"), "{text}");
    for b in ["wave", "spec", "both"] {
        let r = json(&exp.join(format!("eval-split-{b}.json")));
        assert_eq!(r["folds"][0]["test_fold"], 5);
        assert!(exp.join(format!("classifier-{b}.safetensors")).is_file());
    }
    run(bin()
        .args([
            "eval",
            "--protocol",
            "split",
            "--init",
            "random",
            "--probe-epochs",
            "3",
        ])
        .arg("--exp-dir")
        .arg(&exp));
    assert!(exp.join("eval-split-wave-random.json").is_file());
    // The evaluation drew the map of the test fold's (and training) clips.
    assert!(exp.join("test-wave-map.svg").is_file());

    // embed: every clip of two folds, as NumPy rows with names and classes.
    let stem = root.join("emb").join("clips");
    let out = run(bin()
        .args([
            "embed",
            "--branch",
            "both",
            "--folds",
            "1,5",
            "--num-workers",
            "1",
            "--gallery",
            "2",
        ])
        .arg("--exp-dir")
        .arg(&exp)
        .arg("--out")
        .arg(&stem));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("clips.npy") && text.contains("2-D 5-NN accuracy"),
        "{text}"
    );
    let (x, labels, classes) = vicreg_core::insight::read_export(&stem).unwrap();
    let (rows, dim) = x.dims2().unwrap();
    assert_eq!(
        (rows, labels.len()),
        (16, 16),
        "4 classes x 2 clips x 2 folds"
    );
    assert!(dim > 0 && classes.len() == 4, "{dim} {classes:?}");
    assert!(root.join("emb").join("clips-map.svg").is_file());
    // The nearest-clips page: 2 query clips + 2 x 5 neighbours, each playable.
    vicreg_tests::browser::check_page(&root.join("emb").join("clips-gallery.html"), 0, 12);
    vicreg_tests::numpy::check_npy_loads(&stem.with_extension("npy"), rows, dim);

    let wavs = [
        (44_100, 2, 0.5),
        (22_050, 1, 0.1),
        (8_000, 1, 0.25),
        (16_000, 6, 1.0),
    ];
    let files: Vec<PathBuf> = wavs
        .iter()
        .map(|&(rate, ch, s)| {
            let p = root.join(format!("tone-{rate}-{ch}ch.wav"));
            write_tone(&p, rate, ch, s);
            p
        })
        .collect();
    let out = run(bin()
        .args(["classify", "--json", "--branch", "both"])
        .arg("--exp-dir")
        .arg(&exp)
        .args(&files));
    let preds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = preds.as_array().unwrap();
    assert_eq!(preds.len(), files.len());
    let classes: HashSet<&str> = datasets::synth_audio::SYNTH_AUDIO_CLASSES[..4]
        .iter()
        .copied()
        .collect();
    for p in preds {
        let top = p["top"].as_array().unwrap();
        assert_eq!(top.len(), 4, "4 classes: all of them listed");
        let probs: Vec<f64> = top.iter().map(|t| t[1].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "sorted: {probs:?}");
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{probs:?}");
        assert!(top.iter().all(|t| classes.contains(t[0].as_str().unwrap())));
    }
    // Text output, default head.
    let out = run(bin()
        .arg("classify")
        .arg("--exp-dir")
        .arg(&exp)
        .arg(&files[0]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("%"));

    // A broken wav file is named in the error.
    let bad = root.join("broken.wav");
    std::fs::write(&bad, b"RIFF\x10\0\0\0WAVEjunk").unwrap();
    let err = fails(bin().arg("classify").arg("--exp-dir").arg(&exp).arg(&bad));
    assert!(err.contains("broken.wav"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_mel_cnn_spectrogram_network_pretrains_evaluates_and_classifies() {
    let root = tmp("mel-cnn");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    pretrain_with(
        &data,
        &exp,
        "spec-spec",
        Some(5),
        &["--spec-arch", "mel-cnn"],
    );
    let config = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(config.contains("spec-arch = \"mel-cnn\""), "{config}");
    // The exported encoder holds BYOL-A's tensor names.
    let spec = candle_core::safetensors::load(
        exp.join("spec-encoder.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        spec["fc.0.weight"].dims(),
        &[512, 64 * 4],
        "32 mels / 8 x 64 channels"
    );
    assert!(spec.contains_key("features.9.running_var"));
    // Without --branch, a spec-spec run is evaluated on its spectrogram encoder.
    run(bin()
        .args(["eval", "--protocol", "split", "--probe-epochs", "2"])
        .args(["--baselines", "false", "--exp-dir"])
        .arg(&exp));
    let r = json(&exp.join("eval-split-spec.json"));
    assert_eq!(r["folds"][0]["test_fold"], 5);
    // A 0.1 s clip (fewer frames than the network's 8) is padded, not refused.
    let wav = root.join("short.wav");
    write_tone(&wav, 22_050, 1, 0.1);
    let out = run(bin()
        .args(["classify", "--json", "--branch", "spec"])
        .arg("--exp-dir")
        .arg(&exp)
        .arg(&wav));
    let preds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(preds[0]["top"].as_array().unwrap().len(), 4);
    // Too few mel bands for its three halving blocks: refused before training, naming the key.
    let err = fails(
        bin()
            .arg("pretrain")
            .args(["--spec-arch", "mel-cnn", "--n-mels", "4", "--data-dir"])
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("bad")),
    );
    assert!(
        err.contains("spec-arch") && err.contains("4 mel bands"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn supervised_baseline_writes_results_and_a_usable_head() {
    let root = tmp("sup");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("sup");
    run(bin()
        .args([
            "supervised",
            "--protocol",
            "split",
            "--branch",
            "wave",
            "--wave-arch",
            "tiny",
            "--sample-rate",
            "8000",
            "--clip-seconds",
            "0.25",
        ])
        .args([
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--probe-epochs",
            "3",
            "--num-workers",
            "1",
            "--quiet",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--exp-dir")
        .arg(&exp));
    let r = json(&exp.join("supervised-split-wave.json"));
    assert_eq!(r["folds"][0]["test_fold"], 5);
    assert_eq!(
        r["folds"][0]["probe_train_clips"].as_array().unwrap().len(),
        32
    );
    let log = std::fs::read_to_string(exp.join("supervised.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    let wav = root.join("t.wav");
    write_tone(&wav, 48_000, 2, 0.3);
    run(bin().arg("classify").arg("--exp-dir").arg(&exp).arg(&wav));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn clear_errors_for_bad_data() {
    let root = tmp("errors");
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(
        bin()
            .arg("pretrain")
            .args(TINY)
            .arg("--data-dir")
            .arg(&empty)
            .arg("--exp-dir")
            .arg(root.join("e")),
    );
    assert!(
        err.contains("meta/esc50.csv") && err.contains("missing"),
        "{err}"
    );

    let data = root.join("data");
    tiny_data(&data);
    // A clip listed in the CSV but missing on disk.
    let csv = std::fs::read_to_string(data.join("meta/esc50.csv")).unwrap();
    let first = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    std::fs::remove_file(data.join("audio").join(&first)).unwrap();
    let err = fails(
        bin()
            .arg("pretrain")
            .args(TINY)
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("e")),
    );
    assert!(err.contains(&first), "{err}");

    let err = fails(
        bin()
            .args(["pretrain", "--test-fold", "7"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("e")),
    );
    // Refused at parse time, naming the flag and the allowed folds.
    assert!(
        err.contains("--test-fold") && err.contains("1..=5"),
        "{err}"
    );
    let err = fails(
        bin()
            .args(["eval"])
            .arg("--exp-dir")
            .arg(root.join("nowhere")),
    );
    assert!(err.contains("config.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_text_file_named_wav_is_named_in_stderr_and_in_skipped_txt_every_epoch() {
    let root = tmp("notwav");
    let data = root.join("data");
    let fold_of = tiny_data(&data);
    let mut clips: Vec<&String> = fold_of.keys().collect();
    clips.sort();
    let victim = clips[0].clone();
    std::fs::write(
        data.join("audio").join(&victim),
        b"just some text, no RIFF header",
    )
    .unwrap();
    let exp = root.join("run");
    let mut c = bin();
    // TINY with 2 epochs.
    let mut args = TINY.to_vec();
    let epochs = args.iter().position(|a| *a == "--epochs").unwrap() + 1;
    args[epochs] = "2";
    c.arg("pretrain")
        .args(&args)
        .args(["--quiet", "--pairing", "wave-wave"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--exp-dir")
        .arg(&exp);
    let out = run(&mut c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked at"), "{err}");
    for epoch in 0..2 {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("epoch {epoch}: skipped ")))
            .unwrap_or_else(|| panic!("no skip line for epoch {epoch}:\n{err}"));
        assert!(line.contains(&victim), "{victim} not named: {line}");
        assert!(line.contains("skipped.txt"), "{line}");
    }
    assert!(err.contains("unreadable clips in total"), "{err}");
    let list = std::fs::read_to_string(exp.join("skipped.txt")).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(&victim), "{list}");
}

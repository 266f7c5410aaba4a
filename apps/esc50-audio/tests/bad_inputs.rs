//! The real `esc50-audio` binary on malformed inputs (issue #20): each case
//! builds its bad file on the fly and asserts a clean refusal: exit code
//! non-zero, no panic, the file and the problem named, within a time limit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};
use vicreg_tests::bad_input::{expect_refusal, fresh_dir, wav_bytes};

const LIMIT: Duration = Duration::from_secs(120);

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_esc50-audio"), "esc50-badinputs");

/// The tiny built-in ESC-50-format set (4 classes x 5 folds x 2 clips).
fn data(root: &Path) -> PathBuf {
    let d = root.join("data");
    generate_synth_esc50(&d, &SynthAudioConfig::tiny()).unwrap();
    d
}

fn csv(d: &Path) -> PathBuf {
    d.join("meta").join("esc50.csv")
}

fn first_clip(d: &Path) -> String {
    let text = std::fs::read_to_string(csv(d)).unwrap();
    text.lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string()
}

fn pretrain(d: &Path, exp: &Path) -> Command {
    let mut c = bin();
    c.args([
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
        "32-32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--num-workers",
        "2",
        "--quiet",
        "--strict",
    ])
    .arg("--data-dir")
    .arg(d)
    .arg("--exp-dir")
    .arg(exp);
    c
}

/// Replaces line `line` (1 = first data row) of the csv with `f(row)`.
fn edit_row(d: &Path, line: usize, f: impl Fn(&mut Vec<String>)) {
    let text = std::fs::read_to_string(csv(d)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut row: Vec<String> = lines[line].split(',').map(str::to_string).collect();
    f(&mut row);
    lines[line] = row.join(",");
    std::fs::write(csv(d), lines.join("\n") + "\n").unwrap();
}

#[test]
fn an_esc50_target_of_4294967295_is_refused_naming_the_csv() {
    let root = fresh_dir("esc50-bad", "target");
    let d = data(&root);
    edit_row(&d, 1, |r| {
        r[2] = "4294967295".into();
        r[3] = "huge".into();
    });
    expect_refusal(
        "target 4294967295",
        &mut pretrain(&d, &root.join("run")),
        &["esc50.csv", "4294967295"],
        LIMIT,
    );
}

#[test]
fn a_filename_escaping_the_audio_folder_is_refused() {
    for (case, name) in [
        ("dotdot", "../../etc/passwd"),
        ("absolute", "/etc/passwd"),
        ("subdir", "sub/x.wav"),
    ] {
        let root = fresh_dir("esc50-bad", case);
        let d = data(&root);
        edit_row(&d, 1, |r| r[0] = name.into());
        expect_refusal(
            case,
            &mut pretrain(&d, &root.join("run")),
            &["esc50.csv", name],
            LIMIT,
        );
    }
}

#[test]
fn a_wav_header_with_an_absurd_sample_rate_is_refused_by_name() {
    // 2^30 Hz is the largest rate whose byte rate (2 bytes a frame) still fits the header.
    for (case, rate, why) in [
        ("huge-rate", 1u32 << 30, "sample rate"),
        ("tiny-rate", 3, "sample rate"),
        ("zero-rate", 0, ""),
    ] {
        let root = fresh_dir("esc50-bad", case);
        let d = data(&root);
        let clip = first_clip(&d);
        std::fs::write(d.join("audio").join(&clip), wav_bytes(rate, 800)).unwrap();
        expect_refusal(
            case,
            &mut pretrain(&d, &root.join("run")),
            &[&clip, why],
            LIMIT,
        );
    }
}

#[test]
fn a_text_file_named_wav_is_refused_by_name_under_strict() {
    let root = fresh_dir("esc50-bad", "textwav");
    let d = data(&root);
    let clip = first_clip(&d);
    std::fs::write(d.join("audio").join(&clip), b"just text, no RIFF").unwrap();
    expect_refusal(
        "text named .wav",
        &mut pretrain(&d, &root.join("run")),
        &[&clip],
        LIMIT,
    );
}

#[test]
fn a_wav_data_chunk_claiming_more_bytes_than_the_file_is_refused() {
    let root = fresh_dir("esc50-bad", "liar");
    let d = data(&root);
    let clip = first_clip(&d);
    let mut w = wav_bytes(8000, 100);
    let at = w.len() - 200 - 4;
    w[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(d.join("audio").join(&clip), w).unwrap();
    expect_refusal(
        "data chunk 4 GiB",
        &mut pretrain(&d, &root.join("run")),
        &[&clip],
        LIMIT,
    );
}

#[test]
fn absurd_numeric_flags_are_refused_at_parse_time() {
    let root = fresh_dir("esc50-bad", "flags");
    let d = data(&root);
    for (flag, v) in [
        ("--num-workers", "100000"),
        ("--clip-seconds", "1e9"),
        ("--sample-rate", "100000000"),
        ("--lr", "nan"),
        ("--wd", "-1"),
    ] {
        let mut c = pretrain(&d, &root.join("run"));
        c.arg(format!("{flag}={v}"));
        expect_refusal(&format!("{flag} {v}"), &mut c, &[flag], LIMIT);
    }
}

//! Wav decoding, resampling, the ESC-50 CSV reader and the synthetic ESC-50 generator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datasets::audio::{
    collate_labelled_waveforms, collate_waveform_pairs, load_wav, read_wav, resample,
    AudioViewConfig, Esc50Index, Esc50Labelled, Esc50Pretrain,
};
use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig, SYNTH_AUDIO_CLASSES};
use datasets::{Dataset, Error};
use hound::{SampleFormat, WavSpec, WavWriter};
use vicreg_core::SeededRng;

/// A fresh temporary directory, removed when dropped.
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp_dir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("vicreg_audio_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

/// Number of sign changes in `x`.
fn zero_crossings(x: &[f32]) -> usize {
    x.windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count()
}

fn write_wav(path: &Path, spec: WavSpec, frames: usize, f: impl Fn(usize, usize) -> f64) {
    let mut w = WavWriter::create(path, spec).unwrap();
    let full = (1i64 << (spec.bits_per_sample - 1)) as f64 - 1.0;
    for i in 0..frames {
        for c in 0..spec.channels as usize {
            let v = f(i, c);
            match spec.sample_format {
                SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                SampleFormat::Int if spec.bits_per_sample == 8 => {
                    w.write_sample((v * full).round() as i8).unwrap()
                }
                SampleFormat::Int if spec.bits_per_sample == 16 => {
                    w.write_sample((v * full).round() as i16).unwrap()
                }
                SampleFormat::Int => w.write_sample((v * full).round() as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn stereo_24bit_48k_sine_keeps_pitch_after_resampling() {
    let d = tmp_dir("sine24");
    let p = d.join("sine.wav");
    let spec = WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: SampleFormat::Int,
    };
    let f0 = 1000.0;
    // Left 0.5, right 0.3 amplitude: the mono downmix has amplitude 0.4.
    write_wav(&p, spec, 24_000, |i, c| {
        let a = if c == 0 { 0.5 } else { 0.3 };
        a * (2.0 * std::f64::consts::PI * f0 * i as f64 / 48_000.0).sin()
    });
    let raw = read_wav(&p).unwrap();
    assert_eq!(raw.sample_rate, 48_000);
    assert_eq!(raw.samples.len(), 24_000);
    let x = load_wav(&p, 16_000).unwrap();
    assert_eq!(x.len(), 8_000, "0.5 s at 16 kHz");
    // Away from the edges: 0.375 s of a 1 kHz sine has 750 zero crossings.
    let mid = &x[1000..7000];
    let zc = zero_crossings(mid);
    assert!((748..=752).contains(&zc), "zero crossings {zc}");
    let peak = mid.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!((peak - 0.4).abs() < 0.01, "peak {peak}");
    // No phase drift: sample k is sin(2 pi f k / 16000) * 0.4 (resampler delay trimmed).
    let err = mid
        .iter()
        .enumerate()
        .map(|(k, v)| {
            let t = (k + 1000) as f64 / 16_000.0;
            (*v as f64 - 0.4 * (2.0 * std::f64::consts::PI * f0 * t).sin()).abs()
        })
        .fold(0.0, f64::max);
    assert!(err < 0.01, "max deviation from the ideal sine {err}");
}

#[test]
fn int8_int16_int32_and_float_decode_to_the_same_values() {
    let d = tmp_dir("formats");
    let sig = |i: usize, _c: usize| 0.7 * ((i as f64) * 0.05).sin();
    for (bits, fmt, tol) in [
        (8, SampleFormat::Int, 1.0 / 100.0),
        (16, SampleFormat::Int, 1e-4),
        (32, SampleFormat::Int, 1e-6),
        (32, SampleFormat::Float, 1e-7),
    ] {
        let p = d.join(format!("x{bits}{fmt:?}.wav"));
        let spec = WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: bits,
            sample_format: fmt,
        };
        write_wav(&p, spec, 400, sig);
        let w = read_wav(&p).unwrap();
        assert_eq!(w.samples.len(), 400);
        for (i, v) in w.samples.iter().enumerate() {
            assert!(
                (*v as f64 - sig(i, 0)).abs() < tol,
                "{bits} {fmt:?} sample {i}: {v}"
            );
        }
        // Same rate: no resampling.
        assert_eq!(load_wav(&p, 8_000).unwrap(), w.samples);
    }
}

#[test]
fn resample_44k1_to_16k_keeps_a_440hz_tone() {
    let sr = 44_100;
    let x: Vec<f32> = (0..sr)
        .map(|i| (2.0 * std::f64::consts::PI * 440.0 * i as f64 / sr as f64).sin() as f32)
        .collect();
    let y = resample(&x, sr as u32, 16_000).unwrap();
    assert_eq!(y.len(), 16_000);
    let zc = zero_crossings(&y[2000..14000]);
    assert!(
        (658..=662).contains(&zc),
        "0.75 s of 440 Hz: 660 crossings, got {zc}"
    );
    assert!(resample(&x, 0, 16_000).is_err());
}

#[test]
fn zero_length_corrupt_truncated_and_missing_wavs_are_clear_errors() {
    let d = tmp_dir("bad");
    let spec = WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let empty = d.join("empty.wav");
    WavWriter::create(&empty, spec).unwrap().finalize().unwrap();
    let e = read_wav(&empty).unwrap_err();
    assert!(matches!(e, Error::BadFile { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("empty.wav") && msg.contains("no samples"),
        "{msg}"
    );

    let corrupt = d.join("corrupt.wav");
    std::fs::write(&corrupt, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunkjunk").unwrap();
    let msg = load_wav(&corrupt, 16_000).unwrap_err().to_string();
    assert!(
        msg.contains("corrupt.wav") && msg.contains("unreadable wav"),
        "{msg}"
    );

    let text = d.join("text.wav");
    std::fs::write(&text, "this is not audio at all").unwrap();
    let msg = read_wav(&text).unwrap_err().to_string();
    assert!(msg.contains("text.wav"), "{msg}");

    let trunc = d.join("trunc.wav");
    write_wav(&trunc, spec, 1000, |i, _| (i as f64 * 0.01).sin() * 0.5);
    let bytes = std::fs::read(&trunc).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() - 501]).unwrap();
    let e = read_wav(&trunc).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { .. }) && e.to_string().contains("trunc.wav"),
        "{e}"
    );

    let missing = d.join("missing.wav");
    let e = read_wav(&missing).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.wav"),
        "{e}"
    );
}

const HEADER: &str = "filename,fold,target,category,esc10,src_file,take\n";

fn write_meta(root: &Path, csv: &str, files: &[&str]) {
    std::fs::create_dir_all(root.join("meta")).unwrap();
    std::fs::create_dir_all(root.join("audio")).unwrap();
    std::fs::write(root.join("meta/esc50.csv"), csv).unwrap();
    let spec = WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    for f in files {
        write_wav(&root.join("audio").join(f), spec, 800, |i, _| {
            (i as f64 * 0.1).sin() * 0.3
        });
    }
}

#[test]
fn esc50_csv_parses_and_selects_folds() {
    let root = tmp_dir("csv_ok");
    let csv = format!(
        "{HEADER}1-1-A-0.wav,1,0,dog,True,1,A\n2-2-A-1.wav,2,1,rain,False,2,A\n5-3-B-0.wav,5,0,dog,True,3,B\n"
    );
    write_meta(&root, &csv, &["1-1-A-0.wav", "2-2-A-1.wav", "5-3-B-0.wav"]);
    let idx = Esc50Index::load(&root).unwrap();
    assert_eq!(idx.classes(), ["dog".to_string(), "rain".to_string()]);
    assert_eq!(idx.clips()[1].fold, 2);
    assert!(!idx.clips()[1].esc10);
    assert_eq!(idx.clips()[2].take, "B");
    assert_eq!(idx.train_folds(1).unwrap(), vec![1, 2]);
    assert_eq!(idx.test_fold(1).unwrap(), vec![0]);
    assert!(idx.select_folds(&[6]).is_err());
}

fn csv_error(name: &str, body: &str, files: &[&str]) -> String {
    let root = tmp_dir(name);
    write_meta(&root, body, files);
    let e = Esc50Index::load(&root).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("esc50.csv") || msg.contains(".wav"), "{msg}");
    msg
}

#[test]
fn malformed_esc50_csv_lines_name_the_line() {
    let ok = "1-1-A-0.wav,1,0,dog,True,1,A\n";
    let m = csv_error(
        "short",
        &format!("{HEADER}{ok}2-2-A-1.wav,2,1,rain\n"),
        &["1-1-A-0.wav"],
    );
    assert!(
        m.contains("line 3") && m.contains("4 fields, expected 7"),
        "{m}"
    );
    let m = csv_error(
        "fold",
        &format!("{HEADER}1-1-A-0.wav,7,0,dog,True,1,A\n"),
        &[],
    );
    assert!(m.contains("line 2") && m.contains("fold 7"), "{m}");
    let m = csv_error(
        "target",
        &format!("{HEADER}{ok}1-1-A-0.wav,1,x,dog,True,1,A\n"),
        &[],
    );
    assert!(m.contains("line 3") && m.contains("target \"x\""), "{m}");
    let m = csv_error(
        "esc10",
        &format!("{HEADER}1-1-A-0.wav,1,0,dog,maybe,1,A\n"),
        &[],
    );
    assert!(m.contains("line 2") && m.contains("esc10"), "{m}");
    let m = csv_error(
        "rename",
        &format!("{HEADER}{ok}{ok}1-1-A-0.wav,1,0,cat,True,1,A\n"),
        &[],
    );
    assert!(
        m.contains("line 4") && m.contains("line 2") && m.contains("\"cat\""),
        "{m}"
    );
    let m = csv_error("header", "file,fold\n1-1-A-0.wav,1\n", &[]);
    assert!(m.contains("line 1") && m.contains("header"), "{m}");
    let m = csv_error(
        "gap",
        &format!("{HEADER}1-1-A-0.wav,1,1,dog,True,1,A\n"),
        &["1-1-A-0.wav"],
    );
    assert!(m.contains("no clip has target 0"), "{m}");
    let m = csv_error("missing", &format!("{HEADER}{ok}"), &[]);
    assert!(m.contains("1-1-A-0.wav") && m.contains("missing"), "{m}");
}

#[test]
fn synthetic_esc50_loads_with_the_esc50_reader_and_is_reused() {
    let root = tmp_dir("synth");
    let cfg = SynthAudioConfig::tiny();
    let idx = generate_synth_esc50(&root, &cfg).unwrap();
    assert_eq!(idx.clips().len(), 4 * 5 * 2);
    assert_eq!(idx.classes(), &SYNTH_AUDIO_CLASSES[..4]);
    assert_eq!(idx.train_folds(3).unwrap().len(), 32);
    let w = read_wav(&idx.audio_path(&idx.clips()[0])).unwrap();
    assert_eq!((w.sample_rate, w.samples.len()), (8_000, cfg.clip_len()));
    assert!(
        w.samples.iter().any(|v| v.abs() > 0.05),
        "clip is not silent"
    );

    // Reuse: same config leaves the files alone; another config regenerates.
    let f = idx.audio_path(&idx.clips()[0]);
    let t0 = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    generate_synth_esc50(&root, &cfg).unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), t0);
    let cfg2 = SynthAudioConfig {
        seed: 9,
        ..cfg.clone()
    };
    generate_synth_esc50(&root, &cfg2).unwrap();
    assert_ne!(
        read_wav(&f).unwrap().samples,
        w.samples,
        "new seed, new audio"
    );

    // A folder with foreign files is refused.
    let other = tmp_dir("foreign");
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let e = generate_synth_esc50(&other, &cfg).unwrap_err();
    assert!(e.to_string().contains("notes.txt"), "{e}");
}

#[test]
fn synthetic_chirps_go_the_right_way() {
    // Zero-crossing rate of the loudest half-second halves: rising for chirp_up (1),
    // falling for chirp_down (2), for every generated clip.
    let cfg = SynthAudioConfig {
        snr_db: (30.0, 40.0),
        ..SynthAudioConfig::default()
    };
    for k in 0..6 {
        for (target, rising) in [(1usize, true), (2, false)] {
            let x = datasets::synth_audio::synth_clip(&cfg, target, k);
            // Locate the event: samples above 10 % of the peak.
            let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let on: Vec<usize> = (0..x.len()).filter(|&i| x[i].abs() > 0.1 * peak).collect();
            let (a, b) = (on[0], *on.last().unwrap());
            let m = (a + b) / 2;
            let (z1, z2) = (zero_crossings(&x[a..m]), zero_crossings(&x[m..b]));
            assert_eq!(z2 > z1, rising, "class {target} clip {k}: {z1} then {z2}");
        }
    }
}

#[test]
fn esc50_datasets_give_views_and_labels() {
    let root = tmp_dir("ds");
    let idx = Arc::new(generate_synth_esc50(&root, &SynthAudioConfig::tiny()).unwrap());
    let views = AudioViewConfig::with_clip_len(1500);
    let pre = Esc50Pretrain::new(idx.clone(), &[1, 2, 3, 4], 6_000, views).unwrap();
    assert_eq!(pre.len(), 32);
    let (a, b) = pre.get(3, &mut SeededRng::derive(1, &[0, 3])).unwrap();
    assert_eq!((a.len(), b.len()), (1500, 1500));
    assert_ne!(a, b, "two different views");
    let (a2, b2) = pre.get(3, &mut SeededRng::derive(1, &[0, 3])).unwrap();
    assert_eq!((a, b), (a2, b2), "same rng, same views");

    let test = Esc50Labelled::new(idx.clone(), &[5], 8_000, AudioViewConfig::eval(2_000)).unwrap();
    assert_eq!(test.len(), 8);
    assert_eq!(test.num_classes(), 4);
    assert_eq!(test.targets(), vec![0, 0, 1, 1, 2, 2, 3, 3]);
    let (x, y) = test.get(2, &mut SeededRng::new(0)).unwrap();
    assert_eq!(y, 1);
    // 0.25 s at 8 kHz = 2000 samples: eval view is the file itself.
    let file = read_wav(&idx.audio_path(&idx.clips()[idx.test_fold(5).unwrap()[2]])).unwrap();
    assert_eq!(x, file.samples);
    assert!(Esc50Labelled::new(idx.clone(), &[6], 8_000, AudioViewConfig::eval(10)).is_err());

    // Collate to (B, L) tensors.
    let dev = candle_core::Device::Cpu;
    let pairs: Vec<_> = (0..3)
        .map(|i| pre.get(i, &mut SeededRng::new(i as u64)).unwrap())
        .collect();
    let (va, vb) = collate_waveform_pairs(pairs.clone(), &dev).unwrap();
    assert_eq!((va.dims(), vb.dims()), (&[3, 1500][..], &[3, 1500][..]));
    assert_eq!(va.get(1).unwrap().to_vec1::<f32>().unwrap(), pairs[1].0);
    let lab: Vec<_> = (0..4)
        .map(|i| test.get(i, &mut SeededRng::new(0)).unwrap())
        .collect();
    let (x, y) = collate_labelled_waveforms(lab, &dev).unwrap();
    assert_eq!(x.dims(), &[4, 2000]);
    assert_eq!(y.to_vec1::<u32>().unwrap(), vec![0, 0, 1, 1]);
    let ragged = vec![(vec![0.0; 3], 0), (vec![0.0; 4], 1)];
    assert!(collate_labelled_waveforms(ragged, &dev)
        .unwrap_err()
        .to_string()
        .contains("differ"));
}

/// Six hand-made features of a clip: log mean zero-crossing rate of the loud frames, its
/// relative spread and trend, mean and spread of the loud frames' RMS, loud fraction.
fn simple_features(x: &[f32]) -> Vec<f64> {
    let fl = 160;
    let (mut zcr, mut rms) = (vec![], vec![]);
    for f in x.chunks(fl) {
        zcr.push(zero_crossings(f) as f64 / fl as f64 + 1e-3);
        rms.push((f.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / fl as f64).sqrt());
    }
    let mx = rms.iter().cloned().fold(0.0, f64::max);
    let loud: Vec<usize> = (0..rms.len()).filter(|&i| rms[i] > 0.3 * mx).collect();
    let z: Vec<f64> = loud.iter().map(|&i| zcr[i]).collect();
    let r: Vec<f64> = loud.iter().map(|&i| rms[i] / mx).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let std = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    let h = (z.len() / 2).max(1);
    vec![
        mean(&z).ln(),
        std(&z) / mean(&z),
        (mean(&z[h.min(z.len() - 1)..]) / mean(&z[..h])).ln(),
        mean(&r),
        std(&r),
        loud.len() as f64 / rms.len() as f64,
    ]
}

#[test]
fn synthetic_classes_are_learnable_but_not_trivial() {
    // Nearest class centroid on standardised simple features, folds 1-4 -> fold 5.
    let root = tmp_dir("learn");
    let cfg = SynthAudioConfig {
        clips_per_class_per_fold: 4,
        clip_seconds: 0.5,
        ..SynthAudioConfig::default()
    };
    let idx = Arc::new(generate_synth_esc50(&root, &cfg).unwrap());
    let ds = Esc50Labelled::new(
        idx.clone(),
        &[1, 2, 3, 4, 5],
        16_000,
        AudioViewConfig::eval(8_000),
    )
    .unwrap();
    let all: Vec<(Vec<f64>, u32, u8)> = (0..ds.len())
        .map(|i| {
            let (x, y) = ds.get(i, &mut SeededRng::new(0)).unwrap();
            (simple_features(&x), y, idx.clips()[i].fold)
        })
        .collect();
    let nf = all[0].0.len();
    let train: Vec<_> = all.iter().filter(|a| a.2 != 5).collect();
    let mu: Vec<f64> = (0..nf)
        .map(|k| train.iter().map(|a| a.0[k]).sum::<f64>() / train.len() as f64)
        .collect();
    let sd: Vec<f64> = (0..nf)
        .map(|k| {
            (train.iter().map(|a| (a.0[k] - mu[k]).powi(2)).sum::<f64>() / train.len() as f64)
                .sqrt()
                + 1e-9
        })
        .collect();
    let z = |f: &[f64]| {
        (0..nf)
            .map(|k| (f[k] - mu[k]) / sd[k])
            .collect::<Vec<f64>>()
    };
    let mut cent = vec![vec![0.0; nf]; 10];
    for a in &train {
        for (c, v) in cent[a.1 as usize].iter_mut().zip(z(&a.0)) {
            *c += v / 16.0;
        }
    }
    let test: Vec<_> = all.iter().filter(|a| a.2 == 5).collect();
    let dist = |f: &[f64], c: &[f64]| f.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    let correct = test
        .iter()
        .filter(|a| {
            let f = z(&a.0);
            let pred = (0..10)
                .min_by(|&i, &j| dist(&f, &cent[i]).total_cmp(&dist(&f, &cent[j])))
                .unwrap();
            pred as u32 == a.1
        })
        .count();
    let acc = correct as f64 / test.len() as f64;
    eprintln!("nearest-centroid accuracy on fold 5: {acc:.3} (chance 0.1)");
    assert!(acc >= 0.4, "classes are learnable: accuracy {acc}");
    assert!(
        acc < 1.0,
        "and not trivially separable by six simple features: {acc}"
    );
}

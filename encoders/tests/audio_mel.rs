//! Known-answer tests of the log-mel front end: mel scales, hand-computed
//! filterbanks, STFT power of a bin-centred sine, tone localisation, silence,
//! +6 dB per doubling, normalisation and input errors.

use candle_core::{Device, Tensor};
use encoders::audio::{
    LogMelConfig, LogMelSpectrogram, MelFilterbank, MelNorm, MelScale, Normalization, PowerStft,
};

fn sine(freq: f64, amp: f32, sr: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / sr).sin() as f32)
        .collect()
}

#[test]
fn mel_scale_formulas_and_round_trips() {
    // HTK: 2595 log10(1 + f/700); 700 Hz -> 2595 log10 2.
    assert!((MelScale::Htk.hz_to_mel(700.0) - 2595.0 * 2f64.log10()).abs() < 1e-9);
    assert!((MelScale::Htk.hz_to_mel(1000.0) - 999.9855).abs() < 1e-3);
    // Slaney: 3f/200 below 1 kHz, 15 + 27 ln(f/1000)/ln 6.4 above.
    assert!((MelScale::Slaney.hz_to_mel(600.0) - 9.0).abs() < 1e-12);
    assert!((MelScale::Slaney.hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    assert!((MelScale::Slaney.hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
    for scale in [MelScale::Htk, MelScale::Slaney] {
        for f in [0.0, 10.0, 440.0, 999.0, 1000.0, 1001.0, 8000.0, 22050.0] {
            let back = scale.mel_to_hz(scale.hz_to_mel(f));
            assert!(
                (back - f).abs() < 1e-6 * (1.0 + f),
                "{scale:?} {f} -> {back}"
            );
        }
    }
}

#[test]
fn filterbank_matches_hand_computed_small_case() {
    // sr 2000, n_fft 8: bins at 0, 250, 500, 750, 1000 Hz. Slaney is linear below
    // 1 kHz, so 2 mels over 0..1000 Hz have edges 0, 333.3, 666.7, 1000 Hz:
    // filter 0 = [0, 250/333.3, (666.7-500)/333.3, 0, 0] = [0, .75, .5, 0, 0],
    // filter 1 = [0, 0, .5, .75, 0].
    let fb =
        MelFilterbank::new(2000.0, 8, 2, 0.0, 1000.0, MelScale::Slaney, MelNorm::None).unwrap();
    assert_eq!((fb.n_mels(), fb.n_freqs()), (2, 5));
    let want = [0.0, 0.75, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.75, 0.0];
    for (g, w) in fb.dense().iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{:?}", fb.dense());
    }
    let edges = fb.edges_hz();
    assert!((edges[1] - 1000.0 / 3.0).abs() < 1e-9 && (edges[2] - 2000.0 / 3.0).abs() < 1e-9);
    // Slaney norm: each row times 2 / (666.7 - 0) = 0.003.
    let fb =
        MelFilterbank::new(2000.0, 8, 2, 0.0, 1000.0, MelScale::Slaney, MelNorm::Slaney).unwrap();
    for (g, w) in fb.dense().iter().zip(want) {
        assert!((g - w * 0.003).abs() < 1e-8, "{:?}", fb.dense());
    }
    // apply() is the matrix-vector product.
    let mut out = [0f32; 2];
    fb.apply(&[1.0, 2.0, 3.0, 4.0, 5.0], &mut out);
    assert!((out[0] - 0.003 * (0.75 * 2.0 + 0.5 * 3.0)).abs() < 1e-7);
    assert!((out[1] - 0.003 * (0.5 * 3.0 + 0.75 * 4.0)).abs() < 1e-7);
}

#[test]
fn filterbank_partition_of_unity_and_constant_area() {
    let (sr, n_fft, n_mels) = (16_000.0, 2048, 40);
    let bin_hz = sr / n_fft as f64;
    for scale in [MelScale::Htk, MelScale::Slaney] {
        // Without norm the triangles sum to 1 between the first and last apex.
        let fb = MelFilterbank::new(sr, n_fft, n_mels, 0.0, 8000.0, scale, MelNorm::None).unwrap();
        let (d, nf) = (fb.dense(), fb.n_freqs());
        assert_eq!(d.len(), n_mels * nf);
        let edges = fb.edges_hz().to_vec();
        assert_eq!(edges.len(), n_mels + 2);
        assert!(edges[0].abs() < 1e-9 && (edges[n_mels + 1] - 8000.0).abs() < 1e-6);
        for k in 0..nf {
            let f = k as f64 * bin_hz;
            let col: f32 = (0..n_mels).map(|m| d[m * nf + k]).sum();
            if f >= edges[1] && f <= edges[n_mels] {
                assert!(
                    (col - 1.0).abs() < 1e-5,
                    "{scale:?} bin {k} ({f} Hz): column sum {col}"
                );
            }
            assert!(col <= 1.0 + 1e-5);
        }
        // With Slaney norm each triangle has unit area in Hz (up to sampling).
        let fb =
            MelFilterbank::new(sr, n_fft, n_mels, 0.0, 8000.0, scale, MelNorm::Slaney).unwrap();
        let d = fb.dense();
        for m in 0..n_mels {
            let area: f64 = (0..nf).map(|k| d[m * nf + k] as f64).sum::<f64>() * bin_hz;
            assert!(
                (area - 1.0).abs() < 0.05,
                "{scale:?} filter {m}: area {area}"
            );
        }
    }
}

#[test]
fn stft_power_of_bin_centred_sine_and_frame_count() {
    let (n_fft, hop) = (64, 16);
    let stft = PowerStft::new(n_fft, hop, n_fft, false).unwrap();
    // Periodic Hann sums to n_fft / 2.
    let wsum: f64 = stft.window().iter().map(|w| *w as f64).sum();
    assert!((wsum - 32.0).abs() < 1e-4);
    // Sine of amplitude A exactly at bin 5: |X[5]|^2 = (A sum(w) / 2)^2 = (A n_fft / 4)^2.
    let a = 0.5f32;
    let clip = sine(5.0 * 1000.0 / n_fft as f64, a, 1000.0, 160);
    let p = stft.power(&clip);
    assert_eq!(stft.num_frames(160), (160 - 64) / 16 + 1);
    let want = (a as f64 * 64.0 / 4.0).powi(2);
    for t in 0..stft.num_frames(160) {
        let row = &p[t * 33..(t + 1) * 33];
        assert!(
            (row[5] as f64 - want).abs() < 1e-3 * want,
            "frame {t}: {} vs {want}",
            row[5]
        );
        // Hann leaks only into the two neighbours (each 1/4 of the amplitude).
        assert!(
            (row[4] as f64 - want / 4.0).abs() < 1e-3 * want
                && (row[6] as f64 - want / 4.0).abs() < 1e-3 * want
        );
        assert!(row
            .iter()
            .enumerate()
            .all(|(k, v)| (4..=6).contains(&k) || (*v as f64) < 1e-6 * want));
    }
    // center: 1 + samples / hop frames; a too-short clip gives 0 frames without center.
    let c = PowerStft::new(n_fft, hop, 48, true).unwrap();
    assert_eq!(c.num_frames(160), 1 + 160 / 16);
    assert_eq!(stft.num_frames(63), 0);
    // Shorter window is centred inside n_fft.
    assert_eq!(c.window()[..8], [0.0; 8]);
    assert_eq!(c.window()[56..], [0.0; 8]);
    assert!((c.window()[8 + 24] - 1.0).abs() < 1e-6);
}

fn cfg16k() -> LogMelConfig {
    LogMelConfig {
        top_db: None,
        normalization: Normalization::Decibels,
        ..LogMelConfig::esc50_16k()
    }
}

/// Mel band with the largest mean dB over frames.
fn loudest_band(mel: &LogMelSpectrogram, clip: &[f32]) -> usize {
    let db = mel.mel_db(clip).unwrap();
    let frames = mel.num_frames(clip.len());
    let means: Vec<f32> = db
        .chunks(frames)
        .map(|r| r.iter().sum::<f32>() / frames as f32)
        .collect();
    (0..means.len())
        .max_by(|&a, &b| means[a].total_cmp(&means[b]))
        .unwrap()
}

#[test]
fn sine_peaks_in_the_mel_band_containing_its_frequency() {
    for scale in [MelScale::Htk, MelScale::Slaney] {
        for norm in [MelNorm::None, MelNorm::Slaney] {
            let cfg = LogMelConfig {
                mel_scale: scale,
                mel_norm: norm,
                ..cfg16k()
            };
            let mel = LogMelSpectrogram::new(&cfg).unwrap();
            let edges = mel.filterbank().edges_hz().to_vec();
            // A tone at a band's apex frequency peaks in that band.
            for m in [3usize, 20, 40, 60] {
                let band = loudest_band(&mel, &sine(edges[m + 1], 0.5, 16_000.0, 8000));
                assert_eq!(
                    band,
                    m,
                    "{scale:?}/{norm:?}: tone at apex of band {m} ({} Hz)",
                    edges[m + 1]
                );
            }
            // Any tone peaks in a band whose triangle contains it.
            for f in [300.0, 440.0, 1234.5, 3000.0, 6789.0] {
                let m = loudest_band(&mel, &sine(f, 0.5, 16_000.0, 8000));
                assert!(
                    edges[m] < f && f < edges[m + 2],
                    "{scale:?}/{norm:?}: {f} Hz peaks in band {m} ({}..{} Hz)",
                    edges[m],
                    edges[m + 2]
                );
            }
        }
    }
}

#[test]
fn silence_gives_the_floor_and_doubling_adds_6_db() {
    let mel = LogMelSpectrogram::new(&cfg16k()).unwrap();
    let silence = vec![0f32; 4000];
    let floor = 10.0 * (mel.config().amin).log10() as f32; // -100 dB
    assert!(mel
        .mel_db(&silence)
        .unwrap()
        .iter()
        .all(|v| (*v - floor).abs() < 1e-4));
    // Normalised: per-clip min-max maps a flat clip to 0; a fixed -100..0 dB range too.
    let mm = LogMelSpectrogram::new(&LogMelConfig::esc50_16k()).unwrap();
    assert!(mm.clip(&silence).unwrap().iter().all(|v| *v == 0.0));
    let fixed = LogMelSpectrogram::new(&LogMelConfig {
        normalization: Normalization::FixedRange {
            min_db: -100.0,
            max_db: 0.0,
        },
        ..LogMelConfig::esc50_16k()
    })
    .unwrap();
    assert!(fixed.clip(&silence).unwrap().iter().all(|v| *v == 0.0));

    // Doubling the amplitude multiplies power by 4: +20 log10(2) = +6.02 dB in every band above the floor.
    let mut rng = vicreg_core::SeededRng::new(4);
    let x: Vec<f32> = sine(440.0, 0.2, 16_000.0, 4000)
        .iter()
        .map(|s| s + 0.05 * rng.normal() as f32)
        .collect();
    let x2: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
    let (a, b) = (mel.mel_db(&x).unwrap(), mel.mel_db(&x2).unwrap());
    let six = 20.0 * 2f32.log10();
    let mut checked = 0;
    for (u, v) in a.iter().zip(&b) {
        if *u > floor + 20.0 {
            assert!(((v - u) - six).abs() < 1e-2, "{u} -> {v}");
            checked += 1;
        }
    }
    assert!(
        checked > a.len() / 2,
        "only {checked} of {} cells above the floor",
        a.len()
    );
    // After per-clip min-max the gain is gone.
    let (na, nb) = (mm.clip(&x).unwrap(), mm.clip(&x2).unwrap());
    assert!(na.iter().zip(&nb).all(|(u, v)| (u - v).abs() < 1e-4));
}

#[test]
fn top_db_floor_and_batch_forward() {
    let cfg = LogMelConfig::esc50_16k();
    let mel = LogMelSpectrogram::new(&cfg).unwrap();
    let tone = sine(1000.0, 0.9, 16_000.0, 3200);
    let db = LogMelSpectrogram::new(&LogMelConfig {
        normalization: Normalization::Decibels,
        ..cfg.clone()
    })
    .unwrap()
    .mel_db(&tone)
    .unwrap();
    let max = db.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let min = db.iter().cloned().fold(f32::INFINITY, f32::min);
    assert!(
        (max - min - 80.0).abs() < 1e-3,
        "a pure tone spans more than 80 dB, floored to exactly 80: {min}..{max}"
    );

    let mut data = tone.clone();
    data.extend(vec![0f32; 3200]);
    data.extend(sine(250.0, 0.1, 16_000.0, 3200));
    let waves = Tensor::from_vec(data, (3, 3200), &Device::Cpu).unwrap();
    let out = mel.forward(&waves).unwrap();
    let frames = 1 + 3200 / 256;
    assert_eq!(out.dims(), &[3, 1, 64, frames]);
    let v: Vec<Vec<Vec<f32>>> = out.squeeze(1).unwrap().to_vec3().unwrap();
    for (b, img) in v.iter().enumerate() {
        let flat: Vec<f32> = img.iter().flatten().cloned().collect();
        let (lo, hi) = flat
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), x| {
                (l.min(*x), h.max(*x))
            });
        if b == 1 {
            assert_eq!((lo, hi), (0.0, 0.0), "silence");
        } else {
            assert_eq!((lo, hi), (0.0, 1.0), "clip {b}");
        }
        // The batch path equals the per-clip path.
        let clip_data: Vec<f32> = waves.get(b).unwrap().to_vec1().unwrap();
        assert_eq!(flat, mel.clip(&clip_data).unwrap());
    }
}

#[test]
fn bad_input_and_config_give_clear_errors() {
    let mel = LogMelSpectrogram::new(&LogMelConfig::esc50_16k()).unwrap();
    let e =
        mel.forward(&Tensor::zeros((2, 1, 100), candle_core::DType::F32, &Device::Cpu).unwrap());
    assert!(e.unwrap_err().to_string().contains("(batch, samples)"));
    let mut bad = vec![0f32; 2000];
    bad[1500] = f32::NAN;
    let mut data = vec![0f32; 2000];
    data.extend(bad);
    let e = mel
        .forward(&Tensor::from_vec(data, (2, 2000), &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("clip 1") && e.contains("sample 1500"), "{e}");

    let no_center = LogMelSpectrogram::new(&LogMelConfig {
        center: false,
        ..LogMelConfig::esc50_16k()
    })
    .unwrap();
    assert!(no_center
        .clip(&[0.0; 100])
        .unwrap_err()
        .to_string()
        .contains("shorter than n_fft"));

    let too_many = LogMelConfig {
        n_fft: 64,
        win_length: 64,
        n_mels: 128,
        ..LogMelConfig::esc50_16k()
    };
    assert!(LogMelSpectrogram::new(&too_many)
        .unwrap_err()
        .to_string()
        .contains("cover no FFT bin"));
    let bad_f = LogMelConfig {
        fmax: Some(9000.0),
        ..LogMelConfig::esc50_16k()
    };
    assert!(LogMelSpectrogram::new(&bad_f)
        .unwrap_err()
        .to_string()
        .contains("fmax"));
    let bad_w = LogMelConfig {
        win_length: 2048,
        ..LogMelConfig::esc50_16k()
    };
    assert!(LogMelSpectrogram::new(&bad_w)
        .unwrap_err()
        .to_string()
        .contains("win_length"));
}

#[test]
fn config_serde_round_trip() {
    let cfg = LogMelConfig {
        mel_scale: MelScale::Htk,
        normalization: Normalization::FixedRange {
            min_db: -80.0,
            max_db: 0.0,
        },
        ..LogMelConfig::esc50()
    };
    let s = serde_json::to_string(&cfg).unwrap();
    assert!(s.contains("\"htk\""), "{s}");
    let back: LogMelConfig = serde_json::from_str(&s).unwrap();
    assert_eq!(back, cfg);
    let partial: LogMelConfig =
        serde_json::from_str(r#"{"n_mels": 96, "mel_norm": "none"}"#).unwrap();
    assert_eq!(
        (partial.n_mels, partial.mel_norm, partial.n_fft),
        (96, MelNorm::None, 2048)
    );
    assert!(serde_json::from_str::<LogMelConfig>(r#"{"n_mel": 96}"#).is_err());
}

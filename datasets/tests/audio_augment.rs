//! Waveform augmentations: crop/pad, gain, noise SNR, time shift, config and determinism.

use datasets::audio::augment::{
    add_noise_snr, apply_gain_db, center_crop_or_pad, random_crop_or_pad, time_shift,
};
use datasets::audio::{AudioViewConfig, ShiftMode};
use vicreg_core::SeededRng;

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 + 1.0).collect()
}

#[test]
fn crop_and_pad_keep_contiguous_content() {
    let x = ramp(100);
    let mut rng = SeededRng::new(1);
    let mut starts = std::collections::HashSet::new();
    for _ in 0..200 {
        let c = random_crop_or_pad(&x, 30, &mut rng);
        assert_eq!(c.len(), 30);
        assert!(
            c.windows(2).all(|w| w[1] == w[0] + 1.0),
            "contiguous window"
        );
        starts.insert(c[0] as usize);
    }
    assert!(starts.len() > 40, "offsets vary: {}", starts.len());
    assert!(starts.iter().all(|&s| (1..=71).contains(&s)));
    let p = random_crop_or_pad(&x, 130, &mut rng);
    assert_eq!(p.len(), 130);
    assert_eq!(p.iter().filter(|v| **v != 0.0).count(), 100);
    assert_eq!(center_crop_or_pad(&x, 50)[0], 26.0);
    let cp = center_crop_or_pad(&x, 110);
    assert_eq!((cp[4], cp[5], cp[104], cp[105]), (0.0, 1.0, 100.0, 0.0));
}

#[test]
fn gain_noise_and_shift_do_what_they_say() {
    let mut x = vec![0.5f32; 10];
    apply_gain_db(&mut x, -6.0206);
    assert!((x[0] - 0.25).abs() < 1e-4, "{}", x[0]);

    let n = 200_000;
    let clean: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
    for snr in [0.0, 10.0, 20.0] {
        let mut y = clean.clone();
        add_noise_snr(&mut y, snr, &mut SeededRng::new(5));
        let ps: f64 = clean.iter().map(|v| (*v as f64).powi(2)).sum();
        let pn: f64 = y
            .iter()
            .zip(&clean)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let measured = 10.0 * (ps / pn).log10();
        assert!(
            (measured - snr).abs() < 0.1,
            "snr {snr}: measured {measured}"
        );
    }
    let mut silent = vec![0.0f32; 100];
    add_noise_snr(&mut silent, 10.0, &mut SeededRng::new(5));
    assert!(silent.iter().all(|v| *v == 0.0));

    let x = ramp(5);
    assert_eq!(
        time_shift(&x, 2, ShiftMode::Circular),
        vec![4.0, 5.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(
        time_shift(&x, -1, ShiftMode::Circular),
        vec![2.0, 3.0, 4.0, 5.0, 1.0]
    );
    assert_eq!(
        time_shift(&x, 2, ShiftMode::ZeroFill),
        vec![0.0, 0.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(
        time_shift(&x, -3, ShiftMode::ZeroFill),
        vec![4.0, 5.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn views_are_deterministic_and_configurable() {
    let x: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.03).sin() * 0.5).collect();
    let cfg = AudioViewConfig {
        gain_prob: 1.0,
        noise_prob: 1.0,
        shift_prob: 1.0,
        shift_mode: ShiftMode::ZeroFill,
        ..AudioViewConfig::with_clip_len(1000)
    };
    cfg.validate().unwrap();
    let a = cfg.apply(&x, &mut SeededRng::derive(3, &[1, 2]));
    let b = cfg.apply(&x, &mut SeededRng::derive(3, &[1, 2]));
    let c = cfg.apply(&x, &mut SeededRng::derive(3, &[1, 3]));
    assert_eq!(a.len(), 1000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // The eval preset is the centred crop, untouched.
    let e = AudioViewConfig::eval(1000).apply(&x, &mut SeededRng::new(0));
    assert_eq!(e, x[2000..3000].to_vec());

    // serde: partial JSON fills the rest from Default; bad values are rejected.
    let parsed: AudioViewConfig =
        serde_json::from_str(r#"{"clip_len": 800, "shift_mode": "zero_fill"}"#).unwrap();
    assert_eq!(parsed.clip_len, 800);
    assert_eq!(parsed.shift_mode, ShiftMode::ZeroFill);
    assert_eq!(parsed.gain_db, AudioViewConfig::default().gain_db);
    let bad = AudioViewConfig {
        gain_db: (3.0, -3.0),
        ..AudioViewConfig::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("gain_db"));
    let bad = AudioViewConfig {
        noise_prob: 1.5,
        ..AudioViewConfig::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("noise_prob"));
    assert!(AudioViewConfig::with_clip_len(0).validate().is_err());
}

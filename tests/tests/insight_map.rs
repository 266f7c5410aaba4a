//! The 2-D map keeps the classes of a built-in set apart: the built-in audio
//! set (synthetic ESC-50, 10 classes) described by log-mel statistics
//! and mapped with t-SNE gives a 2-D 5-NN accuracy far above chance (10%),
//! close to the 5-NN accuracy of the same features in their own space.

use candle_core::{Device, Tensor};
use datasets::audio::load_wav;
use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};
use encoders::audio::{LogMelConfig, LogMelSpectrogram};
use vicreg_core::insight::{draw_pictures, TsneConfig};

/// Leave-one-out 5-NN accuracy in the features' own space.
fn knn_accuracy(x: &[Vec<f32>], labels: &[usize]) -> f64 {
    let n = x.len();
    let mut correct = 0;
    for i in 0..n {
        let mut d: Vec<(f32, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let dist = x[i].iter().zip(&x[j]).map(|(a, b)| (a - b) * (a - b)).sum();
                (dist, labels[j])
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut votes = [0usize; 10];
        for &(_, l) in d.iter().take(5) {
            votes[l] += 1;
        }
        let best = (0..10).max_by_key(|&c| (votes[c], 10 - c)).unwrap_or(0);
        correct += usize::from(best == labels[i]);
    }
    correct as f64 / n as f64
}

#[test]
fn the_map_of_a_built_in_set_separates_its_classes() {
    let root = std::env::temp_dir().join(format!("insight-map-{}", std::process::id()));
    let cfg = SynthAudioConfig {
        clips_per_class_per_fold: 4,
        ..SynthAudioConfig::default()
    };
    let index = generate_synth_esc50(&root, &cfg).unwrap();
    let mel = LogMelSpectrogram::new(&LogMelConfig::esc50_16k()).unwrap();
    let n_mels = mel.config().n_mels;
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for clip in index.clips() {
        let wave = load_wav(&index.audio_path(clip), cfg.sample_rate).unwrap();
        // The log-mel statistics baseline of esc50-audio: mean and std of
        // each band over the frames that hold sound.
        let f = mel.statistics(&wave, -30.0).unwrap();
        rows.push(f);
        labels.push(clip.target as usize);
    }
    // Standardised per feature, as the linear probe sees them (decibel means
    // and standard deviations have different scales).
    let n = rows.len();
    let d = 2 * n_mels;
    for j in 0..d {
        let mean = rows.iter().map(|r| r[j]).sum::<f32>() / n as f32;
        let var = rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f32>() / n as f32;
        let std = var.sqrt().max(1e-6);
        rows.iter_mut().for_each(|r| r[j] = (r[j] - mean) / std);
    }
    let x = Tensor::from_vec(rows.concat(), (n, d), &Device::Cpu).unwrap();
    let classes: Vec<String> = index.classes().to_vec();
    let pics = draw_pictures(
        &root,
        "logmel",
        &x,
        &labels,
        &classes,
        &TsneConfig::default(),
    )
    .unwrap();
    let high_d = knn_accuracy(&rows, &labels);
    let chance = 1.0 / classes.len() as f64;
    eprintln!(
        "log-mel statistics of {n} built-in clips: 5-NN accuracy {:.1}% in the map, {:.1}% in {} dimensions, chance {:.1}%",
        100.0 * pics.knn_2d,
        100.0 * high_d,
        2 * n_mels,
        100.0 * chance
    );
    assert!(pics.knn_2d > chance + 0.3, "map: {:.3}", pics.knn_2d);
    assert!(
        pics.knn_2d > high_d - 0.1,
        "map {:.3} vs {high_d:.3}",
        pics.knn_2d
    );
    std::fs::remove_dir_all(&root).ok();
}

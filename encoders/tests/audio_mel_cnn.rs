//! `MelCnn` (BYOL-A's audio encoder) against PyTorch golden values
//! (`scripts/golden/make-mel-cnn-golden.py`: forward in train and eval mode,
//! per-frame features, running statistics, every weight and input gradient),
//! finite differences, and its use inside `SpectrogramEncoder`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use encoders::audio::{
    LogMelConfig, MelCnn, MelCnnConfig, SpectrogramEncoder, SpectrogramEncoderConfig, TimePool,
};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::model::Encoder;
use vicreg_core::ParamStore;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/mel_cnn_golden.safetensors"
);

fn small() -> MelCnnConfig {
    MelCnnConfig {
        channels: 4,
        blocks: 2,
        dim: 6,
    }
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(GOLDEN, &Device::Cpu).unwrap()
}

/// The small f64 network on 8 mel bands, its variables in a store seeded `seed`.
fn small_net(seed: u64) -> (MelCnn, ParamStore) {
    let store = ParamStore::new(seed);
    let net = MelCnn::new(
        &small(),
        8,
        TimePool::MeanMax,
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    (net, store)
}

/// The golden network in a store (real variables, so running statistics update).
fn golden_net(g: &HashMap<String, Tensor>) -> (MelCnn, ParamStore) {
    let (net, store) = small_net(0);
    let weights: HashMap<String, Tensor> = g
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("w.").map(|n| (n.to_string(), v.clone())))
        .collect();
    store
        .load_tensors(&weights, false, Path::new(GOLDEN))
        .unwrap();
    (net, store)
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let s = b.abs().unwrap().max_all().unwrap();
    d.to_scalar::<f64>().unwrap() / s.to_scalar::<f64>().unwrap().max(1e-12)
}

#[test]
fn matches_pytorch_forward_statistics_and_every_gradient() {
    let g = golden();
    let (net, _store) = golden_net(&g);
    let x = candle_core::Var::from_tensor(&g["x"]).unwrap();

    // Eval mode first (running statistics as loaded).
    let eval = net.features(x.as_tensor(), false).unwrap();
    assert!(max_rel(&eval, &g["eval"]) < 1e-12, "eval forward");

    let frames = net.frame_features(x.as_tensor(), true).unwrap();
    // Ours: (batch, dim, time); PyTorch's: (batch, time, dim).
    let frames = frames.transpose(1, 2).unwrap();
    assert!(max_rel(&frames, &g["frames_train"]) < 1e-12, "frames");

    // A fresh store for the gradient pass, so statistics are updated once.
    let (net, store2) = golden_net(&g);
    let out = net.features(x.as_tensor(), true).unwrap();
    assert!(max_rel(&out, &g["train"]) < 1e-12, "train forward");
    let grads = (&out * &g["r"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gx = grads.get(x.as_tensor()).expect("input gradient");
    assert!(max_rel(gx, &g["g.x"]) < 1e-12, "input gradient");
    let mut checked = 0;
    for (name, var) in store2.trainable_vars() {
        let want = &g[&format!("g.{name}")];
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(max_rel(got, want) < 1e-10, "gradient of {name}");
        checked += 1;
    }
    assert_eq!(
        checked,
        2 * 2 + 2 + 4,
        "conv + BN affine per block, two linears"
    );
    let t = store2.tensors();
    for i in 0..2 {
        let bn = 4 * i + 1;
        let rm = &t[&format!("features.{bn}.running_mean")];
        let rv = &t[&format!("features.{bn}.running_var")];
        assert!(max_rel(rm, &g[&format!("running_mean.{i}")]) < 1e-12);
        assert!(max_rel(rv, &g[&format!("running_var.{i}")]) < 1e-12);
    }
}

#[test]
fn finite_differences_agree_in_train_mode() {
    let (net, _store) = small_net(3);
    let mut rng = vicreg_core::SeededRng::new(5);
    let v: Vec<f64> = (0..3 * 8 * 12)
        .map(|_| rng.uniform_range(0.0, 1.0))
        .collect();
    let x = Tensor::from_vec(v, (3, 1, 8, 12), &Device::Cpu).unwrap();
    let report = check_gradients(
        |xs| Ok(net.features(&xs[0], true)?),
        &[x],
        &GradCheckOptions::default(),
    )
    .unwrap();
    report.assert_ok(1e-6).unwrap();
    assert!(report.max_abs_numeric[0] > 1e-4, "{report:?}");
}

#[test]
fn sizes_and_bad_inputs() {
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let net = MelCnn::new(&MelCnnConfig::default(), 32, TimePool::MeanMax, vb).unwrap();
    assert_eq!(net.repr_dim(), 512);
    // 64 channels x 4 mel rows -> 512, then 512 -> 512; 3 convs 3x3 and 3 BNs.
    let params: usize = store
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    let convs = 9 * 64 + 2 * 9 * 64 * 64;
    assert_eq!(
        params,
        convs + 3 * 2 * 64 + (256 * 512 + 512) + (512 * 512 + 512)
    );
    let x = Tensor::zeros((2, 1, 32, 20), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.features(&x, false).unwrap().dims(), &[2, 512]);
    assert_eq!(net.frame_features(&x, false).unwrap().dims(), &[2, 512, 2]);
    // Too few frames, wrong channel count: errors, not panics.
    let short = Tensor::zeros((2, 1, 32, 7), DType::F32, &Device::Cpu).unwrap();
    let err = net.features(&short, false).unwrap_err().to_string();
    assert!(err.contains("at least 8 frames"), "{err}");
    let rgb = Tensor::zeros((2, 3, 32, 20), DType::F32, &Device::Cpu).unwrap();
    assert!(net.features(&rgb, false).is_err());
    // Too few mel bands for the blocks, absurd widths.
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let err = MelCnn::new(&MelCnnConfig::default(), 7, TimePool::Mean, vb.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("7 mel bands are too few"), "{err}");
    for bad in [
        MelCnnConfig {
            dim: 1 << 30,
            ..MelCnnConfig::default()
        },
        MelCnnConfig {
            blocks: 0,
            ..MelCnnConfig::default()
        },
        MelCnnConfig {
            channels: 0,
            ..MelCnnConfig::default()
        },
    ] {
        assert!(bad.validate(64).is_err(), "{bad:?}");
    }
    assert_eq!(MelCnnConfig::byol_a().dim, 2048);
}

#[test]
fn spectrogram_encoder_runs_the_mel_cnn_on_any_clip_length() {
    let cfg = SpectrogramEncoderConfig {
        mel: LogMelConfig {
            n_mels: 16,
            ..LogMelConfig::esc50_16k()
        },
        mel_cnn: Some(MelCnnConfig { dim: 24, ..small() }),
        time_pool: TimePool::MeanMax,
        ..SpectrogramEncoderConfig::esc50_16k()
    };
    let store = ParamStore::new(1);
    let enc = SpectrogramEncoder::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert!(enc.resnet().is_none());
    assert_eq!(enc.mel_cnn().unwrap().config().dim, 24);
    assert_eq!(enc.repr_dim(), 24);
    let names: Vec<String> = store.named_vars().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"features.0.weight".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"fc.3.bias".to_string()), "{names:?}");
    // No frame alignment: the network sees the front end's frames as they are.
    assert_eq!(enc.input_frames(16_000), enc.front_end().num_frames(16_000));
    // A clip shorter than the 4 frames two blocks need is padded up to them.
    assert!(enc.front_end().num_frames(300) < 4);
    assert_eq!(enc.input_frames(300), 4);
    for samples in [300usize, 4_000, 16_000, 23_456] {
        let v: Vec<f32> = (0..2 * samples)
            .map(|i| (i as f32 * 0.05).sin() * 0.3)
            .collect();
        let w = Tensor::from_vec(v, (2, samples), &Device::Cpu).unwrap();
        let y = enc.forward_t(&w, true).unwrap();
        assert_eq!(y.dims(), &[2, 24]);
        let y = enc.forward_t(&w, false).unwrap();
        assert!(y
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite()));
    }
    // The config round-trips, and an old config without the key means the ResNet.
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(
        serde_json::from_str::<SpectrogramEncoderConfig>(&json).unwrap(),
        cfg
    );
    let mut old = serde_json::to_value(SpectrogramEncoderConfig::default()).unwrap();
    old.as_object_mut()
        .unwrap()
        .remove("mel_cnn")
        .expect("the key exists");
    let old: SpectrogramEncoderConfig = serde_json::from_value(old).unwrap();
    assert_eq!(old.mel_cnn, None);
}

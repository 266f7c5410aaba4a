//! The 1-D ResNet waveform encoder: shapes, names, config checks, and a few
//! VICReg training steps in a siamese `JointEmbedding` with the loss going down.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use encoders::audio::{ResNet1d, ResNet1dConfig};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
use vicreg_core::{ParamStore, SeededRng};

#[test]
fn default_is_resnet18_with_384_d_output_and_torchvision_names() {
    let cfg = ResNet1dConfig::default();
    assert_eq!(cfg.blocks, vec![2, 2, 2, 2]);
    assert_eq!(cfg.widths, vec![48, 96, 192, 384]);
    // total hop 4 (stem) * 2 (pool) * 8 (stages) = 64 samples.
    assert_eq!(cfg.output_frames(64_000), Some(1000));
    let store = ParamStore::new(0);
    let net = ResNet1d::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(net.repr_dim(), 384);
    let vars = store.named_vars();
    let get = |n: &str| {
        vars.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.dims().to_vec())
    };
    assert_eq!(get("conv1.weight"), Some(vec![48, 1, 49]));
    assert_eq!(get("layer1.0.conv1.weight"), Some(vec![48, 48, 3]));
    assert_eq!(get("layer2.0.downsample.0.weight"), Some(vec![96, 48, 1]));
    assert_eq!(get("layer4.1.bn2.weight"), Some(vec![384]));
    assert_eq!(get("layer1.0.downsample.0.weight"), None);
    // zero_init_residual: the last BN of each block starts at gamma 0, the others at 1.
    let g = |n: &str| {
        vars.iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert!(g("layer3.1.bn2.weight").iter().all(|v| *v == 0.0));
    assert!(g("layer3.1.bn1.weight").iter().all(|v| *v == 1.0));
    // Conv weights: Kaiming normal fan_out, std sqrt(2 / (out * k)).
    let w = g("layer2.1.conv1.weight");
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    let want = (2.0f32 / (96.0 * 3.0)).sqrt();
    assert!((std / want - 1.0).abs() < 0.05, "std {std} vs {want}");
    // Trainable parameter count of the 384-d network.
    let n: usize = store
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    assert!(n > 2_100_000 && n < 2_200_000, "{n} parameters"); // 2,166,096
    assert_eq!(ResNet1dConfig::resnet18_wide().widths.last(), Some(&512));
}

#[test]
fn forward_shapes_modes_and_input_errors() {
    let cfg = ResNet1dConfig::tiny();
    let store = ParamStore::new(0);
    let net = ResNet1d::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let mut rng = SeededRng::new(1);
    let x: Vec<f32> = (0..4 * 300)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    let x = Tensor::from_vec(x, (4, 300), &Device::Cpu).unwrap();
    let feats = net.features_t(&x, true).unwrap();
    assert_eq!(feats.dims(), &[4, 8, cfg.output_frames(300).unwrap()]);
    let y = net.forward_t(&x, true).unwrap();
    assert_eq!(y.dims(), &[4, 8]);
    // Eval mode uses the running statistics (updated once by the train pass above): different output.
    let ye = net.forward_t(&x, false).unwrap();
    let diff = (&y - &ye)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 1e-3);
    // f64 input is accepted and converted.
    assert_eq!(
        net.forward_t(&x.to_dtype(DType::F64).unwrap(), false)
            .unwrap()
            .dtype(),
        DType::F32
    );

    let one = x
        .narrow(0, 0, 1)
        .unwrap()
        .narrow(1, 0, cfg.min_samples())
        .unwrap();
    assert_eq!(cfg.output_frames(cfg.min_samples()), Some(1));
    let e = net.forward_t(&one, true).unwrap_err().to_string();
    assert!(e.contains("more than one value per channel"), "{e}");
    assert!(
        net.forward_t(&one, false).is_ok(),
        "eval mode uses running statistics"
    );
    let min = cfg.min_samples();
    assert!(net.forward_t(&x.narrow(1, 0, min).unwrap(), true).is_ok());
    let e = net
        .forward_t(&x.narrow(1, 0, min - 1).unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shorter"), "{e}");
    let e = net
        .forward_t(&x.unsqueeze(1).unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("(batch, samples)"), "{e}");

    let bad = ResNet1dConfig {
        widths: vec![4],
        ..ResNet1dConfig::tiny()
    };
    let e = ResNet1d::new(&bad, store.var_builder(DType::F32, &Device::Cpu))
        .unwrap_err()
        .to_string();
    assert!(e.contains("same length"), "{e}");
    let even = ResNet1dConfig {
        stem_kernel: 8,
        ..ResNet1dConfig::tiny()
    };
    assert!(even
        .validate()
        .unwrap_err()
        .to_string()
        .contains("stem_kernel"));

    let json = serde_json::to_string(&ResNet1dConfig::default()).unwrap();
    assert_eq!(
        serde_json::from_str::<ResNet1dConfig>(&json).unwrap(),
        ResNet1dConfig::default()
    );
    let partial: ResNet1dConfig =
        serde_json::from_str(r#"{"widths": [64, 128, 256, 512]}"#).unwrap();
    assert_eq!(partial.stem_kernel, 49);
}

/// Two views of a batch of random-frequency tones: random gain, time shift and noise.
fn views(rng: &mut SeededRng, batch: usize, samples: usize) -> (Tensor, Tensor) {
    let freqs: Vec<f64> = (0..batch).map(|_| rng.uniform_range(0.01, 0.2)).collect();
    let make = |rng: &mut SeededRng| {
        let mut v = Vec::with_capacity(batch * samples);
        for f in &freqs {
            let (gain, shift) = (rng.uniform_range(0.3, 0.9), rng.uniform_range(0.0, 50.0));
            for n in 0..samples {
                let s = gain * (2.0 * std::f64::consts::PI * f * (n as f64 + shift)).sin()
                    + 0.05 * rng.normal();
                v.push(s as f32);
            }
        }
        Tensor::from_vec(v, (batch, samples), &Device::Cpu).unwrap()
    };
    (make(rng), make(rng))
}

#[test]
fn trains_in_a_siamese_joint_embedding() {
    let dev = Device::Cpu;
    let store = ParamStore::new(7);
    let vb = store.var_builder(DType::F32, &dev);
    let enc = ResNet1d::new(&ResNet1dConfig::tiny(), vb.pp("backbone")).unwrap();
    let branch = Branch::new(enc, &ExpanderConfig::with_mlp("32-32"), vb.pp("projector")).unwrap();
    let model = JointEmbedding::siamese(branch);
    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut opt = AdamW::new(
        vec![ParamGroup::new(store.trainable_vars())],
        AdamWConfig::default(),
    )
    .unwrap();
    let stem = store.vars_with_prefix("backbone.conv1.weight")[0].1.clone();
    let stem0 = stem.as_tensor().copy().unwrap();

    let mut rng = SeededRng::new(3);
    let (xa, xb) = views(&mut rng, 16, 256);
    let mut losses = vec![];
    for step in 0..12 {
        let out = model.forward_t(&xa, &xb, true).unwrap();
        let l = loss.compute(&out.a.emb, &out.b.emb, &single).unwrap();
        let grads = l.total.backward().unwrap();
        if step == 0 {
            let g = grads
                .get(stem.as_tensor())
                .expect("stem conv gets a gradient");
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            );
        }
        opt.step(&grads, 3e-3).unwrap();
        losses.push(l.total.to_scalar::<f32>().unwrap());
    }
    let first = losses[0];
    let last3 = losses[9..].iter().sum::<f32>() / 3.0;
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last3 < 0.9 * first, "loss did not go down: {losses:?}");
    let moved = (stem.as_tensor() - &stem0)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 0.0, "stem weights did not change");
}

//! The spectrogram encoder (log-mel -> 1-channel ResNet-18) and the paper's
//! non-shared waveform-vs-spectrogram joint embedding.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use encoders::audio::{
    LogMelConfig, ResNet1d, ResNet1dConfig, SpectrogramEncoder, SpectrogramEncoderConfig,
};
use encoders::ResNetConfig;
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
use vicreg_core::{ParamStore, SeededRng};

/// `batch` clips of `samples` samples at 16 kHz: tones of random pitch, gain and noise.
fn waves(rng: &mut SeededRng, batch: usize, samples: usize) -> Tensor {
    let mut v = Vec::with_capacity(batch * samples);
    for _ in 0..batch {
        let (f, g) = (
            rng.uniform_range(100.0, 4000.0),
            rng.uniform_range(0.1, 0.8),
        );
        for n in 0..samples {
            v.push(
                (g * (2.0 * std::f64::consts::PI * f * n as f64 / 16_000.0).sin()
                    + 0.02 * rng.normal()) as f32,
            );
        }
    }
    Tensor::from_vec(v, (batch, samples), &Device::Cpu).unwrap()
}

#[test]
fn spectrogram_encoder_shapes_names_and_config_errors() {
    let store = ParamStore::new(0);
    let cfg = SpectrogramEncoderConfig::esc50_16k();
    let enc = SpectrogramEncoder::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(enc.repr_dim(), 512);
    assert_eq!(
        enc.resnet().unwrap().tensor("conv1.weight").unwrap().dims(),
        &[64, 1, 7, 7]
    );
    let x = waves(&mut SeededRng::new(1), 2, 4000);
    let spec = enc.spectrogram(&x).unwrap();
    // 16 frames, padded to 32 (= 64 mels mod 32) with the clip minimum.
    assert_eq!(enc.front_end().num_frames(4000), 16);
    assert_eq!(spec.dims(), &[2, 1, 64, 32]);
    assert_eq!(enc.input_frames(4000), 32);
    let pad = spec
        .narrow(3, 16, 16)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(pad, 0.0);
    let direct = enc.front_end().forward(&x).unwrap();
    let diff = (spec.narrow(3, 0, 16).unwrap() - direct)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    // The paper's 5 s 44.1 kHz clips: 431 frames -> 448; already aligned lengths stay.
    let full = SpectrogramEncoder::new(
        &SpectrogramEncoderConfig::esc50(),
        store.var_builder(DType::F32, &Device::Cpu).pp("e"),
    )
    .unwrap();
    assert_eq!(
        (
            full.front_end().num_frames(220_500),
            full.input_frames(220_500)
        ),
        (431, 448)
    );
    assert_eq!(full.input_frames(511 * 512), 512);
    let unaligned = SpectrogramEncoder::new(
        &SpectrogramEncoderConfig {
            align_frames: false,
            ..SpectrogramEncoderConfig::esc50_16k()
        },
        store.var_builder(DType::F32, &Device::Cpu).pp("u"),
    )
    .unwrap();
    assert_eq!(unaligned.spectrogram(&x).unwrap().dims(), &[2, 1, 64, 16]);
    let (lo, hi) = (
        spec.min_all().unwrap().to_scalar::<f32>().unwrap(),
        spec.max_all().unwrap().to_scalar::<f32>().unwrap(),
    );
    assert_eq!((lo, hi), (0.0, 1.0));
    let y = enc.forward_t(&x, true).unwrap();
    assert_eq!(y.dims(), &[2, 512]);
    assert!(enc
        .forward_t(&x.unsqueeze(0).unwrap(), true)
        .unwrap_err()
        .to_string()
        .contains("(batch, samples)"));

    let rgb = SpectrogramEncoderConfig {
        resnet: ResNetConfig::resnet18(),
        ..SpectrogramEncoderConfig::default()
    };
    let e = SpectrogramEncoder::new(&rgb, store.var_builder(DType::F32, &Device::Cpu).pp("x"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("1 input channel"), "{e}");
    let json = serde_json::to_string(&SpectrogramEncoderConfig::default()).unwrap();
    assert_eq!(
        serde_json::from_str::<SpectrogramEncoderConfig>(&json).unwrap(),
        SpectrogramEncoderConfig::default()
    );
}

#[test]
fn wave_vs_spectrogram_non_shared_joint_embedding_trains() {
    let dev = Device::Cpu;
    let store = ParamStore::new(5);
    let vb = store.var_builder(DType::F32, &dev);
    let wave = ResNet1d::new(&ResNet1dConfig::tiny(), vb.pp("a.backbone")).unwrap();
    // 32 mels x 9 frames (aligned to 32): the smallest input that keeps the test fast.
    let spec_cfg = SpectrogramEncoderConfig {
        mel: LogMelConfig {
            n_mels: 32,
            n_fft: 512,
            win_length: 512,
            ..LogMelConfig::esc50_16k()
        },
        ..SpectrogramEncoderConfig::esc50_16k()
    };
    let spec = SpectrogramEncoder::new(&spec_cfg, vb.pp("b.backbone")).unwrap();
    let exp = ExpanderConfig::with_mlp("32-32");
    let model = JointEmbedding::new(
        Branch::new(wave, &exp, vb.pp("a.projector")).unwrap(),
        Branch::new(spec, &exp, vb.pp("b.projector")).unwrap(),
    );
    assert!(!model.is_shared());
    assert_eq!(model.branch_a().encoder.repr_dim(), 8);
    assert_eq!(model.branch_b().encoder.repr_dim(), 512);

    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut opt = AdamW::new(
        vec![ParamGroup::new(store.trainable_vars())],
        AdamWConfig::default(),
    )
    .unwrap();
    let stem_a = store.vars_with_prefix("a.backbone.conv1.weight")[0]
        .1
        .clone();
    let stem_b = store.vars_with_prefix("b.backbone.conv1.weight")[0]
        .1
        .clone();
    let x = waves(&mut SeededRng::new(2), 8, 2048);
    // One update (the ResNet-18 backward and an AdamW step over its 11M values take ~0.6 s each on CPU),
    // then the loss at the same batch must be lower.
    let mut losses = vec![];
    for step in 0..2 {
        let out = model.forward_t(&x, &x, true).unwrap();
        assert_eq!(out.a.repr.dims(), &[8, 8]);
        assert_eq!(out.b.repr.dims(), &[8, 512]);
        let l = loss.compute(&out.a.emb, &out.b.emb, &single).unwrap();
        losses.push(l.total.to_scalar::<f32>().unwrap());
        if step == 1 {
            break;
        }
        let grads = l.total.backward().unwrap();
        for (name, v) in [("waveform stem", &stem_a), ("spectrogram stem", &stem_b)] {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0,
                "{name}"
            );
        }
        opt.step(&grads, 1e-3).unwrap();
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[1] < losses[0], "loss did not go down: {losses:?}");
}

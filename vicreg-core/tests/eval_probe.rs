//! Linear probe and k-NN on synthetic problems whose answer is known, and
//! feature extraction in eval mode without a graph.

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use vicreg_core::eval::{
    extract_features, knn_classify, linear_probe, Features, KnnConfig, LinearProbeConfig,
    ProbeOptimizer,
};
use vicreg_core::model::Encoder;
use vicreg_core::{ParamStore, SeededRng};

/// `n` points around `classes` well separated centres in `dim` dimensions.
fn separable(n: usize, classes: usize, dim: usize, seed: u64) -> Features {
    let mut rng = SeededRng::new(seed);
    let mut x = Vec::with_capacity(n * dim);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % classes;
        y.push(c);
        for d in 0..dim {
            let centre = if d == c { 3.0 } else { 0.0 };
            x.push((centre + 0.4 * rng.normal()) as f32);
        }
    }
    Features::new(Tensor::from_vec(x, (n, dim), &Device::Cpu).unwrap(), y).unwrap()
}

/// Gaussian features with labels drawn independently of them.
fn random_labels(n: usize, classes: usize, dim: usize, seed: u64) -> Features {
    let mut rng = SeededRng::new(seed);
    let x: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
    let y: Vec<usize> = (0..n).map(|_| rng.below(classes)).collect();
    Features::new(Tensor::from_vec(x, (n, dim), &Device::Cpu).unwrap(), y).unwrap()
}

fn probe_cfg() -> LinearProbeConfig {
    LinearProbeConfig {
        epochs: 20,
        lr: 0.2,
        batch_size: 64,
        ..LinearProbeConfig::paper()
    }
}

#[test]
fn separable_features_are_classified_perfectly() {
    let train = separable(300, 10, 16, 1);
    let test = separable(200, 10, 16, 2);
    let r = linear_probe(&train, &test, 10, &probe_cfg()).unwrap();
    assert!(r.top1 >= 99.0, "{r:?}");
    assert_eq!(r.top5, 100.0);
    assert!(r.train_top1 >= 99.0);
    let lars = linear_probe(
        &train,
        &test,
        10,
        &LinearProbeConfig {
            optimizer: ProbeOptimizer::Lars,
            lr: 20.0,
            ..probe_cfg()
        },
    )
    .unwrap();
    assert!(lars.top1 >= 95.0, "{lars:?}");
    let knn = knn_classify(&train, &test, 10, &KnnConfig::default()).unwrap();
    assert_eq!(knn.iter().map(|r| r.k).collect::<Vec<_>>(), [20, 200]);
    for r in &knn {
        assert!(r.top1 >= 99.0, "{r:?}");
    }
}

#[test]
fn random_labels_give_chance() {
    let train = random_labels(400, 4, 8, 3);
    let test = random_labels(800, 4, 8, 4);
    // Chance is 25%; the standard error with 800 test samples is ~1.5%.
    let r = linear_probe(&train, &test, 4, &probe_cfg()).unwrap();
    assert!((17.0..33.0).contains(&r.top1), "{r:?}");
    for k in knn_classify(&train, &test, 4, &KnnConfig::default()).unwrap() {
        assert!((17.0..33.0).contains(&k.top1), "{k:?}");
    }
    // Top-5 of 10 random classes is ~50%.
    let train = random_labels(400, 10, 8, 5);
    let test = random_labels(800, 10, 8, 6);
    let r = linear_probe(&train, &test, 10, &probe_cfg()).unwrap();
    assert!((40.0..60.0).contains(&r.top5), "{r:?}");
}

#[test]
fn probe_is_deterministic_and_checks_inputs() {
    let train = separable(100, 3, 6, 7);
    let test = separable(50, 3, 6, 8);
    let cfg = LinearProbeConfig {
        epochs: 3,
        ..probe_cfg()
    };
    let a = linear_probe(&train, &test, 3, &cfg).unwrap();
    let b = linear_probe(&train, &test, 3, &cfg).unwrap();
    assert_eq!(a, b);
    let err = linear_probe(&train, &test, 2, &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 2 is out of range"), "{err}");
    let other = separable(50, 3, 5, 8);
    assert!(linear_probe(&train, &other, 3, &cfg).is_err());
    assert!(knn_classify(&train, &other, 3, &KnnConfig::default()).is_err());
}

#[test]
fn knn_weights_votes_by_similarity() {
    // Test point (1, 0). Neighbours: one of class 0 at angle ~0, two of class 1 further away.
    // With k = 3 and T = 0.07 the single close neighbour outweighs the two far ones
    // (exp(1/0.07) vs 2 exp(0.8/0.07)); with a high temperature the majority wins.
    let x = Tensor::new(&[[1f32, 0.0], [0.8, 0.6], [0.8, -0.6]], &Device::Cpu).unwrap();
    let train = Features::new(x, vec![0, 1, 1]).unwrap();
    let test = Features::new(Tensor::new(&[[2f32, 0.0]], &Device::Cpu).unwrap(), vec![0]).unwrap();
    let sharp = KnnConfig {
        ks: vec![3],
        ..Default::default()
    };
    assert_eq!(
        knn_classify(&train, &test, 2, &sharp).unwrap()[0].top1,
        100.0
    );
    let flat = KnnConfig {
        ks: vec![3],
        temperature: 100.0,
        chunk: 1,
    };
    assert_eq!(knn_classify(&train, &test, 2, &flat).unwrap()[0].top1, 0.0);
}

/// Linear -> BatchNorm: eval mode must use the running statistics.
struct BnEncoder {
    lin: candle_nn::Linear,
    bn: candle_nn::BatchNorm,
}

impl Encoder for BnEncoder {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, train: bool) -> vicreg_core::Result<Tensor> {
        Ok(self.bn.forward_t(&self.lin.forward(x)?, train)?)
    }
    fn repr_dim(&self) -> usize {
        4
    }
}

#[test]
fn features_are_extracted_in_eval_mode_without_a_graph() {
    let store = ParamStore::new(3);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let enc = BnEncoder {
        lin: candle_nn::linear(3, 4, vb.pp("lin")).unwrap(),
        bn: candle_nn::batch_norm(4, 1e-5, vb.pp("bn")).unwrap(),
    };
    let mut rng = SeededRng::new(0);
    let batches: Vec<(Tensor, Vec<usize>)> = (0..3)
        .map(|i| {
            let v: Vec<f32> = (0..5 * 3)
                .map(|_| (rng.normal() * 3.0 + 1.0) as f32)
                .collect();
            (
                Tensor::from_vec(v, (5, 3), &Device::Cpu).unwrap(),
                vec![i; 5],
            )
        })
        .collect();
    let f = extract_features(&enc, batches.iter().cloned().map(Ok)).unwrap();
    assert_eq!(f.x.dims(), &[15, 4]);
    assert_eq!(f.labels[5..10], [1; 5]);
    assert!(!f.x.track_op(), "features must not keep a graph");
    // Eval mode: the same as forward_t(train = false), and not batch-normalised per batch.
    let direct = enc.forward_t(&batches[1].0, false).unwrap();
    let got = f.x.narrow(0, 5, 5).unwrap();
    let diff = (direct - &got)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
    let train_mode = enc.forward_t(&batches[1].0, true).unwrap();
    let diff = (train_mode - &got)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 1e-3);
}

//! A new modality in one small file: a tabular MLP encoder implementing
//! `Encoder`, trained in a non-shared two-branch model with the full stack
//! (expanders, VICReg loss, LARS, warmup-cosine schedule) on synthetic data.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use vicreg_core::loss::{VicRegConfig, VicRegLoss};
use vicreg_core::model::{linear_torch_init, Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{Lars, LarsConfig, LrSchedule, Optimizer, ParamGroup};
use vicreg_core::{ParamStore, Result, SeededRng};

/// Two-layer MLP over `(batch, features)` rows of a table.
struct TabularEncoder {
    l1: Linear,
    l2: Linear,
    out: usize,
}

impl TabularEncoder {
    fn new(features: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            l1: linear_torch_init(features, hidden, true, vb.pp("l1"))?,
            l2: linear_torch_init(hidden, hidden, true, vb.pp("l2"))?,
            out: hidden,
        })
    }
}

impl Encoder for TabularEncoder {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.l2.forward(&self.l1.forward(x)?.relu()?)?)
    }
    fn repr_dim(&self) -> usize {
        self.out
    }
}

const FEATURES: usize = 24;
const LATENT: usize = 16;

/// Rows generated from a 6-d latent; the two "modalities" see different noisy
/// linear mixtures of the same latent.
fn batch(rng: &mut SeededRng, mix_a: &[f64], mix_b: &[f64], b: usize) -> (Tensor, Tensor) {
    let mut xa = vec![0f32; b * FEATURES];
    let mut xb = vec![0f32; b * FEATURES];
    for i in 0..b {
        let z: Vec<f64> = (0..LATENT).map(|_| rng.normal()).collect();
        for f in 0..FEATURES {
            let mut sa = 0.0;
            let mut sb = 0.0;
            for (k, zk) in z.iter().enumerate() {
                sa += mix_a[f * LATENT + k] * zk;
                sb += mix_b[f * LATENT + k] * zk;
            }
            xa[i * FEATURES + f] = (sa + 0.1 * rng.normal()) as f32;
            xb[i * FEATURES + f] = (sb + 0.1 * rng.normal()) as f32;
        }
    }
    let dev = Device::Cpu;
    (
        Tensor::from_vec(xa, (b, FEATURES), &dev).unwrap(),
        Tensor::from_vec(xb, (b, FEATURES), &dev).unwrap(),
    )
}

/// Trains for 150 steps; returns (first invariance, first variance hinge,
/// last invariance, last variance hinge, last branch-A embeddings).
fn train(cfg: VicRegConfig) -> (f32, f32, f32, f32, Tensor) {
    let dev = Device::Cpu;
    let store = ParamStore::new(1);
    let vb = store.var_builder(DType::F32, &dev);
    let exp = ExpanderConfig::with_mlp("64-32");
    let a = Branch::new(
        TabularEncoder::new(FEATURES, 32, vb.pp("a.backbone")).unwrap(),
        &exp,
        vb.pp("a.projector"),
    )
    .unwrap();
    let b = Branch::new(
        TabularEncoder::new(FEATURES, 32, vb.pp("b.backbone")).unwrap(),
        &exp,
        vb.pp("b.projector"),
    )
    .unwrap();
    let model = JointEmbedding::new(a, b);
    assert!(!model.is_shared());
    let loss = VicRegLoss::new(cfg).unwrap();
    let mut opt = Lars::new(
        vec![ParamGroup::new(store.trainable_vars())],
        LarsConfig::default(),
    )
    .unwrap();
    let (steps, bsz) = (150usize, 64usize);
    let sched = LrSchedule::official(10.0, bsz, 1, steps, 0);
    let mut rng = SeededRng::new(5);
    let mix_a: Vec<f64> = (0..FEATURES * LATENT).map(|_| rng.normal()).collect();
    let mix_b: Vec<f64> = (0..FEATURES * LATENT).map(|_| rng.normal()).collect();
    let mut first = None;
    let mut last = None;
    for step in 0..steps {
        let (xa, xb) = batch(&mut rng, &mix_a, &mix_b, bsz);
        let out = model.forward_t(&xa, &xb, true).unwrap();
        let t = loss.terms(&out.a.emb, &out.b.emb).unwrap();
        let inv = t.invariance.to_scalar::<f32>().unwrap();
        let var = 0.5
            * (t.variance[0].to_scalar::<f32>().unwrap()
                + t.variance[1].to_scalar::<f32>().unwrap());
        if step == 0 {
            first = Some((inv, var));
        }
        last = Some((inv, var, out.a.emb.clone()));
        opt.step(&t.total.backward().unwrap(), sched.lr_at(step as u64))
            .unwrap();
    }
    let (inv0, var0) = first.unwrap();
    let (inv1, var1, emb) = last.unwrap();
    (inv0, var0, inv1, var1, emb)
}

#[test]
fn trains_without_collapse_while_invariance_falls() {
    let (inv0, var0, inv1, var1, emb) = train(VicRegConfig::default());
    assert!(
        inv1 < 0.2 * inv0,
        "invariance should fall: {inv0} -> {inv1}"
    );
    assert!(
        var1 < 0.5 * var0 && var1 < 0.35,
        "variance hinge should fall and stay low (no collapse): {var0} -> {var1}"
    );
    let std = vicreg_core::diagnostics::embedding_std(&emb).unwrap();
    assert!(std.mean > 0.5, "embedding std {std:?}");
    assert!(vicreg_core::diagnostics::effective_rank(&emb).unwrap() > 4.0);
}

#[test]
fn invariance_alone_collapses() {
    // The control: without the variance and covariance terms the same model collapses.
    let cfg = VicRegConfig {
        std_coeff: 0.0,
        cov_coeff: 0.0,
        ..VicRegConfig::default()
    };
    let (_, var0, _, var1, emb) = train(cfg);
    assert!(
        var1 > var0,
        "the variance hinge should grow towards 1: {var0} -> {var1}"
    );
    let std = vicreg_core::diagnostics::embedding_std(&emb).unwrap();
    assert!(std.mean < 0.05, "embeddings should collapse, std {std:?}");
}

#[test]
fn siamese_model_has_one_set_of_variables() {
    let dev = Device::Cpu;
    let store = ParamStore::new(1);
    let vb = store.var_builder(DType::F32, &dev);
    let branch = Branch::new(
        TabularEncoder::new(4, 8, vb.pp("backbone")).unwrap(),
        &ExpanderConfig::with_mlp("16-16"),
        vb.pp("projector"),
    )
    .unwrap();
    let model = JointEmbedding::siamese(branch);
    assert!(model.is_shared());
    // backbone l1/l2 (w, b) + projector 0 (w, b), 1 (BN w, b, mean, var), 3 (w)
    assert_eq!(store.named_vars().len(), 4 + 2 + 4 + 1);
    let x = Tensor::ones((3, 4), DType::F32, &dev).unwrap();
    let out = model.forward_t(&x, &x, false).unwrap();
    let diff = (out.a.emb - out.b.emb)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn same_seed_same_initialisation_whatever_the_order() {
    let dev = Device::Cpu;
    let s1 = ParamStore::new(9);
    let s2 = ParamStore::new(9);
    let _ = TabularEncoder::new(4, 8, s1.var_builder(DType::F32, &dev).pp("x")).unwrap();
    let _ = TabularEncoder::new(4, 8, s1.var_builder(DType::F32, &dev).pp("y")).unwrap();
    let _ = TabularEncoder::new(4, 8, s2.var_builder(DType::F32, &dev).pp("y")).unwrap();
    let _ = TabularEncoder::new(4, 8, s2.var_builder(DType::F32, &dev).pp("x")).unwrap();
    let t1 = s1.tensors();
    let t2 = s2.tensors();
    for (k, v) in &t1 {
        let a = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = t2[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b, "{k}");
    }
    // PyTorch's nn.Linear bound 1/sqrt(fan_in).
    let w = t1["x.l1.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(w.iter().all(|v| v.abs() <= 0.5));
    let s3 = ParamStore::new(10);
    let _ = TabularEncoder::new(4, 8, s3.var_builder(DType::F32, &dev).pp("x")).unwrap();
    assert_ne!(
        s3.tensors()["x.l1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        w
    );
}

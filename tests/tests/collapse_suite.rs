//! Collapse behaviour of every loss and asymmetric option on a small synthetic
//! siamese setup (two noisy views of rows generated from an 8-d latent),
//! measured with the diagnostics: the paper's claims at toy scale.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::diagnostics::{average_correlation, effective_rank, embedding_std};
use vicreg_core::engine::JointModel;
use vicreg_core::loss::{
    l2_normalize, BarlowTwinsConfig, BarlowTwinsLoss, CosineLayout, JointLoss,
    NegativeCosineConfig, NegativeCosineLoss, SimClrConfig, SimClrLoss, VicRegConfig, VicRegLoss,
};
use vicreg_core::model::{
    linear_torch_init, AsymmetricModel, Branch, EmaOptimizer, EmaTarget, Encoder, ExpanderConfig,
    JointEmbedding, MomentumSchedule, Predictor, PredictorConfig,
};
use vicreg_core::optim::{Lars, LarsConfig, LrSchedule, Optimizer, ParamGroup};
use vicreg_core::{ParamStore, Result, SeededRng};

struct Mlp {
    l1: Linear,
    l2: Linear,
    out: usize,
}

impl Mlp {
    fn new(features: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            l1: linear_torch_init(features, hidden, true, vb.pp("l1"))?,
            l2: linear_torch_init(hidden, hidden, true, vb.pp("l2"))?,
            out: hidden,
        })
    }
}

impl Encoder for Mlp {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.l2.forward(&self.l1.forward(x)?.relu()?)?)
    }
    fn repr_dim(&self) -> usize {
        self.out
    }
}

const FEATURES: usize = 24;
const LATENT: usize = 8;
const HIDDEN: usize = 32;
const EMB: usize = 32;
const STEPS: usize = 150;
const BATCH: usize = 64;

/// Two views of the same rows: `x = M z` plus independent noise per view.
fn views(rng: &mut SeededRng, mix: &[f64]) -> (Tensor, Tensor) {
    let mut xa = vec![0f32; BATCH * FEATURES];
    let mut xb = vec![0f32; BATCH * FEATURES];
    for i in 0..BATCH {
        let z: Vec<f64> = (0..LATENT).map(|_| rng.normal()).collect();
        for f in 0..FEATURES {
            let x: f64 = (0..LATENT).map(|k| mix[f * LATENT + k] * z[k]).sum();
            xa[i * FEATURES + f] = (x + 0.5 * rng.normal()) as f32;
            xb[i * FEATURES + f] = (x + 0.5 * rng.normal()) as f32;
        }
    }
    let dev = Device::Cpu;
    (
        Tensor::from_vec(xa, (BATCH, FEATURES), &dev).unwrap(),
        Tensor::from_vec(xb, (BATCH, FEATURES), &dev).unwrap(),
    )
}

fn expander() -> ExpanderConfig {
    ExpanderConfig::with_mlp("64-32")
}

/// What the diagnostics say about the final embeddings.
#[derive(Debug)]
struct Diag {
    /// Mean per-dimension std of the raw embeddings.
    std: f64,
    /// Mean per-dimension std of the L2-normalised embeddings times sqrt(dim):
    /// ~1 for spread-out embeddings, 0 when collapsed (SimSiam's metric).
    std_l2: f64,
    /// Average correlation coefficient (signed) of the embeddings.
    corr: f64,
    /// Effective rank of the embeddings.
    rank: f64,
    /// Mean absolute off-diagonal correlation coefficient.
    abs_corr: f64,
}

/// Mean over `i != j` of `|corr(z_i, z_j)|` (f64 loops).
fn mean_abs_correlation(z: &Tensor) -> f64 {
    let v = z.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let (b, d) = (v.len(), v[0].len());
    let cols: Vec<Vec<f64>> = (0..d)
        .map(|j| {
            let m = v.iter().map(|r| r[j]).sum::<f64>() / b as f64;
            let c: Vec<f64> = v.iter().map(|r| r[j] - m).collect();
            let n = c.iter().map(|x| x * x).sum::<f64>().sqrt() + 1e-12;
            c.iter().map(|x| x / n).collect()
        })
        .collect();
    let mut s = 0.0;
    for i in 0..d {
        for j in 0..d {
            if i != j {
                s += cols[i]
                    .iter()
                    .zip(&cols[j])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    .abs();
            }
        }
    }
    s / (d * (d - 1)) as f64
}

fn diag(z: &Tensor) -> Diag {
    let d = z.dim(1).unwrap() as f64;
    Diag {
        std: embedding_std(z).unwrap().mean,
        std_l2: embedding_std(&l2_normalize(z).unwrap()).unwrap().mean * d.sqrt(),
        corr: average_correlation(z).unwrap(),
        rank: effective_rank(z).unwrap(),
        abs_corr: mean_abs_correlation(z),
    }
}

/// Trains `model` with `loss` and LARS (wrapped by `wrap`, e.g. for the EMA
/// target); returns the last branch-A embedding (the online projection for asymmetric models).
fn train<M: JointModel<A = Tensor, B = Tensor>>(
    model: &M,
    store: &ParamStore,
    loss: &dyn JointLoss,
    wrap: impl FnOnce(Box<dyn Optimizer>) -> Box<dyn Optimizer>,
) -> Diag {
    let vars = store.trainable_vars();
    let vars: Vec<_> = vars
        .into_iter()
        .filter(|(n, _)| !n.starts_with("target."))
        .collect();
    let lars = Lars::new(vec![ParamGroup::new(vars)], LarsConfig::default()).unwrap();
    let mut opt = wrap(Box::new(lars));
    let sched = LrSchedule::official(10.0, BATCH, 1, STEPS, 0);
    let mut rng = SeededRng::new(5);
    let mix: Vec<f64> = (0..FEATURES * LATENT).map(|_| rng.normal()).collect();
    let single: std::sync::Arc<dyn Collective> = std::sync::Arc::new(SingleProcess);
    let mut last = None;
    for step in 0..STEPS {
        let (xa, xb) = views(&mut rng, &mix);
        let out = model.forward_t(&xa, &xb, true).unwrap();
        let l = loss.compute_outputs(&out.a, &out.b, &single).unwrap();
        opt.step(&l.total.backward().unwrap(), sched.lr_at(step as u64))
            .unwrap();
        last = Some(out.a.emb.detach());
    }
    diag(&last.unwrap())
}

fn siamese(seed: u64) -> (JointEmbedding<Mlp>, ParamStore) {
    let store = ParamStore::new(seed);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let branch = Branch::new(
        Mlp::new(FEATURES, HIDDEN, vb.pp("backbone")).unwrap(),
        &expander(),
        vb.pp("projector"),
    )
    .unwrap();
    (JointEmbedding::siamese(branch), store)
}

fn vicreg(cfg: VicRegConfig) -> Diag {
    let (model, store) = siamese(1);
    train(&model, &store, &VicRegLoss::new(cfg).unwrap(), |o| o)
}

/// Asymmetric model: online branch, optional predictor, optional EMA target.
fn asymmetric(predictor: bool, momentum: bool, loss: NegativeCosineConfig) -> Diag {
    let store = ParamStore::new(1);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let online = Branch::new(
        Mlp::new(FEATURES, HIDDEN, vb.pp("online.backbone")).unwrap(),
        &expander(),
        vb.pp("online.projector"),
    )
    .unwrap();
    let pred = predictor.then(|| {
        Predictor::new(EMB, &PredictorConfig::with_mlp("64-32"), vb.pp("predictor")).unwrap()
    });
    let target = momentum.then(|| {
        Branch::new(
            Mlp::new(FEATURES, HIDDEN, vb.pp("target.backbone")).unwrap(),
            &expander(),
            vb.pp("target.projector"),
        )
        .unwrap()
    });
    let model = AsymmetricModel::new(online, pred, target).unwrap();
    let ema = momentum.then(|| EmaTarget::new(&store, "online.", "target.").unwrap());
    let loss = NegativeCosineLoss::new(loss).unwrap();
    // Diagnostics on the online projection z.
    train(&model, &store, &loss, |o| match ema {
        Some(t) => Box::new(
            EmaOptimizer::new(o, t, MomentumSchedule::byol(STEPS as u64).unwrap()).unwrap(),
        ),
        None => o,
    })
}

fn assert_spread(name: &str, d: &Diag) {
    assert!(
        d.std_l2 > 0.5 && d.rank > 5.0,
        "{name} should not collapse: {d:?}"
    );
}

fn assert_collapsed(name: &str, d: &Diag) {
    assert!(
        d.std_l2 < 0.1 && d.rank < 2.0,
        "{name} should collapse: {d:?}"
    );
}

#[test]
fn vicreg_full_vs_invariance_only_vs_no_covariance() {
    let full = vicreg(VicRegConfig::default());
    assert!(full.std > 0.5 && full.rank > 15.0, "full VICReg: {full:?}");
    assert_spread("full VICReg", &full);
    assert!(
        full.corr.abs() < 0.1,
        "signed average correlation {}",
        full.corr
    );
    // Invariance alone: every embedding goes to the same point (std ~ 0).
    let inv = vicreg(VicRegConfig {
        std_coeff: 0.0,
        cov_coeff: 0.0,
        ..VicRegConfig::default()
    });
    assert!(inv.std < 0.05, "invariance only should collapse: {inv:?}");
    // Invariance + variance: the std is kept, but the dimensions become
    // correlated copies of each other (dimensional collapse).
    let nocov = vicreg(VicRegConfig {
        cov_coeff: 0.0,
        ..VicRegConfig::default()
    });
    println!("full {full:?}\ninv {inv:?}\nno covariance {nocov:?}");
    assert!(
        nocov.std > 0.5,
        "the variance term keeps the std: {nocov:?}"
    );
    assert!(
        nocov.rank < 0.5 * full.rank,
        "effective rank {} vs full {}",
        nocov.rank,
        full.rank
    );
    assert!(
        nocov.abs_corr > 1.5 * full.abs_corr,
        "mean |correlation| {} vs full {}",
        nocov.abs_corr,
        full.abs_corr
    );
}

#[test]
fn barlow_twins_and_simclr_do_not_collapse() {
    let (m, s) = siamese(1);
    let bt = train(
        &m,
        &s,
        &BarlowTwinsLoss::new(BarlowTwinsConfig::default()).unwrap(),
        |o| o,
    );
    let (m, s) = siamese(1);
    let sc = train(
        &m,
        &s,
        &SimClrLoss::new(SimClrConfig::default()).unwrap(),
        |o| o,
    );
    println!("barlow twins {bt:?}\nsimclr {sc:?}");
    assert!(bt.rank > 15.0, "barlow twins: {bt:?}");
    assert!(sc.rank > 15.0, "simclr: {sc:?}");
    assert_spread("barlow twins", &bt);
    assert_spread("simclr", &sc);
}

#[test]
fn negative_cosine_needs_predictor_and_stop_gradient() {
    // Plain siamese negative cosine, gradient through both sides: collapses.
    let (m, s) = siamese(1);
    let plain = NegativeCosineLoss::named(
        NegativeCosineConfig {
            layout: CosineLayout::Plain,
            stop_gradient: false,
            ..NegativeCosineConfig::byol()
        },
        "simsiam",
    )
    .unwrap();
    let nothing = train(&m, &s, &plain, |o| o);
    // Only one of the two (SimSiam paper, Table 1 / Figure 2): collapses too.
    let sg_only = asymmetric(false, false, NegativeCosineConfig::byol());
    let pred_only = asymmetric(
        true,
        false,
        NegativeCosineConfig {
            stop_gradient: false,
            ..NegativeCosineConfig::byol()
        },
    );
    // Predictor + stop-gradient (SimSiam): no collapse.
    let simsiam = asymmetric(true, false, NegativeCosineConfig::byol());
    println!("nothing {nothing:?}\nsg only {sg_only:?}\npredictor only {pred_only:?}\nsimsiam {simsiam:?}");
    assert_collapsed(
        "negative cosine without predictor and stop-gradient",
        &nothing,
    );
    assert_collapsed("stop-gradient without predictor", &sg_only);
    assert_collapsed("predictor without stop-gradient", &pred_only);
    assert_spread("SimSiam (predictor + stop-gradient)", &simsiam);
}

#[test]
fn byol_momentum_target_with_and_without_vicreg_terms() {
    let byol = asymmetric(true, true, NegativeCosineConfig::byol());
    let reg = asymmetric(
        true,
        true,
        NegativeCosineConfig::with_vicreg_terms(1.0, 0.04),
    );
    println!("byol {byol:?}\nbyol + variance/covariance {reg:?}");
    assert_spread("BYOL", &byol);
    assert_spread("BYOL + VICReg terms", &reg);
    // The variance hinge holds the projections' std near its target of 1.
    assert!(reg.std > 0.8, "{reg:?}");
}

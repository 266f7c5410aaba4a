//! The momentum (EMA) target: schedule values, the update rule, the optimizer
//! wrapper's state round trip, and the asymmetric model's checks and layout.

use candle_core::{DType, Device, Tensor};
use candle_nn::Module;
use vicreg_core::engine::JointModel;
use vicreg_core::model::{
    linear_torch_init, AsymmetricModel, Branch, EmaOptimizer, EmaTarget, Encoder, ExpanderConfig,
    MomentumSchedule, Predictor, PredictorConfig, EMA_STEP_STATE,
};
use vicreg_core::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
use vicreg_core::{ParamStore, Result};

struct Lin(candle_nn::Linear);

impl Encoder for Lin {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.0.forward(x)?)
    }
    fn repr_dim(&self) -> usize {
        4
    }
}

fn branch(vb: candle_nn::VarBuilder) -> Branch<Lin> {
    Branch::new(
        Lin(linear_torch_init(3, 4, true, vb.pp("backbone")).unwrap()),
        &ExpanderConfig::with_mlp("8-6"),
        vb.pp("projector"),
    )
    .unwrap()
}

fn vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn cosine_momentum_schedule() {
    let s = MomentumSchedule::byol(100).unwrap();
    assert!((s.at(0) - 0.996).abs() < 1e-15);
    assert!((s.at(50) - 0.998).abs() < 1e-12);
    assert_eq!(s.at(100), 1.0);
    assert_eq!(s.at(500), 1.0);
    assert!((1..100).all(|k| s.at(k) >= s.at(k - 1)));
    assert!(MomentumSchedule::new(1.5, 10).is_err());
    assert!(MomentumSchedule::new(0.9, 0).is_err());
}

#[test]
fn target_starts_as_a_copy_and_follows_by_ema() {
    let store = ParamStore::new(3);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let _online = branch(vb.pp("online"));
    let _target = branch(vb.pp("target"));
    let name = "projector.0.weight";
    let before = vec(&store.tensors()[&format!("target.{name}")]);
    let ema = EmaTarget::new(&store, "online.", "target.").unwrap();
    // backbone w, b; projector 0 w, b; BN 1 w, b; projector 3 w (BN running stats are not paired).
    assert_eq!(ema.target_names().len(), 7);
    let t = store.tensors();
    assert_eq!(
        vec(&t[&format!("online.{name}")]),
        vec(&t[&format!("target.{name}")])
    );
    assert_ne!(before, vec(&t[&format!("target.{name}")]));
    // Move the online weight, then t <- 0.9 t + 0.1 o.
    let online = store
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == &format!("online.{name}"))
        .unwrap()
        .1;
    let o0 = vec(online.as_tensor());
    online.set(&(online.as_tensor() + 1.0).unwrap()).unwrap();
    ema.update(0.9).unwrap();
    let got = vec(&store.tensors()[&format!("target.{name}")]);
    for (g, o) in got.iter().zip(&o0) {
        assert!((g - (0.9 * o + 0.1 * (o + 1.0))).abs() < 1e-6);
    }
    assert!(EmaTarget::new(&store, "online.", "nothing.").is_err());
    assert!(EmaTarget::new(&store, "online.", "online.").is_err());
}

#[test]
fn ema_optimizer_steps_the_schedule_and_round_trips_its_state() {
    let store = ParamStore::new(4);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let online = branch(vb.pp("online"));
    let target = branch(vb.pp("target"));
    let ema = EmaTarget::new(&store, "online.", "target.").unwrap();
    let vars = ema.without_targets(store.trainable_vars());
    assert!(vars.iter().all(|(n, _)| n.starts_with("online.")));
    let sgd =
        || Box::new(Sgd::new(vec![ParamGroup::new(vars.clone())], SgdConfig::default()).unwrap());
    let mut opt =
        EmaOptimizer::new(sgd(), ema.clone(), MomentumSchedule::new(0.5, 10).unwrap()).unwrap();
    let model = AsymmetricModel::new(online, None, Some(target)).unwrap();
    let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [0.5, -1.0, 2.0]], &Device::Cpu).unwrap();
    for _ in 0..3 {
        let out = model.forward_t(&x, &x, true).unwrap();
        // Without predictor p = z; the momentum target is detached.
        assert!(out.a.prediction.is_none() && out.a.target.is_some());
        let p = out.a.prediction();
        let g = p.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        opt.step(&g, 0.1).unwrap();
    }
    assert_eq!(opt.steps(), 3);
    let state = opt.state().unwrap();
    assert_eq!(vec(&state[EMA_STEP_STATE]), vec![3.0]);
    let mut fresh = EmaOptimizer::new(sgd(), ema, MomentumSchedule::new(0.5, 10).unwrap()).unwrap();
    fresh.load_state(&state).unwrap();
    assert_eq!(fresh.steps(), 3);
    assert_eq!(fresh.next_momentum(), opt.next_momentum());
    let mut bad = state.clone();
    bad.remove(EMA_STEP_STATE);
    assert!(fresh
        .load_state(&bad)
        .unwrap_err()
        .to_string()
        .contains(EMA_STEP_STATE));
}

#[test]
fn asymmetric_model_layout_and_checks() {
    let store = ParamStore::new(5);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let pred = Predictor::new(6, &PredictorConfig::with_mlp("10-6"), vb.pp("predictor")).unwrap();
    assert_eq!((pred.in_dim(), pred.out_dim()), (6, 6));
    let model = AsymmetricModel::new(branch(vb.pp("online")), Some(pred), None).unwrap();
    let x = Tensor::new(
        &[[1.0f32, 2.0, 3.0], [0.5, -1.0, 2.0], [0.0, 1.0, -1.0]],
        &Device::Cpu,
    )
    .unwrap();
    let out = model.forward_t(&x, &x, true).unwrap();
    // Each part named: the online projection z (what the diagnostics and the
    // VICReg terms see), the predictor's output on it, no momentum target.
    assert_eq!(out.a.emb.dims(), &[3, 6]);
    assert_eq!(out.a.repr.dims(), &[3, 4]);
    let p = out.a.prediction.as_ref().unwrap();
    assert_eq!(p.dims(), &[3, 6]);
    assert_ne!(vec(p), vec(&out.a.emb));
    assert!(out.a.target.is_none());
    // Without a momentum target the target is the projection.
    assert_eq!(vec(out.a.target()), vec(&out.a.emb));
    let bad = Predictor::new(6, &PredictorConfig::with_mlp("10-5"), vb.pp("bad")).unwrap();
    let e = AsymmetricModel::new(branch(vb.pp("o2")), Some(bad), None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("predictor"), "{e}");
    assert!(Predictor::new(6, &PredictorConfig::with_mlp("10-x"), vb.pp("worse")).is_err());
}

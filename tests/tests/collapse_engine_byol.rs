//! BYOL through the engine: an `AsymmetricModel` with a momentum target trained
//! by `Trainer` with an `EmaOptimizer` (no engine change needed); the target
//! follows the online network and the EMA step count is checkpointed.

use candle_core::{DType, Device, Module, Tensor};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::engine::{load_checkpoint, FnSource, PairBatch, TrainConfig, Trainer};
use vicreg_core::loss::{build_loss, LossConfig, LossKind};
use vicreg_core::model::{
    AsymmetricModel, Branch, EmaOptimizer, EmaTarget, Encoder, ExpanderConfig, MomentumSchedule,
    Predictor, PredictorConfig, EMA_STEP_STATE,
};
use vicreg_core::optim::{build_optimizer, OptimizerKind, ParamGroup};
use vicreg_core::{ParamStore, Result, SeededRng};

struct Tiny(candle_nn::Linear);

impl Encoder for Tiny {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.0.forward(x)?.relu()?)
    }
    fn repr_dim(&self) -> usize {
        8
    }
}

fn batch(epoch: usize, i: usize) -> Result<PairBatch<Tensor, Tensor>> {
    let mut rng = SeededRng::derive(3, &[epoch as u64, i as u64]);
    let base: Vec<f64> = (0..16 * 6).map(|_| rng.normal()).collect();
    let mut view = || -> Result<Tensor> {
        let v: Vec<f32> = base
            .iter()
            .map(|x| (x + 0.2 * rng.normal()) as f32)
            .collect();
        Ok(Tensor::from_vec(v, (16, 6), &Device::Cpu)?)
    };
    let a = view()?;
    let b = view()?;
    Ok(PairBatch::new(a, b, 16))
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn byol_trains_in_the_engine_and_checkpoints_the_ema_step() {
    let store = ParamStore::new(7);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let exp = ExpanderConfig::with_mlp("16-12");
    let branch = |p: &str| {
        Branch::new(
            Tiny(candle_nn::linear(6, 8, vb.pp(p).pp("encoder")).unwrap()),
            &exp,
            vb.pp(p).pp("projector"),
        )
        .unwrap()
    };
    let online = branch("online");
    let target = branch("target");
    let pred = Predictor::new(12, &PredictorConfig::with_mlp("24-12"), vb.pp("predictor")).unwrap();
    let model = AsymmetricModel::new(online, Some(pred), Some(target)).unwrap();
    let ema = EmaTarget::new(&store, "online.", "target.").unwrap();
    let init_target = vals(&store.tensors()["target.projector.0.weight"]);

    let cfg = TrainConfig::smoke();
    let dir = std::env::temp_dir().join(format!("vicreg-byol-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inner = build_optimizer(
        OptimizerKind::Sgd,
        vec![ParamGroup::new(ema.without_targets(store.trainable_vars()))],
        cfg.weight_decay,
    )
    .unwrap();
    let steps = (cfg.epochs * 6) as u64;
    let opt = EmaOptimizer::new(inner, ema, MomentumSchedule::new(0.9, steps).unwrap()).unwrap();
    let loss = build_loss(LossKind::Byol, &LossConfig::default()).unwrap();
    let single: std::sync::Arc<dyn Collective> = std::sync::Arc::new(SingleProcess);
    let mut trainer = Trainer::new(&model, &store, loss, single, cfg.clone(), &dir, &cfg)
        .unwrap()
        .with_optimizer(Box::new(opt));
    let summary = trainer.fit(&mut FnSource::new(6, batch)).unwrap();
    assert_eq!(summary.global_step, steps);

    let t = store.tensors();
    let (on, tg) = (
        vals(&t["online.projector.0.weight"]),
        vals(&t["target.projector.0.weight"]),
    );
    assert_ne!(tg, init_target, "the target must follow the online network");
    assert_ne!(tg, on, "with momentum < 1 the target lags behind");
    let ckpt = load_checkpoint(&dir.join("checkpoint.safetensors")).unwrap();
    let step = ckpt.section("optim/")[EMA_STEP_STATE]
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap();
    assert_eq!(step.to_vec1::<f64>().unwrap(), vec![steps as f64]);
    assert!(ckpt
        .section("model/")
        .contains_key("target.projector.0.weight"));
    let _ = std::fs::remove_dir_all(&dir);
}

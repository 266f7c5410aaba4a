//! Shared by the engine tests: a tiny two-branch MLP model and a deterministic
//! synthetic pair source (3 classes, two noisy views of each point).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::engine::{FnSource, PairBatch, TrainConfig, Trainer};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::{ParamStore, Result, SeededRng};

pub const IN_DIM: usize = 6;
pub const BATCH: usize = 16;
pub const CLASSES: usize = 3;

/// `(batch, 6)` -> Linear -> ReLU -> `(batch, 8)`.
pub struct TinyEncoder(pub Linear);

impl Encoder for TinyEncoder {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.0.forward(x)?.relu()?)
    }
    fn repr_dim(&self) -> usize {
        8
    }
}

pub type TinyModel = JointEmbedding<TinyEncoder, TinyEncoder>;

/// Two branches with their own weights (`a.encoder.*`, `a.projector.*`, `b.*`),
/// expander 16-16 with BatchNorm.
pub fn tiny_model(seed: u64) -> (TinyModel, ParamStore) {
    tiny_model_with(seed, true)
}

/// [`tiny_model`] with or without BatchNorm in the expander.
pub fn tiny_model_with(seed: u64, batch_norm: bool) -> (TinyModel, ParamStore) {
    let store = ParamStore::new(seed);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let exp = ExpanderConfig {
        mlp: "16-16".into(),
        hidden_batch_norm: batch_norm,
        layer_norm: false,
    };
    let branch = |name: &str| {
        let enc = TinyEncoder(candle_nn::linear(IN_DIM, 8, vb.pp(name).pp("encoder")).unwrap());
        Branch::new(enc, &exp, vb.pp(name).pp("projector")).unwrap()
    };
    let model = JointEmbedding::new(branch("a"), branch("b"));
    (model, store)
}

/// Batch `i` of `epoch`: `BATCH` points around 3 class centres, two noisy views, labels.
pub fn make_batch(epoch: usize, i: usize) -> Result<PairBatch<Tensor, Tensor>> {
    let mut rng = SeededRng::derive(11, &[epoch as u64, i as u64]);
    let mut labels = Vec::with_capacity(BATCH);
    let mut base = Vec::with_capacity(BATCH * IN_DIM);
    for _ in 0..BATCH {
        let c = rng.below(CLASSES);
        labels.push(c);
        for d in 0..IN_DIM {
            let centre = if d % CLASSES == c { 2.0 } else { 0.0 };
            base.push(centre + 0.5 * rng.normal());
        }
    }
    let view = |rng: &mut SeededRng| -> Result<Tensor> {
        let v: Vec<f32> = base
            .iter()
            .map(|x| (x + 0.2 * rng.normal()) as f32)
            .collect();
        Ok(Tensor::from_vec(v, (BATCH, IN_DIM), &Device::Cpu)?)
    };
    let a = view(&mut rng)?;
    let b = view(&mut rng)?;
    Ok(PairBatch::new(a, b, BATCH).with_labels(labels))
}

pub type BatchFn = Box<dyn FnMut(usize, usize) -> Result<PairBatch<Tensor, Tensor>>>;

/// The synthetic source with `n` batches per epoch.
pub fn source(n: usize) -> FnSource<BatchFn> {
    FnSource::new(n, Box::new(make_batch) as BatchFn)
}

pub fn vicreg() -> Box<dyn JointLoss> {
    Box::new(VicRegLoss::new(VicRegConfig::default()).unwrap())
}

pub fn single() -> Arc<dyn Collective> {
    Arc::new(SingleProcess)
}

/// A fresh, empty directory under the system temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vicreg-engine-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A trainer over a model, writing `cfg` itself as the resolved configuration.
pub fn trainer<'m>(
    model: &'m TinyModel,
    store: &ParamStore,
    cfg: &TrainConfig,
    dir: &Path,
) -> Trainer<'m, TinyModel> {
    Trainer::new(model, store, vicreg(), single(), cfg.clone(), dir, cfg).unwrap()
}

/// All tensor values as raw bits, for exact comparisons.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

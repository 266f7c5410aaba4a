//! Synchronized BatchNorm beyond the 2-D ResNet: a 1-D residual block of the
//! audio encoder (3 BatchNorms, one in the downsample branch) and the BYOL /
//! SimSiam predictor MLP (hidden BatchNorm). On two ranks (threads of a
//! `ThreadGroup`, half the batch each, the sync group set) they compute the
//! outputs, parameter gradients and running statistics of one process with
//! the whole batch; without the sync group the halves differ.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use encoders::audio::BasicBlock1d;
use vicreg_core::collective::{Collective, SyncBatchNormScope, ThreadGroup};
use vicreg_core::model::{Predictor, PredictorConfig};
use vicreg_core::{ParamStore, SeededRng};

const BATCH: usize = 6;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| 0.2 + rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

type Build = fn(VarBuilder) -> Box<dyn ModuleT>;

struct RankResult {
    out: Tensor,
    grads: HashMap<String, Tensor>,
    state: HashMap<String, Tensor>,
}

/// One forward/backward of the layer built by `build` on rows `lo..lo + n` of
/// a fixed `(BATCH, rest...)` input, with `group` as the BatchNorm sync group.
fn rank_step(
    build: Build,
    rest: &[usize],
    group: Option<Arc<dyn Collective>>,
    lo: usize,
    n: usize,
) -> RankResult {
    let store = ParamStore::new(5);
    let net = build(store.var_builder(DType::F64, &Device::Cpu));
    let mut shape = vec![BATCH];
    shape.extend_from_slice(rest);
    let x = randn(&shape, 1).narrow(0, lo, n).unwrap();
    let _scope = SyncBatchNormScope::new(group);
    let out = net.forward_t(&x, true).unwrap();
    let mut full = out.dims().to_vec();
    full[0] = BATCH;
    let w = randn(&full, 2).narrow(0, lo, n).unwrap();
    let g = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
    RankResult {
        out,
        grads: store
            .trainable_vars()
            .into_iter()
            .map(|(k, v)| (k, g.get(v.as_tensor()).unwrap().clone()))
            .collect(),
        state: store.tensors(),
    }
}

/// Asserts two synchronized ranks reproduce one rank; returns how many
/// running statistics were compared.
fn two_ranks_equal_one(build: Build, rest: &'static [usize]) -> usize {
    let single = rank_step(build, rest, None, 0, BATCH);
    let half = BATCH / 2;
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let lo = c.rank() * half;
                rank_step(build, rest, Some(Arc::new(c)), lo, half)
            })
        })
        .collect();
    let ranks: Vec<RankResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let out = Tensor::cat(&[&ranks[0].out, &ranks[1].out], 0).unwrap();
    let d = max_diff(&out, &single.out);
    assert!(d < 1e-10, "outputs differ by {d}");
    assert!(!single.grads.is_empty());
    for (name, g) in &single.grads {
        let sum = (&ranks[0].grads[name] + &ranks[1].grads[name]).unwrap();
        let d = max_diff(&sum, g);
        assert!(d < 1e-9, "{name}: gradient differs by {d}");
    }
    let mut stats = 0;
    for (name, t) in &single.state {
        if name.contains("running_") {
            stats += 1;
            for r in &ranks {
                let d = max_diff(&r.state[name], t);
                assert!(d < 1e-10, "{name}: running statistic differs by {d}");
            }
        }
    }
    // Control: halves with their own statistics do not reproduce the batch.
    let alone = rank_step(build, rest, None, 0, half);
    let d = max_diff(&alone.out, &single.out.narrow(0, 0, half).unwrap());
    assert!(d > 1e-3, "unsynchronized halves should differ, got {d}");
    stats
}

fn block1d(vb: VarBuilder) -> Box<dyn ModuleT> {
    Box::new(BasicBlock1d::new(2, 4, 2, 3, false, vb).unwrap())
}

fn predictor(vb: VarBuilder) -> Box<dyn ModuleT> {
    Box::new(Predictor::new(6, &PredictorConfig::with_mlp("8-6"), vb).unwrap())
}

#[test]
fn audio_block_two_ranks_with_sync_bn_equal_one_rank() {
    let stats = two_ranks_equal_one(block1d, &[2, 10]);
    assert_eq!(stats, 2 * 3, "bn1, bn2 and the downsample BatchNorm");
}

#[test]
fn predictor_two_ranks_with_sync_bn_equal_one_rank() {
    let stats = two_ranks_equal_one(predictor, &[6]);
    assert_eq!(stats, 2, "the hidden BatchNorm");
}

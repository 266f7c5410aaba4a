//! Synchronized BatchNorm in the ResNet: two residual blocks (one with a
//! downsample branch: 5 BatchNorms, with and without fused ReLU) on two ranks
//! (threads of a `ThreadGroup`, each with half the batch and the BatchNorm
//! sync group set) compute the outputs, input and parameter gradients and
//! running statistics of one process with the whole batch (the unsynchronized
//! fused BatchNorm path).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use encoders::resnet::ops::BatchNorm2d;
use encoders::resnet::BasicBlock;
use vicreg_core::collective::{Collective, SyncBatchNormScope, ThreadGroup};
use vicreg_core::{ParamStore, SeededRng};

const BATCH: usize = 4;
const SIZE: usize = 8;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| 0.3 + rng.normal()).collect();
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

struct RankResult {
    out: Tensor,
    x_grad: Tensor,
    grads: HashMap<String, Tensor>,
    state: HashMap<String, Tensor>,
}

fn rank_step(group: Option<Arc<dyn Collective>>, lo: usize, n: usize) -> RankResult {
    let store = ParamStore::new(11);
    let vb = store.var_builder(DType::F64, &Device::Cpu);
    let a = BasicBlock::new(3, 8, 2, false, vb.pp("a")).unwrap();
    let b = BasicBlock::new(8, 8, 1, false, vb.pp("b")).unwrap();
    let x = Var::from_tensor(&randn(&[BATCH, 3, SIZE, SIZE], 1).narrow(0, lo, n).unwrap()).unwrap();
    let _scope = SyncBatchNormScope::new(group);
    let out = b
        .forward_t(&a.forward_t(x.as_tensor(), true).unwrap(), true)
        .unwrap();
    let mut full = out.dims().to_vec();
    full[0] = BATCH;
    let w = randn(&full, 2).narrow(0, lo, n).unwrap();
    let g = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
    RankResult {
        out,
        x_grad: g.get(x.as_tensor()).unwrap().clone(),
        grads: store
            .trainable_vars()
            .into_iter()
            .map(|(k, v)| (k, g.get(v.as_tensor()).unwrap().clone()))
            .collect(),
        state: store.tensors(),
    }
}

#[test]
fn residual_blocks_two_ranks_with_sync_bn_equal_one_rank() {
    let single = rank_step(None, 0, BATCH);
    let half = BATCH / 2;
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let lo = c.rank() * half;
                rank_step(Some(Arc::new(c)), lo, half)
            })
        })
        .collect();
    let ranks: Vec<RankResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let out = Tensor::cat(&[&ranks[0].out, &ranks[1].out], 0).unwrap();
    let d = max_diff(&out, &single.out);
    assert!(d < 1e-10, "outputs differ by {d}");
    let xg = Tensor::cat(&[&ranks[0].x_grad, &ranks[1].x_grad], 0).unwrap();
    let d = max_diff(&xg, &single.x_grad);
    assert!(d < 1e-10, "input gradients differ by {d}");
    assert_eq!(
        single.grads.len(),
        5 + 5 * 2,
        "5 convolutions, 5 BatchNorms"
    );
    for (name, g) in &single.grads {
        // Each rank's loss is its rows' part of the whole batch's loss.
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
    assert_eq!(stats, 2 * 5);
}

#[test]
fn without_a_sync_group_halves_use_their_own_statistics() {
    let store = ParamStore::new(0);
    let bn = BatchNorm2d::new(3, false, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let x = randn(&[4, 3, 2, 2], 3);
    let whole = bn.forward_t(&x, true).unwrap();
    let first = bn.forward_t(&x.narrow(0, 0, 2).unwrap(), true).unwrap();
    let d = max_diff(&first, &whole.narrow(0, 0, 2).unwrap());
    assert!(
        d > 1e-3,
        "half-batch statistics should differ from the whole batch's"
    );
}

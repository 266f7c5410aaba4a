//! Synchronized BatchNorm in every network that has BatchNorms: two ResNet
//! residual blocks (one with a downsample branch: 5 BatchNorms, with and
//! without fused ReLU), a 1-D residual block of the audio encoder (3
//! BatchNorms) and the BYOL / SimSiam predictor MLP (hidden BatchNorm). On two
//! ranks (threads of a `ThreadGroup`, half the batch each, the sync group set)
//! each computes the outputs, input and parameter gradients and running
//! statistics of one process with the whole batch (the unsynchronized
//! BatchNorm paths); without the sync group the halves differ.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::VarBuilder;
use encoders::audio::BasicBlock1d;
use encoders::resnet::ops::BatchNorm2d;
use encoders::resnet::BasicBlock;
use vicreg_core::collective::{Collective, SyncBatchNormScope, ThreadGroup};
use vicreg_core::model::{Predictor, PredictorConfig};
use vicreg_core::{ParamStore, SeededRng};

const BATCH: usize = 4;

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

type Build = fn(VarBuilder) -> Box<dyn ModuleT>;

struct RankResult {
    out: Tensor,
    x_grad: Tensor,
    grads: HashMap<String, Tensor>,
    state: HashMap<String, Tensor>,
}

/// One forward/backward of the network built by `build` on rows `lo..lo + n`
/// of a fixed `(BATCH, rest...)` input, with `group` as the BatchNorm sync group.
fn rank_step(
    build: Build,
    rest: &[usize],
    group: Option<Arc<dyn Collective>>,
    lo: usize,
    n: usize,
) -> RankResult {
    let store = ParamStore::new(11);
    let net = build(store.var_builder(DType::F64, &Device::Cpu));
    let mut shape = vec![BATCH];
    shape.extend_from_slice(rest);
    let x = Var::from_tensor(&randn(&shape, 1).narrow(0, lo, n).unwrap()).unwrap();
    let _scope = SyncBatchNormScope::new(group);
    let out = net.forward_t(x.as_tensor(), true).unwrap();
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

/// Asserts that two synchronized ranks reproduce one rank on the whole batch
/// and that unsynchronized halves do not; returns (trainable tensors, running
/// statistics) compared.
fn two_ranks_equal_one(build: Build, rest: &'static [usize]) -> (usize, usize) {
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
    let xg = Tensor::cat(&[&ranks[0].x_grad, &ranks[1].x_grad], 0).unwrap();
    let d = max_diff(&xg, &single.x_grad);
    assert!(d < 1e-10, "input gradients differ by {d}");
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
    // Control: halves with their own statistics do not reproduce the batch.
    let alone = rank_step(build, rest, None, 0, half);
    let d = max_diff(&alone.out, &single.out.narrow(0, 0, half).unwrap());
    assert!(d > 1e-3, "unsynchronized halves should differ, got {d}");
    (single.grads.len(), stats)
}

/// Two residual blocks, 3 -> 8 channels (stride 2, downsample) then 8 -> 8.
fn resnet_blocks(vb: VarBuilder) -> Box<dyn ModuleT> {
    struct Two(BasicBlock, BasicBlock);
    impl ModuleT for Two {
        fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
            self.1.forward_t(&self.0.forward_t(x, train)?, train)
        }
    }
    Box::new(Two(
        BasicBlock::new(3, 8, 2, false, vb.pp("a")).unwrap(),
        BasicBlock::new(8, 8, 1, false, vb.pp("b")).unwrap(),
    ))
}

fn block1d(vb: VarBuilder) -> Box<dyn ModuleT> {
    Box::new(BasicBlock1d::new(2, 4, 2, 3, false, vb).unwrap())
}

fn predictor(vb: VarBuilder) -> Box<dyn ModuleT> {
    Box::new(Predictor::new(6, &PredictorConfig::with_mlp("8-6"), vb).unwrap())
}

#[test]
fn residual_blocks_two_ranks_with_sync_bn_equal_one_rank() {
    let (params, stats) = two_ranks_equal_one(resnet_blocks, &[3, 8, 8]);
    assert_eq!(params, 5 + 5 * 2, "5 convolutions, 5 BatchNorms");
    assert_eq!(stats, 2 * 5);
}

#[test]
fn audio_block_two_ranks_with_sync_bn_equal_one_rank() {
    let (_, stats) = two_ranks_equal_one(block1d, &[2, 10]);
    assert_eq!(stats, 2 * 3, "bn1, bn2 and the downsample BatchNorm");
}

#[test]
fn predictor_two_ranks_with_sync_bn_equal_one_rank() {
    let (_, stats) = two_ranks_equal_one(predictor, &[6]);
    assert_eq!(stats, 2, "the hidden BatchNorm");
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

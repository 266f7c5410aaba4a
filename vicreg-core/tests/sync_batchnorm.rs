//! Synchronized BatchNorm: two ranks (threads of a [`ThreadGroup`]) with half
//! batches give the outputs, gradients and running statistics of one process
//! with the whole batch; the synchronized path's gradients pass a
//! finite-difference check; without a sync group nothing is reduced.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use vicreg_core::collective::{
    all_reduce_with_grad, sync_batch_norm_composed, sync_batch_norm_train, sync_batchnorm,
    Collective, SingleProcess, SyncBatchNormScope, ThreadGroup,
};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::model::{Expander, ExpanderConfig};
use vicreg_core::{ParamStore, SeededRng};

const BATCH: usize = 8;
const IN: usize = 5;

fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    // Non-zero mean, so that the mean subtraction matters.
    let v: Vec<f64> = (0..n).map(|_| 0.7 + 1.3 * rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// What one rank computes: expander outputs for its rows, the gradient of
/// `sum(y * w)` for its input rows and for every variable, the running
/// statistics after the step.
struct RankResult {
    y: Tensor,
    x_grad: Tensor,
    grads: HashMap<String, Tensor>,
    state: HashMap<String, Tensor>,
}

fn rank_step(group: Option<Arc<dyn Collective>>, lo: usize, n: usize, dtype: DType) -> RankResult {
    let store = ParamStore::new(3);
    let cfg = ExpanderConfig::with_mlp("6-6-4");
    let exp = Expander::new(IN, &cfg, store.var_builder(dtype, &Device::Cpu)).unwrap();
    let x = Var::from_tensor(&randn(&[BATCH, IN], 1, dtype).narrow(0, lo, n).unwrap()).unwrap();
    let w = randn(&[BATCH, 4], 2, dtype).narrow(0, lo, n).unwrap();
    let _scope = SyncBatchNormScope::new(group);
    let y = exp.forward_t(x.as_tensor(), true).unwrap();
    let loss = (&y * &w).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    let grads = store
        .trainable_vars()
        .into_iter()
        .map(|(name, v)| (name, g.get(v.as_tensor()).unwrap().clone()))
        .collect();
    RankResult {
        y,
        x_grad: g.get(x.as_tensor()).unwrap().clone(),
        grads,
        state: store.tensors(),
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
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

fn two_ranks_match_one(dtype: DType, tol: f64) {
    let single = rank_step(None, 0, BATCH, dtype);
    let half = BATCH / 2;
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let lo = c.rank() * half;
                rank_step(Some(Arc::new(c)), lo, half, dtype)
            })
        })
        .collect();
    let ranks: Vec<RankResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let y = Tensor::cat(&[&ranks[0].y, &ranks[1].y], 0).unwrap();
    assert!(max_diff(&y, &single.y) < tol, "outputs differ");
    let xg = Tensor::cat(&[&ranks[0].x_grad, &ranks[1].x_grad], 0).unwrap();
    let d = max_diff(&xg, &single.x_grad);
    assert!(d < tol, "input gradients differ by {d}");
    assert!(!single.grads.is_empty());
    for (name, g) in &single.grads {
        // Each rank's parameter gradient is that of its own rows' loss; their
        // sum is the gradient of the whole batch's loss.
        let sum = (&ranks[0].grads[name] + &ranks[1].grads[name]).unwrap();
        let d = max_diff(&sum, g);
        assert!(d < tol * 10.0, "{name}: gradient differs by {d}");
    }
    let mut n_stats = 0;
    for (name, t) in &single.state {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            n_stats += 1;
            for r in &ranks {
                let d = max_diff(&r.state[name], t);
                assert!(d < tol, "{name}: running statistic differs by {d}");
            }
            // Not the initial value: the step did update it.
            let init = if name.ends_with("mean") { 0.0 } else { 1.0 };
            let moved = max_diff(t, &t.ones_like().unwrap().affine(init, 0.0).unwrap());
            assert!(moved > 1e-3, "{name} was not updated");
        }
    }
    assert_eq!(
        n_stats, 4,
        "two BatchNorms with two running statistics each"
    );
}

#[test]
fn expander_two_ranks_half_batches_equal_one_rank_f64() {
    two_ranks_match_one(DType::F64, 1e-10);
}

#[test]
fn expander_two_ranks_half_batches_equal_one_rank_f32() {
    two_ranks_match_one(DType::F32, 2e-5);
}

#[test]
fn without_a_group_ranks_normalise_locally() {
    // Same two threads, no sync group: each half is normalised by its own
    // statistics, which differ from the whole batch's.
    assert!(sync_batchnorm().is_none());
    let single = rank_step(None, 0, BATCH, DType::F64);
    let local = rank_step(None, 0, BATCH / 2, DType::F64);
    let d = max_diff(&local.y, &single.y.narrow(0, 0, BATCH / 2).unwrap());
    assert!(
        d > 1e-3,
        "local statistics should differ from the global ones"
    );
}

#[test]
fn sync_path_gradients_match_finite_differences() {
    // A 4-D (N, C, H, W) input through the synchronized path (one-rank group).
    let group: Arc<dyn Collective> = Arc::new(SingleProcess);
    let x = randn(&[3, 2, 2, 3], 5, DType::F64);
    let w = randn(&[2], 6, DType::F64);
    let b = randn(&[2], 7, DType::F64);
    let report = check_gradients(
        |xs| {
            let rm = Var::zeros(2, DType::F64, &Device::Cpu)?;
            let rv = Var::ones(2, DType::F64, &Device::Cpu)?;
            let y =
                sync_batch_norm_train(&xs[0], Some((&xs[1], &xs[2])), &rm, &rv, 1e-5, 0.1, &group)?;
            // A non-linear head so that the check is not degenerate.
            Ok(y.sqr()?.affine(0.5, 0.0)?.add(&y)?)
        },
        &[x.clone(), w, b],
        &GradCheckOptions::default(),
    )
    .unwrap();
    report.assert_ok(1e-6).unwrap();
    let report = check_gradients(
        |xs| {
            let rm = Var::zeros(2, DType::F64, &Device::Cpu)?;
            let rv = Var::ones(2, DType::F64, &Device::Cpu)?;
            let y = sync_batch_norm_composed(
                &xs[0],
                Some((&xs[1], &xs[2])),
                &rm,
                &rv,
                1e-5,
                0.1,
                &group,
            )?;
            Ok(y.sqr()?.affine(0.5, 0.0)?.add(&y)?)
        },
        &[
            x.clone(),
            randn(&[2], 6, DType::F64),
            randn(&[2], 7, DType::F64),
        ],
        &GradCheckOptions::default(),
    )
    .unwrap();
    report.assert_ok(1e-6).unwrap();

    // With a one-rank group the value is the unsynchronized BatchNorm's.
    let store = ParamStore::new(0);
    let bn = candle_nn::batch_norm(2, 1e-5, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let plain = bn.forward_t(&x, true).unwrap();
    let rm = Var::zeros(2, DType::F64, &Device::Cpu).unwrap();
    let rv = Var::ones(2, DType::F64, &Device::Cpu).unwrap();
    let (w, b) = bn.weight_and_bias().unwrap();
    let synced = sync_batch_norm_train(&x, Some((w, b)), &rm, &rv, 1e-5, 0.1, &group).unwrap();
    assert!(max_diff(&plain, &synced) < 1e-12);
    assert!(max_diff(rm.as_tensor(), bn.running_mean()) < 1e-12);
    assert!(max_diff(rv.as_tensor(), bn.running_var()) < 1e-12);
}

#[test]
fn all_reduce_with_grad_sums_values_and_gradients() {
    // Rank r holds (r + 1) * [1, 2]; loss_r = sum(reduced * (r + 1)).
    // d(loss_0 + loss_1)/dt_r = (1 + 2) for every element on both ranks.
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let k = (c.rank() + 1) as f64;
                let t = Var::new(&[k, 2.0 * k], &Device::Cpu).unwrap();
                let c: Arc<dyn Collective> = Arc::new(c);
                let red = all_reduce_with_grad(&c, t.as_tensor()).unwrap();
                let loss = (&red * k).unwrap().sum_all().unwrap();
                let g = loss.backward().unwrap();
                (
                    red.to_vec1::<f64>().unwrap(),
                    g.get(t.as_tensor()).unwrap().to_vec1::<f64>().unwrap(),
                )
            })
        })
        .collect();
    for h in handles {
        let (red, grad) = h.join().unwrap();
        assert_eq!(red, vec![3.0, 6.0]);
        assert_eq!(grad, vec![3.0, 3.0]);
    }
}

#[test]
fn cpu_op_equals_the_composed_path_on_two_ranks() {
    // Each rank runs both implementations on its half of (8, 3, 2, 2):
    // values, running statistics and the gradients of x, weight and bias agree.
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let r = c.rank();
                let group: Arc<dyn Collective> = Arc::new(c);
                let x = randn(&[8, 3, 2, 2], 8, DType::F64)
                    .narrow(0, 4 * r, 4)
                    .unwrap();
                let wy = randn(&[8, 3, 2, 2], 9, DType::F64)
                    .narrow(0, 4 * r, 4)
                    .unwrap();
                let run = |composed: bool| {
                    let x = Var::from_tensor(&x).unwrap();
                    let w = Var::from_tensor(&randn(&[3], 10, DType::F64)).unwrap();
                    let b = Var::from_tensor(&randn(&[3], 11, DType::F64)).unwrap();
                    let rm = Var::zeros(3, DType::F64, &Device::Cpu).unwrap();
                    let rv = Var::ones(3, DType::F64, &Device::Cpu).unwrap();
                    let f = if composed {
                        sync_batch_norm_composed
                    } else {
                        sync_batch_norm_train
                    };
                    let y = f(
                        x.as_tensor(),
                        Some((w.as_tensor(), b.as_tensor())),
                        &rm,
                        &rv,
                        1e-5,
                        0.1,
                        &group,
                    )
                    .unwrap();
                    let g = (&y * &wy).unwrap().sum_all().unwrap().backward().unwrap();
                    let grads: Vec<Tensor> = [&x, &w, &b]
                        .iter()
                        .map(|v| g.get(v.as_tensor()).unwrap().clone())
                        .collect();
                    (y, grads, rm.as_tensor().clone(), rv.as_tensor().clone())
                };
                let fused = run(false);
                let composed = run(true);
                assert!(max_diff(&fused.0, &composed.0) < 1e-12);
                for (a, b) in fused.1.iter().zip(&composed.1) {
                    let d = max_diff(a, b);
                    assert!(d < 1e-11, "rank {r}: gradients differ by {d}");
                }
                assert!(max_diff(&fused.2, &composed.2) < 1e-12);
                assert!(max_diff(&fused.3, &composed.3) < 1e-12);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

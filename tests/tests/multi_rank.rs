//! Distributed semantics: 2 ranks x B/2 give exactly the loss and the
//! (rank-averaged) gradients of 1 rank x B, as with the official FullGatherLayer + DDP.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use vicreg_core::collective::{Collective, SingleProcess, ThreadGroup};
use vicreg_core::loss::{EmbeddingNorm, JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::SeededRng;

const B: usize = 8;
const IN: usize = 5;
const D: usize = 12;

fn data() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut r = SeededRng::new(42);
    let mut v = |n: usize| (0..n).map(|_| r.normal()).collect::<Vec<f64>>();
    (v(B * IN), v(B * IN), v(IN * D), v(IN * D))
}

/// Loss and gradients of the two weight matrices on rows `lo..hi` of the batch.
fn rank_step(
    coll: Arc<dyn Collective>,
    lo: usize,
    hi: usize,
    cfg: VicRegConfig,
) -> (f64, Vec<f64>, Vec<f64>) {
    let dev = Device::Cpu;
    let (xa, xb, wa, wb) = data();
    let xa = Tensor::from_vec(xa, (B, IN), &dev)
        .unwrap()
        .narrow(0, lo, hi - lo)
        .unwrap();
    let xb = Tensor::from_vec(xb, (B, IN), &dev)
        .unwrap()
        .narrow(0, lo, hi - lo)
        .unwrap();
    let wa = Var::from_tensor(&Tensor::from_vec(wa, (IN, D), &dev).unwrap()).unwrap();
    let wb = Var::from_tensor(&Tensor::from_vec(wb, (IN, D), &dev).unwrap()).unwrap();
    let za = xa.matmul(wa.as_tensor()).unwrap().tanh().unwrap();
    let zb = xb.matmul(wb.as_tensor()).unwrap();
    let loss = VicRegLoss::new(cfg).unwrap();
    let out = loss.compute(&za, &zb, &coll).unwrap();
    let grads = out.total.backward().unwrap();
    let world = coll.world_size() as f64;
    let avg = |v: &Var| {
        let g = grads.get(v.as_tensor()).unwrap();
        let g = (coll.all_reduce_sum(g).unwrap() / world).unwrap();
        g.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    };
    let total = out.total.to_dtype(DType::F64).unwrap();
    let mean_loss = (coll.all_reduce_sum(&total).unwrap() / world)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    (mean_loss, avg(&wa), avg(&wb))
}

fn compare(cfg: VicRegConfig) {
    let (l1, ga1, gb1) = rank_step(Arc::new(SingleProcess), 0, B, cfg.clone());
    let ranks = ThreadGroup::new(2);
    let handles: Vec<_> = ranks
        .into_iter()
        .map(|c| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let r = c.rank();
                rank_step(Arc::new(c), r * B / 2, (r + 1) * B / 2, cfg)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (l2, ga2, gb2) in results {
        assert!((l1 - l2).abs() < 1e-12 * l1.abs(), "loss {l1} vs {l2}");
        for (a, b) in ga1.iter().zip(&ga2).chain(gb1.iter().zip(&gb2)) {
            assert!((a - b).abs() < 1e-11 * a.abs().max(1.0), "grad {a} vs {b}");
        }
    }
}

#[test]
fn two_ranks_equal_one_rank_official() {
    compare(VicRegConfig::default());
}

#[test]
fn two_ranks_equal_one_rank_paper_and_standardized() {
    compare(VicRegConfig::paper());
    compare(VicRegConfig {
        normalization: EmbeddingNorm::Standardize,
        ..VicRegConfig::default()
    });
    compare(VicRegConfig {
        normalization: EmbeddingNorm::L2,
        ..VicRegConfig::default()
    });
}

#[test]
fn gradient_of_the_gathered_slice_is_summed_over_ranks() {
    // A loss that only rank-independent gathered statistics see: each rank's
    // slice receives the sum over ranks of its gradient (world x the local one).
    let ranks = ThreadGroup::new(2);
    let handles: Vec<_> = ranks
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let c: Arc<dyn Collective> = Arc::new(c);
                let v = Var::from_tensor(
                    &Tensor::new(&[[1.0f64 + c.rank() as f64]], &Device::Cpu).unwrap(),
                )
                .unwrap();
                let g = vicreg_core::collective::gather_with_grad(&c, v.as_tensor()).unwrap();
                assert_eq!(
                    g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                    vec![1.0, 2.0]
                );
                let loss = g.sqr().unwrap().sum_all().unwrap();
                let gr = loss.backward().unwrap();
                gr.get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()[0]
            })
        })
        .collect();
    let got: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // d/dv of sum(g^2) = 2 v on each rank, summed over 2 ranks = 4 v.
    assert_eq!(got, vec![4.0, 8.0]);
}

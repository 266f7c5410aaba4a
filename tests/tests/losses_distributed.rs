//! Barlow Twins, SimCLR and negative cosine + VICReg terms on 2 ranks x B/2
//! give the loss and the rank-averaged gradients of 1 rank x B.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use vicreg_core::collective::{Collective, SingleProcess, ThreadGroup};
use vicreg_core::loss::{
    BarlowTwinsConfig, BarlowTwinsLoss, JointLoss, NegativeCosineConfig, NegativeCosineLoss,
    SimClrConfig, SimClrLoss,
};
use vicreg_core::SeededRng;

const B: usize = 8;
const IN: usize = 5;
const D: usize = 6;

fn data() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut r = SeededRng::new(42);
    let mut v = |n: usize| (0..n).map(|_| r.normal()).collect::<Vec<f64>>();
    (v(B * IN), v(B * IN), v(IN * D), v(IN * D))
}

fn make(kind: usize) -> Box<dyn JointLoss> {
    match kind {
        0 => Box::new(
            BarlowTwinsLoss::new(BarlowTwinsConfig {
                lambda: 0.3,
                eps: 1e-5,
            })
            .unwrap(),
        ),
        1 => Box::new(SimClrLoss::new(SimClrConfig { temperature: 0.5 }).unwrap()),
        _ => Box::new(
            NegativeCosineLoss::new(NegativeCosineConfig {
                stop_gradient: false,
                ..NegativeCosineConfig::with_vicreg_terms(2.0, 1.0)
            })
            .unwrap(),
        ),
    }
}

fn rank_step(
    coll: Arc<dyn Collective>,
    lo: usize,
    hi: usize,
    kind: usize,
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
    let out = make(kind).compute(&za, &zb, &coll).unwrap();
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

#[test]
fn two_ranks_equal_one_rank() {
    for kind in 0..3 {
        let name = make(kind).name();
        let (l1, ga1, gb1) = rank_step(Arc::new(SingleProcess), 0, B, kind);
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let r = c.rank();
                    rank_step(Arc::new(c), r * B / 2, (r + 1) * B / 2, kind)
                })
            })
            .collect();
        for h in handles {
            let (l2, ga2, gb2) = h.join().unwrap();
            assert!(
                (l1 - l2).abs() < 1e-12 * l1.abs(),
                "{name}: loss {l1} vs {l2}"
            );
            for (a, b) in ga1.iter().zip(&ga2).chain(gb1.iter().zip(&gb2)) {
                assert!(
                    (a - b).abs() < 1e-11 * a.abs().max(1.0),
                    "{name}: grad {a} vs {b}"
                );
            }
        }
    }
}

//! The VICRegL criterion against PyTorch golden values (a transcription of the
//! official `main_vicregl.py` loss in `scripts/golden/make-convnext-vicregl-golden.py`,
//! float64): every term and every input gradient, with feature-space matching
//! over all cells and over `num_matches`; finite-difference gradients; the
//! global criterion on two views equals VICReg with half its covariance
//! coefficient; 2 ranks x B/2 give the loss and averaged gradients of
//! 1 rank x B; input errors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::loss::{vicregl_loss, VicRegConfig, VicRegLConfig, VicRegLoss};
use vicreg_core::SeededRng;

fn golden() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vicregl_golden.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0]
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let s = b.abs().unwrap().max_all().unwrap();
    d.to_scalar::<f64>().unwrap() / s.to_scalar::<f64>().unwrap().max(1e-9)
}

fn cfg(l2_all: bool) -> VicRegLConfig {
    VicRegLConfig {
        alpha: 0.75,
        num_matches: [5, 2],
        l2_all_matches: l2_all,
        ..Default::default()
    }
}

#[test]
fn terms_and_gradients_match_the_official_code() {
    let g = golden();
    for l2_all in [true, false] {
        let p = format!("l2all{}.", l2_all as u8);
        let emb: Vec<Var> = (0..4)
            .map(|v| Var::from_tensor(&g[&format!("emb{v}")]).unwrap())
            .collect();
        let maps: Vec<Var> = (0..4)
            .map(|v| Var::from_tensor(&g[&format!("maps{v}")]).unwrap())
            .collect();
        let locs: Vec<Tensor> = (0..4).map(|v| g[&format!("loc{v}")].clone()).collect();
        let e: Vec<Tensor> = emb.iter().map(|v| v.as_tensor().clone()).collect();
        let m: Vec<Tensor> = maps.iter().map(|v| v.as_tensor().clone()).collect();
        let out = vicregl_loss(&e, &m, &locs, 2, &cfg(l2_all)).unwrap();
        let gl = out.global.as_ref().unwrap();
        let lo = out.local.as_ref().unwrap();
        for (name, got) in [
            ("global_inv", &gl.invariance),
            ("global_var", &gl.variance),
            ("global_cov", &gl.covariance),
            ("local_inv", &lo.invariance),
            ("local_var", &lo.variance),
            ("local_cov", &lo.covariance),
            ("total", &out.total),
        ] {
            let want = scalar(&g[&format!("{p}{name}")]);
            let got = scalar(got);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{p}{name}: {got} vs {want}"
            );
        }
        let grads = out.total.backward().unwrap();
        for v in 0..4 {
            for (what, var) in [("emb", &emb[v]), ("maps", &maps[v])] {
                let want = &g[&format!("{p}grad_{what}{v}")];
                let got = grads.get(var).unwrap();
                let e = max_rel(got, want);
                assert!(e < 1e-10, "{p}grad_{what}{v}: relative error {e:.2e}");
            }
        }
        let names: Vec<String> = out.scalars().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 7);
    }
}

#[test]
fn gradients_match_finite_differences() {
    let g = golden();
    let locs: Vec<Tensor> = (0..3)
        .map(|v| g[&format!("loc{}", v + 1)].clone())
        .collect();
    let mut inputs = Vec::new();
    for v in 1..4 {
        inputs.push(g[&format!("emb{v}")].clone());
    }
    for v in 1..4 {
        inputs.push(g[&format!("maps{v}")].clone());
    }
    // 1 global + 2 local views, alpha 0.5.
    let cfg = VicRegLConfig {
        alpha: 0.5,
        num_matches: [3, 2],
        ..Default::default()
    };
    let r = check_gradients(
        |xs| Ok(vicregl_loss(&xs[..3], &xs[3..], &locs, 1, &cfg)?.total),
        &inputs,
        &GradCheckOptions {
            max_coords_per_input: 20,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.has_grad.iter().all(|&h| h));
    r.assert_ok(1e-6).unwrap();
}

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|_| rng.normal() as f32).collect::<Vec<_>>(),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn two_view_global_criterion_is_vicreg() {
    let (za, zb) = (randn(1, &[16, 32]), randn(2, &[16, 32]));
    let cfg = VicRegLConfig {
        alpha: 1.0,
        ..Default::default()
    };
    let out = vicregl_loss(&[za.clone(), zb.clone()], &[], &[], 2, &cfg).unwrap();
    assert!(out.local.is_none());
    // VICRegL averages the covariance over views where VICReg sums it.
    let vicreg = VicRegLoss::new(VicRegConfig {
        cov_coeff: 0.5,
        ..VicRegConfig::official()
    })
    .unwrap()
    .terms(&za, &zb)
    .unwrap();
    let (a, b) = (scalar(&out.total), scalar(&vicreg.total));
    assert!((a - b).abs() < 1e-4 * b.abs(), "{a} vs {b}");
}

#[test]
fn bad_inputs_are_errors() {
    let cfg = VicRegLConfig::default();
    let e = randn(1, &[4, 8]);
    let m = randn(2, &[4, 9, 8]);
    let l = randn(3, &[4, 9, 2]);
    // one view only
    let one = |t: &Tensor| std::slice::from_ref(t).to_vec();
    assert!(vicregl_loss(&one(&e), &one(&m), &one(&l), 1, &cfg).is_err());
    // locations that do not fit the maps
    let bad_loc = randn(3, &[4, 4, 2]);
    let r = vicregl_loss(
        &[e.clone(), e.clone()],
        &[m.clone(), m.clone()],
        &[l.clone(), bad_loc],
        2,
        &cfg,
    );
    assert!(r.unwrap_err().to_string().contains("do not fit"));
    // a batch of one has no statistics
    let r = vicregl_loss(
        &[randn(1, &[1, 8]), randn(2, &[1, 8])],
        &[randn(3, &[1, 9, 8]), randn(4, &[1, 9, 8])],
        &[randn(5, &[1, 9, 2]), randn(6, &[1, 9, 2])],
        2,
        &cfg,
    );
    assert!(r.unwrap_err().to_string().contains("at least 2"));
    // feature maps without cells
    let r = vicregl_loss(
        &[e.clone(), e.clone()],
        &[m.clone(), randn(7, &[4, 0, 8])],
        &[l.clone(), randn(8, &[4, 0, 2])],
        2,
        &cfg,
    );
    assert!(r.unwrap_err().to_string().contains("at least one cell"));
}

/// One rank's VICRegL loss on images `lo..hi` of a fixed batch of 6, through
/// linear maps `wg` (embeddings) and `wm` (feature maps): the loss averaged
/// over ranks and the rank-averaged gradients of both maps.
fn rank_step(
    coll: std::sync::Arc<dyn vicreg_core::collective::Collective>,
    lo: usize,
    hi: usize,
) -> (f64, Vec<f64>, Vec<f64>) {
    use vicreg_core::loss::vicregl_loss_distributed;
    let g = golden();
    let n = hi - lo;
    let wg = Var::from_tensor(&(randn(7, &[16, 8]).to_dtype(DType::F64).unwrap() * 0.5).unwrap())
        .unwrap();
    let wm = Var::from_tensor(&(randn(8, &[8, 6]).to_dtype(DType::F64).unwrap() * 0.5).unwrap())
        .unwrap();
    let mut emb = Vec::new();
    let mut maps = Vec::new();
    let mut locs = Vec::new();
    for v in 0..4 {
        let e = g[&format!("emb{v}")].narrow(0, lo, n).unwrap();
        emb.push(e.matmul(wg.as_tensor()).unwrap().tanh().unwrap());
        let m = g[&format!("maps{v}")].narrow(0, lo, n).unwrap();
        let (b, c, d) = m.dims3().unwrap();
        let mm = m
            .reshape((b * c, d))
            .unwrap()
            .matmul(wm.as_tensor())
            .unwrap()
            .reshape((b, c, 6))
            .unwrap();
        maps.push(mm);
        locs.push(g[&format!("loc{v}")].narrow(0, lo, n).unwrap());
    }
    let out = vicregl_loss_distributed(&emb, &maps, &locs, 2, &cfg(true), &coll).unwrap();
    let grads = out.total.backward().unwrap();
    let world = coll.world_size() as f64;
    let avg = |v: &Var| {
        let g = grads.get(v.as_tensor()).unwrap();
        let g = (coll.all_reduce_sum(g).unwrap() / world).unwrap();
        g.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    };
    let loss = (coll.all_reduce_sum(&out.total).unwrap() / world)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    (loss, avg(&wg), avg(&wm))
}

#[test]
fn two_ranks_equal_one_rank() {
    use vicreg_core::collective::{Collective, SingleProcess, ThreadGroup};
    let (l1, g1, m1) = rank_step(std::sync::Arc::new(SingleProcess), 0, 6);
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let r = c.rank();
                rank_step(std::sync::Arc::new(c), r * 3, (r + 1) * 3)
            })
        })
        .collect();
    for h in handles {
        let (l2, g2, m2) = h.join().unwrap();
        assert!((l1 - l2).abs() < 1e-12 * l1.abs(), "loss {l1} vs {l2}");
        for (a, b) in g1.iter().zip(&g2).chain(m1.iter().zip(&m2)) {
            assert!((a - b).abs() < 1e-10 * a.abs().max(1.0), "grad {a} vs {b}");
        }
    }
}

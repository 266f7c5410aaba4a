//! BYOL / SimSiam negative cosine: hand-computed values, the packed layout,
//! stop-gradient, the added VICReg terms (D.8), gradient checks and errors.

use candle_core::{Device, Tensor, Var};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::loss::{
    covariance, variance, CosineLayout, CovarianceForm, JointLoss, NegativeCosineConfig,
    NegativeCosineLoss,
};
use vicreg_core::SeededRng;

fn single() -> std::sync::Arc<dyn vicreg_core::collective::Collective> {
    std::sync::Arc::new(vicreg_core::collective::SingleProcess)
}

fn randn(b: usize, d: usize, seed: u64) -> Tensor {
    let mut r = SeededRng::new(seed);
    let v: Vec<f64> = (0..b * d).map(|_| r.normal()).collect();
    Tensor::from_vec(v, (b, d), &Device::Cpu).unwrap()
}

fn cat3(p: &Tensor, z: &Tensor, t: &Tensor) -> Tensor {
    Tensor::cat(&[p, z, t], 1).unwrap()
}

/// `2 - 2 mean_i cos(p_i, t_i)` with loops.
fn neg_cos_ref(p: &[Vec<f64>], t: &[Vec<f64>]) -> f64 {
    let mut s = 0.0;
    for (a, b) in p.iter().zip(t) {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        s += dot / (na * nb);
    }
    2.0 - 2.0 * s / p.len() as f64
}

#[test]
fn hand_computed_example() {
    let dev = Device::Cpu;
    // Row 0: orthogonal (cos 0, D = 2); row 1: parallel (cos 1, D = 0); mean D = 1.
    let p = Tensor::new(&[[1.0f64, 0.0], [1.0, 1.0]], &dev).unwrap();
    let t = Tensor::new(&[[0.0f64, 5.0], [2.0, 2.0]], &dev).unwrap();
    let v = vicreg_core::loss::negative_cosine(&p, &t)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((v - 1.0).abs() < 1e-12, "{v}");
    // Plain layout, antiparallel views: cos -1 both ways -> 4.
    let loss = NegativeCosineLoss::named(
        NegativeCosineConfig {
            layout: CosineLayout::Plain,
            ..NegativeCosineConfig::byol()
        },
        "simsiam",
    )
    .unwrap();
    let za = Tensor::new(&[[1.0f64, 2.0], [3.0, -1.0]], &dev).unwrap();
    let v = loss
        .loss(&za, &za.neg().unwrap())
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((v - 4.0).abs() < 1e-12, "{v}");
    assert_eq!(loss.name(), "simsiam");
}

#[test]
fn packed_layout_symmetrises_prediction_against_other_target() {
    let (b, d) = (6, 4);
    let (pa, za, ta) = (randn(b, d, 1), randn(b, d, 2), randn(b, d, 3));
    let (pb, zb, tb) = (randn(b, d, 4), randn(b, d, 5), randn(b, d, 6));
    let v = |t: &Tensor| t.to_vec2::<f64>().unwrap();
    let want_cos = 0.5 * (neg_cos_ref(&v(&pa), &v(&tb)) + neg_cos_ref(&v(&pb), &v(&ta)));
    let cfg = NegativeCosineConfig::with_vicreg_terms(25.0, 1.0);
    let loss = NegativeCosineLoss::new(cfg.clone()).unwrap();
    assert_eq!(loss.name(), "byol");
    let out = loss
        .compute(&cat3(&pa, &za, &ta), &cat3(&pb, &zb, &tb), &single())
        .unwrap();
    let s = out.scalars().unwrap();
    let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "cosine",
            "variance_a",
            "variance_b",
            "covariance_a",
            "covariance_b",
            "total"
        ]
    );
    assert!(
        (s[0].1 - want_cos).abs() < 1e-12,
        "{} vs {want_cos}",
        s[0].1
    );
    // The regularisers see the projections z (not p, not t).
    let va = variance(&za, 1.0, 1e-4)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let vb = variance(&zb, 1.0, 1e-4)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let ca = covariance(&za, CovarianceForm::Dxd)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let cb = covariance(&zb, CovarianceForm::Dxd)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((s[1].1 - va).abs() < 1e-12 && (s[3].1 - ca).abs() < 1e-10);
    let want = want_cos + 25.0 * (va + vb) / 2.0 + ca + cb;
    assert!((s[5].1 - want).abs() < 1e-10 * want, "{} vs {want}", s[5].1);
    // Without the regularisers only the cosine term is reported.
    let plain = NegativeCosineLoss::new(NegativeCosineConfig::byol()).unwrap();
    let out = plain
        .compute(&cat3(&pa, &za, &ta), &cat3(&pb, &zb, &tb), &single())
        .unwrap();
    assert_eq!(out.terms.len(), 1);
    assert!((out.total.to_scalar::<f64>().unwrap() - want_cos).abs() < 1e-12);
}

#[test]
fn stop_gradient_blocks_the_target() {
    let (b, d) = (5, 3);
    let pa = Var::from_tensor(&randn(b, d, 1)).unwrap();
    let ta = Var::from_tensor(&randn(b, d, 2)).unwrap();
    let pb = Var::from_tensor(&randn(b, d, 3)).unwrap();
    let tb = Var::from_tensor(&randn(b, d, 4)).unwrap();
    let za = randn(b, d, 5);
    let zb = randn(b, d, 6);
    for sg in [true, false] {
        let loss = NegativeCosineLoss::new(NegativeCosineConfig {
            stop_gradient: sg,
            ..NegativeCosineConfig::byol()
        })
        .unwrap();
        let l = loss
            .loss(
                &cat3(pa.as_tensor(), &za, ta.as_tensor()),
                &cat3(pb.as_tensor(), &zb, tb.as_tensor()),
            )
            .unwrap();
        let g = l.backward().unwrap();
        let norm = |v: &Var| {
            g.get(v.as_tensor())
                .map(|t| {
                    t.sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f64>()
                        .unwrap()
                })
                .unwrap_or(0.0)
        };
        assert!(norm(&pa) > 1e-6 && norm(&pb) > 1e-6);
        if sg {
            assert_eq!(
                norm(&ta) + norm(&tb),
                0.0,
                "stop-gradient must block the targets"
            );
        } else {
            assert!(norm(&ta) > 1e-6 && norm(&tb) > 1e-6);
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (b, d) = (5, 3);
    // Without stop-gradient every block is differentiated.
    let loss = NegativeCosineLoss::new(NegativeCosineConfig {
        stop_gradient: false,
        ..NegativeCosineConfig::with_vicreg_terms(2.0, 1.0)
    })
    .unwrap();
    let r = check_gradients(
        |x| loss.loss(&x[0], &x[1]),
        &[randn(b, 3 * d, 1), randn(b, 3 * d, 2)],
        &GradCheckOptions::default(),
    )
    .unwrap();
    r.assert_ok(1e-5).unwrap();
    // With stop-gradient: the gradient of p and z with the targets held fixed.
    let loss = NegativeCosineLoss::new(NegativeCosineConfig::with_vicreg_terms(2.0, 1.0)).unwrap();
    let (ta, tb) = (randn(b, d, 3), randn(b, d, 4));
    let r = check_gradients(
        |x| loss.loss(&cat3(&x[0], &x[1], &ta), &cat3(&x[2], &x[3], &tb)),
        &[
            randn(b, d, 5),
            randn(b, d, 6),
            randn(b, d, 7),
            randn(b, d, 8),
        ],
        &GradCheckOptions::default(),
    )
    .unwrap();
    r.assert_ok(1e-5).unwrap();
    assert!(r.max_abs_numeric.iter().all(|&g| g > 1e-3), "{r:?}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let loss = NegativeCosineLoss::new(NegativeCosineConfig::byol()).unwrap();
    let e = loss
        .loss(&randn(4, 4, 1), &randn(4, 4, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("divisible by 3"), "{e}");
    let e = loss
        .loss(&randn(4, 6, 1), &randn(4, 3, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ in shape"), "{e}");
    let e = NegativeCosineLoss::new(NegativeCosineConfig {
        std_coeff: f64::NAN,
        ..NegativeCosineConfig::byol()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("std_coeff"), "{e}");
}

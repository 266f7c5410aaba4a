//! SimCLR / NT-Xent: hand-computed values, an f64 loop reference, gradient
//! checks and input errors.

use candle_core::{Device, Tensor};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::loss::{JointLoss, SimClrConfig, SimClrLoss};
use vicreg_core::SeededRng;

fn single() -> std::sync::Arc<dyn vicreg_core::collective::Collective> {
    std::sync::Arc::new(vicreg_core::collective::SingleProcess)
}

fn randn(b: usize, d: usize, seed: u64) -> Tensor {
    let mut r = SeededRng::new(seed);
    let v: Vec<f64> = (0..b * d).map(|_| r.normal()).collect();
    Tensor::from_vec(v, (b, d), &Device::Cpu).unwrap()
}

/// NT-Xent with loops: 2N anchors, positive = other view, 2N - 2 negatives.
fn reference(za: &[Vec<f64>], zb: &[Vec<f64>], t: f64) -> f64 {
    let n = za.len();
    let norm = |v: &Vec<f64>| {
        let s = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / s).collect::<Vec<f64>>()
    };
    let all: Vec<Vec<f64>> = za.iter().chain(zb.iter()).map(norm).collect();
    let sim = |i: usize, j: usize| all[i].iter().zip(&all[j]).map(|(a, b)| a * b).sum::<f64>() / t;
    let mut total = 0.0;
    for i in 0..2 * n {
        let pos = if i < n { i + n } else { i - n };
        let denom: f64 = (0..2 * n)
            .filter(|&k| k != i)
            .map(|k| sim(i, k).exp())
            .sum();
        total += -(sim(i, pos).exp() / denom).ln();
    }
    total / (2 * n) as f64
}

#[test]
fn hand_computed_example() {
    // Two orthogonal unit samples, identical views: each anchor has positive
    // similarity 1 and two negatives with similarity 0:
    // l = -log(e^{1/t} / (e^{1/t} + 2)) = ln(1 + 2 e^{-1/t}).
    let dev = Device::Cpu;
    let z = Tensor::new(&[[1.0f64, 0.0], [0.0, 3.0]], &dev).unwrap();
    for t in [1.0, 0.5, 0.1] {
        let loss = SimClrLoss::new(SimClrConfig { temperature: t }).unwrap();
        let v = loss.loss(&z, &z).unwrap().to_scalar::<f64>().unwrap();
        let want = (1.0 + 2.0 * (-1.0 / t).exp()).ln();
        assert!((v - want).abs() < 1e-12, "t={t}: {v} vs {want}");
    }
    assert_eq!(SimClrConfig::default().temperature, 0.1);
}

#[test]
fn matches_loop_reference() {
    for (b, d, seed, t) in [(5, 3, 1, 0.1), (8, 6, 2, 0.5), (2, 4, 3, 1.0)] {
        let za = randn(b, d, seed);
        let zb = randn(b, d, seed + 7);
        let loss = SimClrLoss::new(SimClrConfig { temperature: t }).unwrap();
        let out = loss.compute(&za, &zb, &single()).unwrap();
        let s = out.scalars().unwrap();
        let want = reference(&za.to_vec2().unwrap(), &zb.to_vec2().unwrap(), t);
        assert_eq!(s[0].0, "nt_xent");
        assert!(
            (s[0].1 - want).abs() < 1e-10 * want,
            "{b}x{d}: {} vs {want}",
            s[0].1
        );
        assert!((s.last().unwrap().1 - want).abs() < 1e-10 * want);
        assert!(s[1].0 == "pos_cosine" && s[1].1.abs() <= 1.0);
    }
}

#[test]
fn temperature_sharpens_and_aligned_views_score_lower() {
    let za = randn(16, 8, 5);
    let close = (randn(16, 8, 6) * 0.05 + &za).unwrap();
    let far = randn(16, 8, 7);
    let loss = SimClrLoss::new(SimClrConfig::default()).unwrap();
    let lc = loss.loss(&za, &close).unwrap().to_scalar::<f64>().unwrap();
    let lf = loss.loss(&za, &far).unwrap().to_scalar::<f64>().unwrap();
    assert!(lc < 0.5 && lf > 5.0, "aligned {lc} vs unrelated {lf}");
}

#[test]
fn gradients_match_finite_differences() {
    for (b, d, seed, t) in [(4, 3, 11, 0.5), (3, 5, 12, 0.1)] {
        let loss = SimClrLoss::new(SimClrConfig { temperature: t }).unwrap();
        let r = check_gradients(
            |x| loss.loss(&x[0], &x[1]),
            &[randn(b, d, seed), randn(b, d, seed + 1)],
            &GradCheckOptions::default(),
        )
        .unwrap();
        r.assert_ok(1e-5).unwrap();
        assert!(r.max_abs_numeric.iter().all(|&g| g > 1e-3), "{r:?}");
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let loss = SimClrLoss::new(SimClrConfig::default()).unwrap();
    let e = loss
        .loss(&randn(4, 3, 1), &randn(5, 3, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("simclr") && e.contains("differ in shape"), "{e}");
    let e = loss
        .loss(&randn(1, 3, 1), &randn(1, 3, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 2"), "{e}");
    let e = SimClrLoss::new(SimClrConfig { temperature: 0.0 })
        .unwrap_err()
        .to_string();
    assert!(e.contains("temperature"), "{e}");
    let inf = Tensor::new(&[[f64::INFINITY, 1.0], [0.0, 1.0]], &Device::Cpu).unwrap();
    assert!(loss.loss(&inf, &randn(2, 2, 1)).is_err());
}

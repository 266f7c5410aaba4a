//! Barlow Twins: a hand-computed example, an f64 loop reference (both the
//! `D x D` and the Gram formula), gradient checks and input errors.

use candle_core::{Device, Tensor};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::loss::{BarlowTwinsConfig, BarlowTwinsLoss, JointLoss};
use vicreg_core::SeededRng;

fn single() -> std::sync::Arc<dyn vicreg_core::collective::Collective> {
    std::sync::Arc::new(vicreg_core::collective::SingleProcess)
}

fn randn(b: usize, d: usize, seed: u64) -> Tensor {
    let mut r = SeededRng::new(seed);
    let v: Vec<f64> = (0..b * d).map(|_| r.normal()).collect();
    Tensor::from_vec(v, (b, d), &Device::Cpu).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_vec2::<f64>().unwrap()
}

/// The official formula with explicit loops: BN (biased variance), C = na^T nb / N.
#[allow(clippy::needless_range_loop)]
fn reference(za: &[Vec<f64>], zb: &[Vec<f64>], eps: f64) -> (f64, f64) {
    let n = za.len();
    let d = za[0].len();
    let standardize = |z: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let mut out = vec![vec![0.0; d]; n];
        for j in 0..d {
            let mean = z.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            let var = z.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n as f64;
            for i in 0..n {
                out[i][j] = (z[i][j] - mean) / (var + eps).sqrt();
            }
        }
        out
    };
    let (a, b) = (standardize(za), standardize(zb));
    let (mut on, mut off) = (0.0, 0.0);
    for i in 0..d {
        for j in 0..d {
            let c = (0..n).map(|k| a[k][i] * b[k][j]).sum::<f64>() / n as f64;
            if i == j {
                on += (1.0 - c).powi(2);
            } else {
                off += c * c;
            }
        }
    }
    (on, off)
}

#[test]
fn hand_computed_example() {
    // Standardised (eps ~ 0): za -> [[1, 1], [-1, -1]], zb -> [[1, -1], [-1, 1]].
    // C = [[1, -1], [1, -1]]: on_diag = 0 + 2^2 = 4, off_diag = 1 + 1 = 2.
    let dev = Device::Cpu;
    let za = Tensor::new(&[[1.0f64, 2.0], [-1.0, -2.0]], &dev).unwrap();
    let zb = Tensor::new(&[[3.0f64, -1.0], [1.0, 1.0]], &dev).unwrap();
    let loss = BarlowTwinsLoss::new(BarlowTwinsConfig {
        lambda: 0.0051,
        eps: 1e-14,
    })
    .unwrap();
    let (on, off, total) = loss.terms(&za, &zb).unwrap();
    assert!((on.to_scalar::<f64>().unwrap() - 4.0).abs() < 1e-9);
    assert!((off.to_scalar::<f64>().unwrap() - 2.0).abs() < 1e-9);
    assert!((total.to_scalar::<f64>().unwrap() - (4.0 + 0.0051 * 2.0)).abs() < 1e-9);
    assert_eq!(loss.name(), "barlow-twins");
    assert_eq!(BarlowTwinsConfig::default().lambda, 0.0051);
}

#[test]
fn matches_loop_reference_both_formulas() {
    // (12, 5): D x D formula; (4, 9): Gram formula (N < D).
    for (b, d, seed) in [(12, 5, 1), (4, 9, 2)] {
        let za = randn(b, d, seed);
        let zb = (randn(b, d, seed + 10) * 0.5 + &za).unwrap();
        let cfg = BarlowTwinsConfig::default();
        let (on_ref, off_ref) = reference(&rows(&za), &rows(&zb), cfg.eps);
        let loss = BarlowTwinsLoss::new(cfg.clone()).unwrap();
        let out = loss.compute(&za, &zb, &single()).unwrap();
        let s = out.scalars().unwrap();
        assert_eq!(s[0].0, "on_diag");
        assert_eq!(s[1].0, "off_diag");
        assert!(
            (s[0].1 - on_ref).abs() < 1e-10 * on_ref.max(1.0),
            "{b}x{d} on_diag {} vs {on_ref}",
            s[0].1
        );
        assert!(
            (s[1].1 - off_ref).abs() < 1e-10 * off_ref.max(1.0),
            "{b}x{d} off_diag {} vs {off_ref}",
            s[1].1
        );
        let t_ref = on_ref + cfg.lambda * off_ref;
        assert!((s[2].1 - t_ref).abs() < 1e-10 * t_ref.max(1.0));
        // f32 gives the same value to single precision.
        let (_, _, t32) = loss
            .terms(
                &za.to_dtype(candle_core::DType::F32).unwrap(),
                &zb.to_dtype(candle_core::DType::F32).unwrap(),
            )
            .unwrap();
        assert!((t32.to_scalar::<f32>().unwrap() as f64 - t_ref).abs() < 1e-4 * t_ref.max(1.0));
    }
}

#[test]
fn gradients_match_finite_differences() {
    for (b, d, seed) in [(7, 4, 3), (3, 6, 4)] {
        let za = randn(b, d, seed);
        let zb = randn(b, d, seed + 1);
        // A large lambda so that the off-diagonal term's gradient is not negligible.
        let loss = BarlowTwinsLoss::new(BarlowTwinsConfig {
            lambda: 0.5,
            eps: 1e-5,
        })
        .unwrap();
        let r = check_gradients(
            |t| Ok(loss.terms(&t[0], &t[1])?.2),
            &[za, zb],
            &GradCheckOptions::default(),
        )
        .unwrap();
        r.assert_ok(1e-5).unwrap();
        assert!(r.max_abs_numeric.iter().all(|&g| g > 1e-3), "{r:?}");
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let loss = BarlowTwinsLoss::new(BarlowTwinsConfig::default()).unwrap();
    let e = loss
        .terms(&randn(4, 3, 1), &randn(4, 2, 1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("barlow-twins") && e.contains("differ in shape"),
        "{e}"
    );
    let e = loss
        .terms(&randn(1, 3, 1), &randn(1, 3, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 2"), "{e}");
    let nan = Tensor::new(&[[f64::NAN, 1.0], [0.0, 1.0]], &Device::Cpu).unwrap();
    let e = loss.terms(&nan, &randn(2, 2, 1)).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    let e = BarlowTwinsLoss::new(BarlowTwinsConfig {
        lambda: -1.0,
        eps: 1e-5,
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("lambda"), "{e}");
}

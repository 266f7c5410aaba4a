//! The linear custom op: finite-difference gradient checks (f64) and equality
//! with candle's `x.matmul(&w.t()) + b` (f32), forward and gradients.

use candle_core::{DType, Device, Tensor, Var};
use encoders::ops::linear;
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::SeededRng;

fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let s = b.abs().unwrap().max_all().unwrap();
    d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap().max(1e-6)
}

#[test]
fn gradients_match_finite_differences() {
    let x = randn(1, &[5, 7], DType::F64);
    let w = randn(2, &[3, 7], DType::F64);
    let b = randn(3, &[3], DType::F64);
    let opts = GradCheckOptions::default();
    let r = check_gradients(
        |xs| Ok(linear(&xs[0], &xs[1], Some(&xs[2]))?),
        &[x, w, b],
        &opts,
    )
    .unwrap();
    assert!(r.has_grad.iter().all(|&h| h), "missing gradient");
    r.assert_ok(1e-6).unwrap();
}

#[test]
fn forward_and_gradients_match_candle_matmul_in_f32() {
    for (i, (n, inp, out)) in [(16, 64, 32), (3, 5, 130), (32, 257, 9)]
        .into_iter()
        .enumerate()
    {
        let s = 10 * i as u64;
        let x = Var::from_tensor(&randn(s, &[n, inp], DType::F32)).unwrap();
        let w = Var::from_tensor(&randn(s + 1, &[out, inp], DType::F32)).unwrap();
        let b = Var::from_tensor(&randn(s + 2, &[out], DType::F32)).unwrap();
        let y = linear(&x, &w, Some(&b)).unwrap();
        let y_ref = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(max_rel_diff(&y, &y_ref) < 1e-5, "case {i}: forward differs");
        let proj = randn(s + 3, &[n, out], DType::F32);
        let g = (&y * &proj).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
            let e = max_rel_diff(g.get(v).unwrap(), g_ref.get(v).unwrap());
            assert!(e < 1e-5, "case {i}: gradient of {name} differs by {e:e}");
        }
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = randn(1, &[4, 5], DType::F32);
    let e = linear(&x, &randn(2, &[3, 6], DType::F32), None).unwrap_err();
    assert!(e.to_string().contains("do not fit"), "{e}");
    let e = linear(
        &x.unsqueeze(0).unwrap(),
        &randn(2, &[3, 5], DType::F32),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("2-D"), "{e}");
    let e = linear(&x, &randn(2, &[3, 5], DType::F64), None).unwrap_err();
    assert!(e.to_string().contains("one dtype"), "{e}");
}

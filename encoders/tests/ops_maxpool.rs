//! The max-pool custom op: finite-difference gradient checks (f64), forward
//! and gradient equality with the exact op-chain pool of `resnet::pool`
//! (f32, tie-free random inputs), PyTorch's tie rule, and clear errors.

use candle_core::{DType, Device, Tensor, Var};
use encoders::ops::max_pool2d;
use encoders::resnet::pool;
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

// (kernel, stride, padding, input shape): the ResNet stem pool on odd and
// even sizes, kernel == stride, no padding.
const CASES: [(usize, usize, usize, [usize; 4]); 5] = [
    (3, 2, 1, [2, 3, 7, 7]),
    (3, 2, 1, [2, 2, 8, 6]),
    (2, 2, 0, [1, 3, 6, 6]),
    (3, 1, 1, [2, 2, 5, 4]),
    (3, 3, 0, [1, 2, 7, 10]),
];

#[test]
fn gradients_match_finite_differences() {
    let opts = GradCheckOptions {
        max_coords_per_input: 60,
        ..Default::default()
    };
    for (i, (k, s, p, shape)) in CASES.into_iter().enumerate() {
        let x = randn(40 + i as u64, &shape, DType::F64);
        let r = check_gradients(|xs| Ok(max_pool2d(&xs[0], k, s, p)?), &[x], &opts).unwrap();
        assert!(r.has_grad[0], "case {i}: no gradient");
        r.assert_ok(1e-6)
            .unwrap_or_else(|e| panic!("case {i} k{k} s{s} p{p} on {shape:?}: {e}"));
    }
}

#[test]
fn forward_and_gradient_match_the_op_chain_pool_in_f32() {
    for (i, (k, s, p, shape)) in CASES.into_iter().enumerate() {
        let x = Var::from_tensor(&randn(50 + i as u64, &shape, DType::F32)).unwrap();
        let y = max_pool2d(&x, k, s, p).unwrap();
        let y_ref = pool::max_pool2d(&x, k, s, p).unwrap();
        assert_eq!(y.dims(), y_ref.dims(), "case {i}");
        assert_eq!(max_abs_diff(&y, &y_ref), 0.0, "case {i}: forward differs");
        let proj = randn(500 + i as u64, y.dims(), DType::F32);
        let g = (&y * &proj).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let e = max_abs_diff(g.get(&x).unwrap(), g_ref.get(&x).unwrap());
        assert!(e < 1e-6, "case {i}: gradient differs by {e:e}");
    }
}

#[test]
fn stem_pool_shape_and_ties_go_to_the_first_maximum() {
    // torchvision's stem pool on a 48x48 map gives 24x24.
    let x = Tensor::zeros((1, 1, 48, 48), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(max_pool2d(&x, 3, 2, 1).unwrap().dims(), &[1, 1, 24, 24]);
    // A constant 2x2 input, one 2x2 window: the whole gradient goes to (0, 0).
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let g = max_pool2d(&x, 2, 2, 0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let dx = g
        .get(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(dx, vec![1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = randn(1, &[2, 3, 5, 5], DType::F32);
    let e = max_pool2d(&x.flatten_from(2).unwrap(), 3, 2, 1).unwrap_err();
    assert!(e.to_string().contains("(N, C, H, W)"), "{e}");
    let e = max_pool2d(&x, 3, 0, 1).unwrap_err();
    assert!(e.to_string().contains("stride"), "{e}");
    let e = max_pool2d(&x, 3, 2, 2).unwrap_err();
    assert!(e.to_string().contains("at most half the kernel"), "{e}");
    let e = max_pool2d(&x, 9, 1, 0).unwrap_err();
    assert!(e.to_string().contains("smaller than the kernel"), "{e}");
    let e = max_pool2d(&x.to_dtype(DType::BF16).unwrap(), 3, 2, 1).unwrap_err();
    assert!(e.to_string().contains("f32/f64"), "{e}");
}

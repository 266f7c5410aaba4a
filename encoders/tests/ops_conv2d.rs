//! The GEMM conv2d custom op: finite-difference gradient checks (f64) for
//! every convolution configuration the 2-D and 1-D ResNets use, forward and
//! gradient equality with candle's stock conv2d (f32, including inputs large
//! enough to be split into several image chunks), the no-input-gradient mode,
//! and clear errors on bad shapes.

use candle_core::{DType, Device, Tensor, Var};
use encoders::ops::{conv2d_gemm, Conv2dParams, COL_BUDGET};
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
fn gradients_match_finite_differences_for_all_resnet_configurations() {
    // ((kh, kw), (sh, sw), (ph, pw), input shape)
    let cases = [
        ((7, 7), (2, 2), (3, 3), [2, 2, 9, 9]),
        ((7, 7), (2, 2), (3, 3), [1, 2, 10, 8]),
        ((3, 3), (1, 1), (1, 1), [2, 3, 5, 5]),
        ((3, 3), (2, 2), (1, 1), [2, 3, 5, 5]),
        ((3, 3), (2, 2), (1, 1), [2, 3, 6, 6]),
        ((1, 1), (1, 1), (0, 0), [2, 3, 4, 4]),
        ((1, 1), (2, 2), (0, 0), [2, 3, 6, 6]),
        ((1, 1), (2, 2), (0, 0), [2, 3, 5, 7]),
        // 1-D ResNet on height-1 inputs: stem 1x7 s2 p3, 1x3 s1/s2 p1, 1x1 s2, unpadded 1x5 s3.
        ((1, 7), (1, 2), (0, 3), [2, 2, 1, 15]),
        ((1, 3), (1, 1), (0, 1), [2, 3, 1, 8]),
        ((1, 3), (1, 2), (0, 1), [2, 3, 1, 9]),
        ((1, 1), (1, 2), (0, 0), [2, 3, 1, 9]),
        ((1, 5), (1, 3), (0, 0), [2, 2, 1, 13]),
    ];
    let opts = GradCheckOptions {
        max_coords_per_input: 40,
        ..Default::default()
    };
    for (i, (k, s, p, shape)) in cases.into_iter().enumerate() {
        let x = randn(10 + i as u64, &shape, DType::F64);
        let w = randn(100 + i as u64, &[4, shape[1], k.0, k.1], DType::F64);
        let params = Conv2dParams {
            stride: s,
            padding: p,
        };
        let r = check_gradients(
            |xs| Ok(conv2d_gemm(&xs[0], &xs[1], params, true)?),
            &[x, w],
            &opts,
        )
        .unwrap();
        assert!(r.has_grad.iter().all(|&h| h), "case {i}: missing gradient");
        assert!(
            r.max_abs_numeric.iter().all(|&m| m > 1e-3),
            "case {i}: trivial check"
        );
        r.assert_ok(1e-6)
            .unwrap_or_else(|e| panic!("case {i} {k:?} s{s:?} p{p:?} on {shape:?}: {e}"));
    }
}

#[test]
fn forward_and_gradients_match_stock_conv2d_in_f32() {
    // (kernel, stride, padding, input shape, out channels); the first case
    // needs several chunks of images (147 * 64 * 64 columns per image).
    let cases = [
        (7, 2, 3, [8, 3, 128, 128], 8),
        (3, 1, 1, [4, 16, 12, 12], 32),
        (3, 2, 1, [3, 8, 9, 9], 16),
        (1, 2, 0, [3, 8, 10, 10], 16),
        (1, 1, 0, [2, 32, 5, 5], 8),
    ];
    const { assert!(3 * 49 * 64 * 64 * 8 > COL_BUDGET) };
    for (i, (k, s, p, shape, o)) in cases.into_iter().enumerate() {
        let x = Var::from_tensor(&randn(30 + i as u64, &shape, DType::F32)).unwrap();
        let w = Var::from_tensor(&randn(300 + i as u64, &[o, shape[1], k, k], DType::F32)).unwrap();
        let y = conv2d_gemm(&x, &w, Conv2dParams::square(s, p), true).unwrap();
        let y_ref = x.conv2d(&w, p, s, 1, 1).unwrap();
        assert_eq!(y.dims(), y_ref.dims());
        let e = max_rel_diff(&y, &y_ref);
        assert!(e < 1e-5, "case {i}: forward differs by {e:e}");

        let proj = randn(3000 + i as u64, y.dims(), DType::F32);
        let g = (&y * &proj).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in [("x", &x), ("w", &w)] {
            let (a, b) = (g.get(v).unwrap(), g_ref.get(v).unwrap());
            let e = max_rel_diff(a, b);
            assert!(e < 1e-4, "case {i}: gradient of {name} differs by {e:e}");
        }
    }
}

#[test]
fn no_input_grad_mode_skips_only_the_input_gradient() {
    let x = Var::from_tensor(&randn(1, &[2, 3, 9, 9], DType::F64)).unwrap();
    let w = Var::from_tensor(&randn(2, &[4, 3, 7, 7], DType::F64)).unwrap();
    let params = Conv2dParams::square(2, 3);
    let y = conv2d_gemm(&x, &w, params, false).unwrap();
    let y_full = conv2d_gemm(&x, &w, params, true).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let g_full = y_full.sum_all().unwrap().backward().unwrap();
    assert!(g.get(&x).is_none(), "the input got a gradient");
    let d = (g.get(&w).unwrap() - g_full.get(&w).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(d, 0.0);
    assert!(g_full.get(&x).is_some());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let x = randn(1, &[2, 3, 5, 5], DType::F32);
    let w = randn(2, &[4, 2, 3, 3], DType::F32);
    let e = conv2d_gemm(&x, &w, Conv2dParams::square(1, 1), true).unwrap_err();
    assert!(e.to_string().contains("channels"), "{e}");
    let w = randn(2, &[4, 3, 7, 7], DType::F32);
    let e = conv2d_gemm(&x, &w, Conv2dParams::square(1, 0), true).unwrap_err();
    assert!(e.to_string().contains("smaller than the kernel"), "{e}");
    let w64 = randn(2, &[4, 3, 3, 3], DType::F64);
    assert!(conv2d_gemm(&x, &w64, Conv2dParams::square(1, 1), true).is_err());
    let xb = x.to_dtype(DType::BF16).unwrap();
    let wb = w64.to_dtype(DType::BF16).unwrap();
    assert!(conv2d_gemm(&xb, &wb, Conv2dParams::square(1, 1), true).is_err());
}

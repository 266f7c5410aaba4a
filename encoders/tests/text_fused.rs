//! The fused CPU kernels (layer norm, exact GELU, softmax) against finite
//! differences (F64) and against the composed candle ops they replace
//! (values and gradients, F32 and F64, contiguous or not).

use candle_core::{DType, Device, Tensor, Var, D};
use encoders::text::fused::{fused_available, gelu_fused, layer_norm_fused, softmax_last_dim};
use encoders::text::{gelu_composite, layer_norm, layer_norm_composite};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::SeededRng;

fn randn(shape: &[usize], std: f64, seed: u64, dtype: DType) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| std * rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn opts() -> GradCheckOptions {
    GradCheckOptions {
        max_coords_per_input: 64,
        ..Default::default()
    }
}

#[test]
fn fused_kernels_pass_gradient_checks() {
    let x = randn(&[3, 4, 6], 1.5, 1, DType::F64);
    let w = (randn(&[6], 0.3, 2, DType::F64) + 1.0).unwrap();
    let b = randn(&[6], 0.3, 3, DType::F64);
    let rep = check_gradients(
        |t| Ok(layer_norm_fused(&t[0], &t[1], &t[2], 1e-5)?),
        &[x.clone(), w, b],
        &opts(),
    )
    .unwrap();
    println!("fused layer norm: {:?}", rep.max_rel_error);
    rep.assert_ok(1e-6).unwrap();

    let rep = check_gradients(
        |t| Ok(gelu_fused(&t[0])?),
        std::slice::from_ref(&x),
        &opts(),
    )
    .unwrap();
    println!("fused gelu: {:?}", rep.max_rel_error);
    rep.assert_ok(1e-6).unwrap();

    // Softmax rows with a masked (-1e9) entry, as in attention.
    let mask = Tensor::new(&[0f64, 0., 0., 0., -1e9, 0.], &Device::Cpu).unwrap();
    let rep = check_gradients(
        |t| Ok(softmax_last_dim(&t[0].broadcast_add(&mask)?)?),
        &[x],
        &opts(),
    )
    .unwrap();
    println!("fused softmax: {:?}", rep.max_rel_error);
    rep.assert_ok(1e-6).unwrap();
}

#[test]
fn composed_versions_pass_gradient_checks() {
    let x = randn(&[3, 5], 1.2, 4, DType::F64);
    let w = (randn(&[5], 0.3, 5, DType::F64) + 1.0).unwrap();
    let b = randn(&[5], 0.3, 6, DType::F64);
    check_gradients(
        |t| Ok(layer_norm_composite(&t[0], &t[1], &t[2], 1e-5)?),
        &[x.clone(), w, b],
        &opts(),
    )
    .unwrap()
    .assert_ok(1e-5)
    .unwrap();
    check_gradients(
        |t| Ok(gelu_composite(&t[0])?),
        std::slice::from_ref(&x),
        &opts(),
    )
    .unwrap()
    .assert_ok(1e-5)
    .unwrap();
    check_gradients(
        |t| Ok(candle_nn::ops::softmax(&t[0], D::Minus1)?),
        &[x],
        &opts(),
    )
    .unwrap()
    .assert_ok(1e-5)
    .unwrap();
}

/// Values and gradients of `fused` and `composed` on the same inputs.
fn compare(
    name: &str,
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
    tol: f64,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts);
        let w = randn(y.dims(), 1.0, 9, y.dtype());
        let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Tensor> = vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().clone())
            .collect();
        (y, g)
    };
    let (yf, gf) = run(&fused);
    let (yc, gc) = run(&composed);
    let dy = max_abs(&yf, &yc);
    assert!(dy <= tol, "{name}: values differ by {dy}");
    for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
        let d = max_abs(a, b);
        assert!(d <= tol * 10.0, "{name}: gradient {i} differs by {d}");
    }
}

#[test]
fn fused_kernels_match_the_composed_ops() {
    for (dtype, tol) in [(DType::F32, 2e-6), (DType::F64, 1e-12)] {
        let x = randn(&[4, 7, 32], 2.0, 10, dtype);
        let xt = x.transpose(0, 1).unwrap(); // non-contiguous input
        let w = (randn(&[32], 0.5, 11, dtype) + 1.0).unwrap();
        let b = randn(&[32], 0.5, 12, dtype);
        for (label, input) in [("contiguous", &x), ("transposed", &xt)] {
            let ins = [input.clone(), w.clone(), b.clone()];
            compare(
                &format!("layer norm {dtype:?} {label}"),
                &ins,
                |t| layer_norm_fused(&t[0], &t[1], &t[2], 1e-12).unwrap(),
                |t| layer_norm_composite(&t[0], &t[1], &t[2], 1e-12).unwrap(),
                tol,
            );
            compare(
                &format!("gelu {dtype:?} {label}"),
                &ins[..1],
                |t| gelu_fused(&t[0]).unwrap(),
                |t| gelu_composite(&t[0]).unwrap(),
                tol,
            );
            compare(
                &format!("softmax {dtype:?} {label}"),
                &ins[..1],
                |t| softmax_last_dim(&t[0]).unwrap(),
                |t| candle_nn::ops::softmax(&t[0], D::Minus1).unwrap(),
                tol,
            );
        }
    }
}

#[test]
fn other_dtypes_fall_back_to_the_composed_ops() {
    let x = randn(&[2, 8], 1.0, 13, DType::BF16);
    let w = Tensor::ones(8, DType::BF16, &Device::Cpu).unwrap();
    let b = Tensor::zeros(8, DType::BF16, &Device::Cpu).unwrap();
    assert!(!fused_available(&[&x]));
    assert!(fused_available(&[&x.to_dtype(DType::F32).unwrap()]));
    assert!(!fused_available(&[
        &x.to_dtype(DType::F32).unwrap(),
        &x.to_dtype(DType::F64).unwrap()
    ]));
    let y = layer_norm(&x, &w, &b, 1e-5).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let want = layer_norm(
        &x.to_dtype(DType::F32).unwrap(),
        &w.to_dtype(DType::F32).unwrap(),
        &b.to_dtype(DType::F32).unwrap(),
        1e-5,
    )
    .unwrap();
    assert!(max_abs(&y, &want) < 0.05);
    // Wrong-sized weight: an error, not a panic.
    let w5 = Tensor::ones(5, DType::F32, &Device::Cpu).unwrap();
    let x32 = x.to_dtype(DType::F32).unwrap();
    assert!(layer_norm_fused(&x32, &w5, &w5, 1e-5).is_err());
}

//! The VICReg loss against PyTorch values (shared/golden/loss_reference.json),
//! in float32 and float64, every term, the total and both gradients, on
//! the device named by `VICREG_TEST_DEVICE` (default `cpu`; e.g. `cuda:0`
//! with a binary built with `--features vicreg-core/cuda`).

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use vicreg_core::loss::{covariance, CovarianceForm, VicRegConfig, VicRegLoss};
use vicreg_tests::golden;

/// The device the checks run on: `VICREG_TEST_DEVICE` (`cpu` or `cuda:N`;
/// default `cpu`), opened once so that every tensor shares it.
fn test_device() -> Device {
    static DEV: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEV.get_or_init(|| {
        let name = std::env::var("VICREG_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
        vicreg_core::parse_device(&name)
            .unwrap_or_else(|e| panic!("VICREG_TEST_DEVICE={name:?}: {e}"))
    })
    .clone()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn tensor(m: &[Vec<f64>], dtype: DType) -> Tensor {
    let (b, d) = (m.len(), m[0].len());
    let flat: Vec<f64> = m.iter().flatten().cloned().collect();
    Tensor::from_vec(flat, (b, d), &test_device())
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn close(got: f64, want: f64, atol: f64, rtol: f64) -> bool {
    (got - want).abs() <= atol + rtol * want.abs()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn check_case(case: &Value, dtype: DType, form: CovarianceForm) {
    let name = case["name"].as_str().unwrap();
    let (key, s_atol, s_rtol, g_atol) = match dtype {
        DType::F32 => ("float32", 1e-6, 1e-5, 1e-5),
        _ => ("float64", 1e-12, 1e-10, 1e-10),
    };
    let want = &case[key];
    let x = Var::from_tensor(&tensor(&matrix(&case["x"]), dtype)).unwrap();
    let y = Var::from_tensor(&tensor(&matrix(&case["y"]), dtype)).unwrap();
    let cfg = VicRegConfig {
        covariance_form: form,
        ..VicRegConfig::default()
    };
    let loss = VicRegLoss::new(cfg).unwrap();
    let t = loss.terms(x.as_tensor(), y.as_tensor()).unwrap();
    let variance = 0.5 * (scalar(&t.variance[0]) + scalar(&t.variance[1]));
    let covariance = scalar(&t.covariance[0]) + scalar(&t.covariance[1]);
    for (term, got) in [
        ("invariance", scalar(&t.invariance)),
        ("variance", variance),
        ("covariance", covariance),
        ("total", scalar(&t.total)),
    ] {
        let w = want[term].as_f64().unwrap();
        assert!(
            close(got, w, s_atol, s_rtol),
            "{name} {key} {form:?}: {term} = {got}, want {w}"
        );
    }
    // Unbiased variance: must NOT equal the biased-variance variant.
    let biased = case["float64_biased_variance_variant"]["variance"]
        .as_f64()
        .unwrap();
    assert!((variance - biased).abs() > 1e-6 || variance == 0.0);
    let grads = t.total.backward().unwrap();
    for (var, gkey) in [(&x, "grad_x"), (&y, "grad_y")] {
        let got = flat(grads.get(var.as_tensor()).unwrap());
        let w: Vec<f64> = matrix(&want[gkey]).into_iter().flatten().collect();
        for (i, (g, e)) in got.iter().zip(&w).enumerate() {
            assert!(
                close(*g, *e, g_atol, 0.0),
                "{name} {key} {form:?}: {gkey}[{i}] = {g}, want {e}"
            );
        }
    }
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(golden("loss_reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

#[test]
fn matches_pytorch_float32_both_covariance_forms() {
    for case in cases() {
        for form in [
            CovarianceForm::Dxd,
            CovarianceForm::Gram,
            CovarianceForm::Auto,
        ] {
            check_case(&case, DType::F32, form);
        }
    }
}

#[test]
fn matches_pytorch_float64_both_covariance_forms() {
    for case in cases() {
        for form in [CovarianceForm::Dxd, CovarianceForm::Gram] {
            check_case(&case, DType::F64, form);
        }
    }
}

#[test]
fn gram_and_dxd_forms_agree_in_value_and_gradient_when_batch_below_dim() {
    let mut rng = vicreg_core::SeededRng::new(11);
    let (b, d) = (6, 40);
    let vals: Vec<f64> = (0..b * d).map(|_| rng.normal()).collect();
    let z = Var::from_tensor(&Tensor::from_vec(vals, (b, d), &test_device()).unwrap()).unwrap();
    let c1 = covariance(z.as_tensor(), CovarianceForm::Dxd).unwrap();
    let c2 = covariance(z.as_tensor(), CovarianceForm::Gram).unwrap();
    assert!((scalar(&c1) - scalar(&c2)).abs() < 1e-10 * scalar(&c1).abs());
    let g1 = flat(c1.backward().unwrap().get(z.as_tensor()).unwrap());
    let g2 = flat(c2.backward().unwrap().get(z.as_tensor()).unwrap());
    for (a, b) in g1.iter().zip(&g2) {
        assert!((a - b).abs() < 1e-10, "{a} vs {b}");
    }
}

#[test]
fn paper_convention_sums_the_variance_terms() {
    let case = &cases()[1];
    let x = tensor(&matrix(&case["x"]), DType::F64);
    let y = tensor(&matrix(&case["y"]), DType::F64);
    let off = VicRegLoss::new(VicRegConfig::official())
        .unwrap()
        .terms(&x, &y)
        .unwrap();
    let pap = VicRegLoss::new(VicRegConfig::paper())
        .unwrap()
        .terms(&x, &y)
        .unwrap();
    let v = scalar(&off.variance[0]) + scalar(&off.variance[1]);
    assert!((scalar(&pap.total) - scalar(&off.total) - 12.5 * v).abs() < 1e-9);
}

#[test]
fn per_branch_coefficients_weight_each_branch() {
    let case = &cases()[1];
    let x = tensor(&matrix(&case["x"]), DType::F64);
    let y = tensor(&matrix(&case["y"]), DType::F64);
    let cfg = VicRegConfig {
        std_coeff_b: Some(5.0),
        cov_coeff_b: Some(3.0),
        ..VicRegConfig::default()
    };
    let t = VicRegLoss::new(cfg).unwrap().terms(&x, &y).unwrap();
    let want = 25.0 * scalar(&t.invariance)
        + 12.5 * scalar(&t.variance[0])
        + 2.5 * scalar(&t.variance[1])
        + scalar(&t.covariance[0])
        + 3.0 * scalar(&t.covariance[1]);
    assert!((scalar(&t.total) - want).abs() < 1e-9);
}

#[test]
fn normalization_variants() {
    use vicreg_core::loss::EmbeddingNorm;
    let case = &cases()[1];
    let x = tensor(&matrix(&case["x"]), DType::F64);
    let y = tensor(&matrix(&case["y"]), DType::F64);
    // Standardised embeddings have unit std in every dimension: variance hinge = relu(1 - sqrt(1 + eps)) = 0.
    let st = VicRegConfig {
        normalization: EmbeddingNorm::Standardize,
        ..VicRegConfig::default()
    };
    let t = VicRegLoss::new(st).unwrap().terms(&x, &y).unwrap();
    assert!(scalar(&t.variance[0]).abs() < 1e-12);
    // L2: gamma = 1/sqrt(d); the invariance is computed on unit vectors.
    let l2 = VicRegConfig {
        normalization: EmbeddingNorm::L2,
        ..VicRegConfig::default()
    };
    let t = VicRegLoss::new(l2).unwrap().terms(&x, &y).unwrap();
    let xn = x
        .broadcast_div(&x.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap())
        .unwrap();
    let yn = y
        .broadcast_div(&y.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap())
        .unwrap();
    let inv = scalar(&(xn - yn).unwrap().sqr().unwrap().mean_all().unwrap());
    assert!((scalar(&t.invariance) - inv).abs() < 1e-9);
    let d = x.dim(1).unwrap() as f64;
    let v = vicreg_core::loss::variance(
        &x.broadcast_div(&x.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap())
            .unwrap(),
        1.0 / d.sqrt(),
        1e-4,
    )
    .unwrap();
    assert!((scalar(&t.variance[0]) - scalar(&v)).abs() < 1e-9);
}

#[test]
fn bad_input_is_an_error_not_a_nan() {
    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let dev = test_device();
    let one = Tensor::zeros((1, 4), DType::F32, &dev).unwrap();
    let err = loss.terms(&one, &one).unwrap_err().to_string();
    assert!(err.contains("at least 2"), "{err}");
    let a = Tensor::zeros((4, 4), DType::F32, &dev).unwrap();
    let b = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
    let err = loss.terms(&a, &b).unwrap_err().to_string();
    assert!(err.contains("differ in shape"), "{err}");
    let nan = Tensor::new(&[[1f32, f32::NAN], [0.0, 1.0]], &dev).unwrap();
    let ok = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &dev).unwrap();
    let err = loss.terms(&ok, &nan).unwrap_err().to_string();
    assert!(err.contains("branch B") && err.contains("NaN"), "{err}");
    let bad = VicRegConfig {
        sim_coeff: -1.0,
        ..VicRegConfig::default()
    };
    assert!(VicRegLoss::new(bad).is_err());
}

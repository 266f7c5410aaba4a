//! The fused train-mode BatchNorm (+ReLU) custom op: finite-difference
//! gradient checks (f64) for x, gamma and beta, forward equality with
//! candle_nn's BatchNorm (f32), batch statistics, and clear errors.

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{BatchNormConfig, VarBuilder, VarMap};
use encoders::ops::batch_norm_train;
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::SeededRng;

fn randn(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| 0.5 + 2.0 * rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    let opts = GradCheckOptions {
        max_coords_per_input: 40,
        ..Default::default()
    };
    for (i, shape) in [vec![3, 4, 3, 5], vec![2, 3, 1, 7], vec![6, 5]]
        .into_iter()
        .enumerate()
    {
        for relu in [false, true] {
            let c = shape[1];
            let x = randn(10 + i as u64, &shape, DType::F64);
            let g = randn(20 + i as u64, &[c], DType::F64);
            let b = randn(30 + i as u64, &[c], DType::F64);
            let r = check_gradients(
                |xs| Ok(batch_norm_train(&xs[0], &xs[1], &xs[2], 1e-5, relu)?.y),
                &[x, g, b],
                &opts,
            )
            .unwrap();
            assert!(r.has_grad.iter().all(|&h| h));
            r.assert_ok(1e-6)
                .unwrap_or_else(|e| panic!("shape {shape:?} relu {relu}: {e}"));
        }
    }
}

#[test]
fn forward_matches_candle_nn_batch_norm_and_reports_statistics() {
    let shape = [4, 6, 7, 5];
    let x = randn(1, &shape, DType::F32);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    let bn = candle_nn::batch_norm(6, cfg, vb.clone()).unwrap();
    let gamma = randn(2, &[6], DType::F32);
    let beta = randn(3, &[6], DType::F32);
    vb.get(6, "weight").unwrap();
    for (name, v) in [("weight", &gamma), ("bias", &beta)] {
        varmap.data().lock().unwrap()[name].set(v).unwrap();
    }
    let y_ref = bn.forward_t(&x, true).unwrap();
    let out = batch_norm_train(&x, &gamma, &beta, 1e-5, false).unwrap();
    let d = (&out.y - &y_ref).unwrap().abs().unwrap().max_all().unwrap();
    assert!(
        d.to_scalar::<f32>().unwrap() < 1e-5,
        "forward differs by {d}"
    );
    let relu = batch_norm_train(&x, &gamma, &beta, 1e-5, true).unwrap();
    let d = (&relu.y - &y_ref.relu().unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(
        d.to_scalar::<f32>().unwrap() < 1e-5,
        "fused relu differs by {d}"
    );

    // Statistics: mean and biased variance over (N, H, W).
    assert_eq!(out.count, 4 * 7 * 5);
    let xt = x.transpose(0, 1).unwrap().flatten_from(1).unwrap();
    let mean = xt.mean(1).unwrap();
    let var = xt
        .broadcast_sub(&mean.unsqueeze(1).unwrap())
        .unwrap()
        .sqr()
        .unwrap()
        .mean(1)
        .unwrap();
    for (a, b) in [(&out.mean, &mean), (&out.var, &var)] {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }
    // The running statistics candle_nn updated agree with ours.
    let m = out.count as f64;
    let rv = ((out.var.clone() * (0.1 * m / (m - 1.0))).unwrap() + 0.9).unwrap();
    let d = (&rv - bn.running_var())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
}

#[test]
fn gradient_only_where_tracked_and_clear_errors() {
    let x = Var::from_tensor(&randn(1, &[3, 2, 4], DType::F64)).unwrap();
    let g = randn(2, &[2], DType::F64);
    let b = randn(3, &[2], DType::F64);
    let y = batch_norm_train(&x, &g, &b, 1e-5, false).unwrap().y;
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_some());
    // Normalised output: every channel's gradient sums to ~0 over (N, L).
    let s = grads
        .get(&x)
        .unwrap()
        .sum((0, 2))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(s.to_scalar::<f64>().unwrap() < 1e-9);

    let one = randn(4, &[1, 2, 1], DType::F64);
    let e = batch_norm_train(&one, &g, &b, 1e-5, false).unwrap_err();
    assert!(e.to_string().contains("at least 2"), "{e}");
    let e = batch_norm_train(&x, &randn(5, &[3], DType::F64), &b, 1e-5, false).unwrap_err();
    assert!(e.to_string().contains("gamma"), "{e}");
    let e = batch_norm_train(&x, &g.to_dtype(DType::F32).unwrap(), &b, 1e-5, false).unwrap_err();
    assert!(e.to_string().contains("dtype"), "{e}");
}

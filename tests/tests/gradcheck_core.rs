//! Finite-difference gradient checks of every op and layer that vicreg-core
//! trains through. A candle upgrade that drops or breaks a gradient fails here.

use candle_core::{DType, Device, ModuleT, Tensor, D};
use candle_nn::Module;
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::loss::{CovarianceForm, EmbeddingNorm, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Expander, ExpanderConfig};
use vicreg_core::{ParamStore, SeededRng};

const TOL: f64 = 1e-5;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut r = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| r.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn opts() -> GradCheckOptions {
    GradCheckOptions {
        step: 1e-6,
        ..Default::default()
    }
}

#[test]
fn elementary_ops() {
    let x = randn(&[4, 5], 1);
    let y = randn(&[5, 3], 2);
    let pos = (randn(&[4, 5], 3).abs().unwrap() + 0.5).unwrap();
    type Op = fn(&[Tensor]) -> vicreg_core::Result<Tensor>;
    let cases: Vec<(&str, Op, Vec<Tensor>)> = vec![
        (
            "matmul",
            |t| Ok(t[0].matmul(&t[1])?),
            vec![x.clone(), y.clone()],
        ),
        ("relu", |t| Ok(t[0].relu()?), vec![x.clone()]),
        ("sqrt", |t| Ok(t[0].sqrt()?), vec![pos.clone()]),
        ("sqr", |t| Ok(t[0].sqr()?), vec![x.clone()]),
        ("tanh", |t| Ok(t[0].tanh()?), vec![x.clone()]),
        ("mean", |t| Ok(t[0].mean_keepdim(0)?), vec![x.clone()]),
        ("sum", |t| Ok(t[0].sum(1)?), vec![x.clone()]),
        (
            "broadcast_sub_div",
            |t| {
                Ok(t[0]
                    .broadcast_sub(&t[0].mean_keepdim(0)?)?
                    .broadcast_div(&t[1])?)
            },
            vec![x.clone(), pos.narrow(0, 0, 1).unwrap()],
        ),
        (
            "softmax",
            |t| Ok(candle_nn::ops::softmax(&t[0], D::Minus1)?),
            vec![x.clone()],
        ),
        (
            "log_softmax",
            |t| Ok(candle_nn::ops::log_softmax(&t[0], D::Minus1)?),
            vec![x.clone()],
        ),
        (
            "transpose_matmul",
            |t| Ok(t[0].t()?.matmul(&t[0])?),
            vec![x.clone()],
        ),
        (
            "narrow_cat",
            |t| {
                Ok(Tensor::cat(
                    &[t[0].narrow(0, 1, 2)?, t[0].narrow(0, 0, 1)?],
                    0,
                )?)
            },
            vec![x.clone()],
        ),
    ];
    for (name, f, inputs) in cases {
        let r = check_gradients(f, &inputs, &opts()).unwrap();
        r.assert_ok(TOL).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn cross_entropy() {
    let logits = randn(&[6, 4], 4);
    let labels = Tensor::new(&[0u32, 3, 1, 2, 2, 0], &Device::Cpu).unwrap();
    let r = check_gradients(
        move |t| Ok(candle_nn::loss::cross_entropy(&t[0], &labels)?),
        &[logits],
        &opts(),
    )
    .unwrap();
    r.assert_ok(TOL).unwrap();
}

#[test]
fn vicreg_loss_all_variants() {
    let za = randn(&[6, 4], 5);
    let zb = randn(&[6, 4], 6);
    for norm in [
        EmbeddingNorm::None,
        EmbeddingNorm::Standardize,
        EmbeddingNorm::L2,
    ] {
        for form in [CovarianceForm::Dxd, CovarianceForm::Gram] {
            let cfg = VicRegConfig {
                normalization: norm,
                covariance_form: form,
                ..VicRegConfig::default()
            };
            let loss = VicRegLoss::new(cfg).unwrap();
            let r = check_gradients(
                |t| Ok(loss.terms(&t[0], &t[1])?.total),
                &[za.clone(), zb.clone()],
                &opts(),
            )
            .unwrap();
            r.assert_ok(TOL)
                .unwrap_or_else(|e| panic!("{norm:?} {form:?}: {e}"));
        }
    }
}

#[test]
fn expander_linear_batchnorm_relu_in_train_mode() {
    // The expander's parameters are variables of a ParamStore; check the gradient
    // w.r.t. its input and w.r.t. every parameter by rebuilding it from tensors.
    let x = randn(&[6, 3], 7);
    let store = ParamStore::new(3);
    let vb = store.var_builder(DType::F64, &Device::Cpu);
    let exp = Expander::new(3, &ExpanderConfig::with_mlp("5-4"), vb).unwrap();
    let r = check_gradients(
        |t| Ok(exp.forward_t(&t[0], true)?),
        std::slice::from_ref(&x),
        &opts(),
    )
    .unwrap();
    r.assert_ok(TOL).unwrap();
    // Parameter gradients: the first Linear's weight through BN (train) and ReLU.
    let names: Vec<String> = store
        .trainable_vars()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        names,
        vec!["0.bias", "0.weight", "1.bias", "1.weight", "3.weight"]
    );
    let w0 = store
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == "0.weight")
        .unwrap()
        .1;
    let b1 = store
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == "1.weight")
        .unwrap()
        .1;
    let w3 = store
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == "3.weight")
        .unwrap()
        .1;
    let bn_cfg = candle_nn::BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    };
    let f = |t: &[Tensor]| -> vicreg_core::Result<Tensor> {
        let h = candle_nn::Linear::new(t[0].clone(), None).forward(&x)?;
        let bn = candle_nn::BatchNorm::new(
            5,
            Tensor::zeros(5, DType::F64, &Device::Cpu)?,
            Tensor::ones(5, DType::F64, &Device::Cpu)?,
            t[1].clone(),
            Tensor::zeros(5, DType::F64, &Device::Cpu)?,
            bn_cfg.eps,
        )?;
        let h = bn.forward_t(&h, true)?.relu()?;
        Ok(candle_nn::Linear::new(t[2].clone(), None).forward(&h)?)
    };
    let r = check_gradients(
        f,
        &[
            w0.as_tensor().clone(),
            b1.as_tensor().clone(),
            w3.as_tensor().clone(),
        ],
        &opts(),
    )
    .unwrap();
    r.assert_ok(TOL).unwrap();
}

#[test]
fn expander_with_layer_norm_has_every_gradient() {
    // VICRegL's ConvNeXt expanders: Linear -> LayerNorm -> ReLU -> Linear,
    // every parameter and the input checked by rebuilding from tensors.
    let cfg = ExpanderConfig {
        layer_norm: true,
        ..ExpanderConfig::with_mlp("5-4")
    };
    let store = ParamStore::new(4);
    Expander::new(3, &cfg, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let named: Vec<(String, Tensor)> = store
        .trainable_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["0.bias", "0.weight", "1.bias", "1.weight", "3.weight"]
    );
    let mut inputs = vec![randn(&[6, 3], 8)];
    // non-trivial LayerNorm weight and bias
    inputs.extend(
        named
            .iter()
            .enumerate()
            .map(|(i, (_, t))| (t + randn(t.dims(), 50 + i as u64) * 0.3).unwrap()),
    );
    let r = check_gradients(
        |t| {
            let map: std::collections::HashMap<String, Tensor> = named
                .iter()
                .map(|(n, _)| n.clone())
                .zip(t[1..].iter().cloned())
                .collect();
            let vb = candle_nn::VarBuilder::from_tensors(map, DType::F64, &Device::Cpu);
            let exp = Expander::new(3, &cfg, vb)?;
            Ok(exp.forward_t(&t[0], true)?)
        },
        &inputs,
        &opts(),
    )
    .unwrap();
    assert!(r.has_grad.iter().all(|&h| h), "{:?}", r.has_grad);
    r.assert_ok(TOL).unwrap();
}

#[test]
fn the_checker_catches_a_dropped_gradient() {
    // candle's fused LayerNorm records no gradient (candle-pitfalls.md): the checker must say so.
    let x = randn(&[3, 8], 8);
    // (the fused kernel is f32-only: cast around it.)
    let w = Tensor::ones(8, DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap();
    let coarse = GradCheckOptions {
        step: 1e-2,
        ..Default::default()
    };
    let r = check_gradients(
        move |t| {
            let y = candle_nn::LayerNorm::new(w.clone(), b.clone(), 1e-5)
                .forward(&t[0].to_dtype(DType::F32)?)?;
            Ok(y.to_dtype(DType::F64)?)
        },
        std::slice::from_ref(&x),
        &coarse,
    )
    .unwrap();
    assert!(!r.has_grad[0] || r.worst() > 0.1, "{r:?}");
    let verdict = r.assert_ok(TOL);
    assert!(
        verdict.is_err(),
        "the fused LayerNorm gradient is known to be missing"
    );
    // The safe path passes.
    let w = Tensor::ones(8, DType::F64, &Device::Cpu).unwrap();
    let b = Tensor::zeros(8, DType::F64, &Device::Cpu).unwrap();
    let r = check_gradients(
        move |t| Ok(candle_nn::ops::layer_norm_slow(&t[0], &w, &b, 1e-5)?),
        &[x],
        &opts(),
    )
    .unwrap();
    r.assert_ok(TOL).unwrap();
}

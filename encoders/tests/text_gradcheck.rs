//! Finite-difference gradient checks (F64, tiny shapes) of every op the text
//! encoders train through: layer norm, masked attention, exact GELU, the GRU
//! cell and a whole GRU pass, and a complete transformer layer (post- and pre-LN).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use encoders::text::{
    attention_bias, gelu_exact, gru_cell, layer_norm, BertConfig, BertLayer, GruConfig,
    GruTextEncoder, NormPosition, SelfAttention, TextBatch,
};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::model::Encoder;
use vicreg_core::{ParamStore, SeededRng};

const TOL: f64 = 1e-5;

fn randn(shape: &[usize], std: f64, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| std * rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn opts(max_coords: usize) -> GradCheckOptions {
    GradCheckOptions {
        max_coords_per_input: max_coords,
        ..Default::default()
    }
}

/// The variables a module creates under a fresh store, sorted by name.
fn params_of(build: impl Fn(VarBuilder)) -> (Vec<String>, Vec<Tensor>) {
    let store = ParamStore::new(3);
    build(store.var_builder(DType::F64, &Device::Cpu));
    // Perturb the initial values (zero biases, unit norm weights) so that no
    // gradient is accidentally trivial.
    store
        .named_vars()
        .into_iter()
        .enumerate()
        .map(|(i, (n, v))| {
            let noise = randn(v.dims(), 0.1, 100 + i as u64);
            (n, (v.as_tensor() + noise).unwrap())
        })
        .unzip()
}

fn vb_from(names: &[String], ts: &[Tensor]) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = names.iter().cloned().zip(ts.iter().cloned()).collect();
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

fn mask_2x5() -> Tensor {
    // Sentence 0: 5 tokens; sentence 1: 3 tokens + 2 padding.
    Tensor::new(
        &[[1f64, 1., 1., 1., 1.], [1., 1., 1., 0., 0.]],
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn layer_norm_gradients() {
    let x = randn(&[3, 4, 6], 1.5, 1);
    let w = (randn(&[6], 0.3, 2) + 1.0).unwrap();
    let b = randn(&[6], 0.3, 3);
    let rep = check_gradients(
        |t| Ok(layer_norm(&t[0], &t[1], &t[2], 1e-5)?),
        &[x, w, b],
        &opts(72),
    )
    .unwrap();
    println!("layer norm: {:?}", rep.max_rel_error);
    rep.assert_ok(TOL).unwrap();
}

#[test]
fn exact_gelu_gradient_and_value() {
    // Points around the derivative's zero (x ~ -0.75), where a slightly wrong
    // constant shows most.
    let mut v: Vec<f64> = (0..40).map(|i| -4.0 + 0.2 * i as f64 + 0.013).collect();
    v.extend([-0.76, -0.752, -0.75, -0.74]);
    let x = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
    let rep = check_gradients(
        |t| Ok(gelu_exact(&t[0])?),
        std::slice::from_ref(&x),
        &opts(64),
    )
    .unwrap();
    println!("gelu_exact: {:?}", rep.max_rel_error);
    rep.assert_ok(TOL).unwrap();
    // Same values as candle's fused gelu_erf (exact erf forward).
    let d = (gelu_exact(&x).unwrap() - x.gelu_erf().unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(d < 1e-15, "gelu_exact differs from gelu_erf by {d}");
    // Why not candle's gelu_erf: its backward is only approximately right.
    let fused = check_gradients(|t| Ok(t[0].gelu_erf()?), &[x], &opts(64)).unwrap();
    println!("candle gelu_erf (for reference): {:?}", fused.max_rel_error);
    assert!(fused.worst() < 1e-3);
}

#[test]
fn masked_attention_gradients() {
    let cfg = BertConfig {
        hidden_size: 8,
        num_attention_heads: 2,
        ..BertConfig::tiny()
    };
    let rng = encoders::text::dropout_rng(0, "t");
    let (names, mut inputs) = params_of(|vb| {
        SelfAttention::new(&cfg, rng.clone(), vb).unwrap();
    });
    assert_eq!(names.len(), 8, "{names:?}");
    let n = names.len();
    inputs.push(randn(&[2, 5, 8], 1.0, 5));
    let bias = attention_bias(&mask_2x5()).unwrap();
    let f = |t: &[Tensor]| {
        let att = SelfAttention::new(&cfg, rng.clone(), vb_from(&names, &t[..n]))?;
        Ok(att.forward(&t[n], Some(&bias), false)?)
    };
    let rep = check_gradients(f, &inputs, &opts(24)).unwrap();
    println!("attention: {:?}", rep.max_rel_error);
    rep.assert_ok(TOL).unwrap();
    assert!(rep.has_grad.iter().all(|g| *g));

    // The mask really masks: changing a padded token of sentence 1 leaves
    // sentence 1's real tokens unchanged (and changes sentence 0's nothing).
    let att = SelfAttention::new(&cfg, rng.clone(), vb_from(&names, &inputs[..n])).unwrap();
    let x = &inputs[n];
    let y0 = att.forward(x, Some(&bias), false).unwrap();
    let bump = Tensor::zeros((2, 5, 8), DType::F64, &Device::Cpu)
        .unwrap()
        .slice_assign(
            &[1..2, 4..5, 0..8],
            &Tensor::ones((1, 1, 8), DType::F64, &Device::Cpu).unwrap(),
        )
        .unwrap();
    let y1 = att
        .forward(&(x + bump).unwrap(), Some(&bias), false)
        .unwrap();
    let diff = (y0.narrow(1, 0, 3).unwrap() - y1.narrow(1, 0, 3).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "padding leaked into real tokens: {diff}");
}

fn check_layer(norm_position: NormPosition) {
    let cfg = BertConfig {
        hidden_size: 8,
        num_attention_heads: 2,
        intermediate_size: 12,
        norm_position,
        ..BertConfig::tiny()
    };
    let rng = encoders::text::dropout_rng(0, "t");
    let (names, mut inputs) = params_of(|vb| {
        BertLayer::new(&cfg, rng.clone(), vb).unwrap();
    });
    assert_eq!(names.len(), 16, "{names:?}");
    let n = names.len();
    inputs.push(randn(&[2, 5, 8], 1.0, 6));
    let bias = attention_bias(&mask_2x5()).unwrap();
    let f = |t: &[Tensor]| {
        let layer = BertLayer::new(&cfg, rng.clone(), vb_from(&names, &t[..n]))?;
        Ok(layer.forward(&t[n], Some(&bias), false)?)
    };
    let rep = check_gradients(f, &inputs, &opts(10)).unwrap();
    println!("{norm_position:?} layer: worst {:.2e}", rep.worst());
    rep.assert_ok(TOL).unwrap();
    assert!(rep.has_grad.iter().all(|g| *g), "{:?}", rep.has_grad);
}

#[test]
fn post_ln_transformer_layer_gradients() {
    check_layer(NormPosition::Post);
}

#[test]
fn pre_ln_transformer_layer_gradients() {
    check_layer(NormPosition::Pre);
}

#[test]
fn gru_cell_gradients() {
    let (b, h) = (3, 4);
    let gi = randn(&[b, 3 * h], 1.0, 7);
    let h0 = randn(&[b, h], 0.5, 8);
    let w_hh = randn(&[3 * h, h], 0.5, 9);
    let b_hh = randn(&[3 * h], 0.3, 10);
    let rep = check_gradients(
        |t| Ok(gru_cell(&t[0], &t[1], &t[2], &t[3])?),
        &[gi, h0, w_hh, b_hh],
        &opts(48),
    )
    .unwrap();
    println!("gru cell: {:?}", rep.max_rel_error);
    rep.assert_ok(TOL).unwrap();
}

#[test]
fn whole_masked_gru_gradients() {
    let cfg = GruConfig {
        vocab_size: 7,
        embed_dim: 3,
        hidden_size: 4,
        pooling: encoders::text::GruPooling::Last,
    };
    let (names, inputs) = params_of(|vb| {
        GruTextEncoder::new(&cfg, vb).unwrap();
    });
    assert_eq!(names.len(), 5, "{names:?}");
    let ids = Tensor::new(&[[1u32, 2, 3, 4, 5], [6, 2, 1, 0, 0]], &Device::Cpu).unwrap();
    let batch = TextBatch::new(ids, mask_2x5()).unwrap();
    for pooling in [
        encoders::text::GruPooling::Last,
        encoders::text::GruPooling::Mean,
    ] {
        let cfg = GruConfig {
            pooling,
            ..cfg.clone()
        };
        let f = |t: &[Tensor]| {
            GruTextEncoder::new(&cfg, vb_from(&names, t))
                .unwrap()
                .forward_t(&batch, true)
        };
        let rep = check_gradients(f, &inputs, &opts(16)).unwrap();
        println!("gru {pooling:?}: {:?}", rep.max_rel_error);
        rep.assert_ok(TOL).unwrap();
    }
}

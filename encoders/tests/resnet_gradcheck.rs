//! Finite-difference gradient checks (F64, tiny shapes) of every op the
//! ResNet trains through: the conv2d configurations it uses, the stem conv
//! without input gradient, the exact max pool, global average pooling,
//! train-mode BatchNorm, and whole basic / bottleneck blocks.

use std::collections::HashMap;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use encoders::resnet::ops::{conv2d, conv2d_no_input_grad, BatchNorm2d};
use encoders::resnet::pool::{global_avg_pool, max_pool2d, stem_max_pool};
use encoders::resnet::{BasicBlock, Bottleneck};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::{ParamStore, SeededRng};

const TOL: f64 = 1e-5;

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn opts() -> GradCheckOptions {
    GradCheckOptions {
        max_coords_per_input: 40,
        ..Default::default()
    }
}

#[test]
fn conv2d_configurations() {
    // (kernel, stride, padding, input shape): the stem, 3x3 s1/s2 on odd and even sizes, 1x1 s2 downsample.
    let cases = [
        (7, 2, 3, [2, 2, 9, 9]),
        (7, 2, 3, [1, 2, 10, 8]),
        (3, 1, 1, [2, 3, 5, 5]),
        (3, 2, 1, [2, 3, 5, 5]),
        (3, 2, 1, [2, 3, 6, 6]),
        (1, 2, 0, [2, 3, 6, 6]),
        (1, 2, 0, [2, 3, 5, 7]),
        (1, 1, 0, [2, 3, 4, 4]),
    ];
    for (i, (k, s, p, shape)) in cases.into_iter().enumerate() {
        let x = randn(10 + i as u64, &shape);
        let w = randn(100 + i as u64, &[4, shape[1], k, k]);
        let r = check_gradients(|xs| Ok(conv2d(&xs[0], &xs[1], s, p)?), &[x, w], &opts()).unwrap();
        println!("conv {k}x{k} s{s} p{p} {shape:?}: {:?}", r.max_rel_error);
        assert!(r.has_grad.iter().all(|&h| h));
        r.assert_ok(TOL)
            .unwrap_or_else(|e| panic!("conv {k}x{k} s{s} p{p} on {shape:?}: {e}"));
    }
}

#[test]
fn stem_conv_has_exact_weight_gradient_and_no_input_gradient() {
    for (i, shape) in [[2, 3, 9, 9], [2, 1, 8, 10]].into_iter().enumerate() {
        let x = randn(20 + i as u64, &shape);
        let w = randn(200 + i as u64, &[4, shape[1], 7, 7]);
        // same value as the plain convolution
        let a = conv2d(&x, &w, 2, 3).unwrap();
        let b = conv2d_no_input_grad(&x, &w, 2, 3).unwrap();
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(d, 0.0);
        let r = check_gradients(
            |xs| Ok(conv2d_no_input_grad(&xs[0], &xs[1], 2, 3)?),
            &[x, w],
            &opts(),
        )
        .unwrap();
        println!(
            "stem conv {shape:?}: {:?} has_grad {:?}",
            r.max_rel_error, r.has_grad
        );
        assert!(
            !r.has_grad[0],
            "the stem conv must not compute an input gradient"
        );
        assert!(r.has_grad[1]);
        assert!(
            r.max_rel_error[1] <= TOL,
            "weight gradient error {:.3e}",
            r.max_rel_error[1]
        );
    }
}

/// Max pool by direct loops over the windows (reference for values).
fn naive_max_pool(x: &Tensor, k: usize, s: usize, p: usize) -> Vec<f64> {
    let (n, c, h, w) = x.dims4().unwrap();
    let v = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = Vec::new();
    for b in 0..n * c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut m = f64::NEG_INFINITY;
                for dy in 0..k {
                    for dx in 0..k {
                        let (y, xx) = (
                            (oy * s + dy) as isize - p as isize,
                            (ox * s + dx) as isize - p as isize,
                        );
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            m = m.max(v[b * h * w + y as usize * w + xx as usize]);
                        }
                    }
                }
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn max_pool_values_and_gradients() {
    for (i, (k, s, p, shape)) in [
        (3, 2, 1, [2, 2, 7, 7]),
        (3, 2, 1, [2, 2, 8, 6]),
        (3, 2, 1, [1, 3, 2, 3]),
        (2, 2, 0, [1, 2, 5, 4]),
        (3, 1, 1, [1, 2, 4, 5]),
    ]
    .into_iter()
    .enumerate()
    {
        let x = randn(30 + i as u64, &shape);
        let y = max_pool2d(&x, k, s, p).unwrap();
        let want = naive_max_pool(&x, k, s, p);
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            want,
            "values {k} {s} {p} {shape:?}"
        );
        let r = check_gradients(|xs| Ok(max_pool2d(&xs[0], k, s, p)?), &[x], &opts()).unwrap();
        println!("maxpool k{k} s{s} p{p} {shape:?}: {:?}", r.max_rel_error);
        r.assert_ok(TOL).unwrap();
    }
    // the stem pool output size: floor((n + 2 - 3) / 2) + 1
    let y = stem_max_pool(&randn(1, &[1, 1, 9, 8])).unwrap();
    assert_eq!(y.dims(), &[1, 1, 5, 4]);
    assert!(
        max_pool2d(&randn(1, &[1, 1, 4, 4]), 3, 2, 2).is_err(),
        "padding > kernel/2 must be refused"
    );
}

#[test]
fn global_avg_pool_gradient() {
    let x = randn(5, &[2, 3, 3, 4]);
    let y = global_avg_pool(&x).unwrap();
    assert_eq!(y.dims(), &[2, 3]);
    let r = check_gradients(|xs| Ok(global_avg_pool(&xs[0])?), &[x], &opts()).unwrap();
    r.assert_ok(TOL).unwrap();
}

/// A VarBuilder over exactly the given tensors (so the checker's inputs are the layer's weights).
fn vb_from(
    names: &[String],
    xs: &[Tensor],
    extra: &HashMap<String, Tensor>,
) -> VarBuilder<'static> {
    let mut map: HashMap<String, Tensor> = extra.clone();
    for (n, t) in names.iter().zip(xs) {
        map.insert(n.clone(), t.clone());
    }
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

#[test]
fn batch_norm_train_mode_gradient_and_running_stats() {
    let c = 3;
    let x = (randn(7, &[4, c, 3, 2]) * 2.0)
        .unwrap()
        .affine(1.0, 0.5)
        .unwrap();
    let weight = randn(8, &[c]).affine(0.3, 1.0).unwrap();
    let bias = randn(9, &[c]).affine(0.1, 0.0).unwrap();
    let names = vec!["weight".to_string(), "bias".to_string()];
    let mut stats = HashMap::new();
    stats.insert(
        "running_mean".to_string(),
        Tensor::zeros(c, DType::F64, &Device::Cpu).unwrap(),
    );
    stats.insert(
        "running_var".to_string(),
        Tensor::ones(c, DType::F64, &Device::Cpu).unwrap(),
    );
    let r = check_gradients(
        |xs| {
            let bn = BatchNorm2d::new(c, false, vb_from(&names, &xs[1..], &stats))?;
            Ok(bn.forward_t(&xs[0], true)?)
        },
        &[x.clone(), weight.clone(), bias.clone()],
        &opts(),
    )
    .unwrap();
    println!("bn train: {:?}", r.max_rel_error);
    r.assert_ok(TOL).unwrap();

    // Running statistics after one step, against a hand computation.
    let store = ParamStore::new(0);
    let bn = BatchNorm2d::new(c, false, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    bn.forward_t(&x, true).unwrap();
    let per_ch = x
        .transpose(0, 1)
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let mut tensors = Vec::new();
    bn.collect("", &mut tensors);
    let get = |n: &str| {
        tensors
            .iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_vec1::<f64>()
            .unwrap()
    };
    let (rm, rv) = (get("running_mean"), get("running_var"));
    for ch in 0..c {
        let v = &per_ch[ch];
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var_unbiased = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!(
            (rm[ch] - 0.1 * mean).abs() < 1e-12,
            "running mean channel {ch}"
        );
        assert!(
            (rv[ch] - (0.9 + 0.1 * var_unbiased)).abs() < 1e-12,
            "running var channel {ch}"
        );
    }
}

/// Names and values of a block's trainable tensors, built once from a seeded store
/// (BN weights and biases then randomised so they are not the trivial 1 / 0).
fn block_params(
    build: impl Fn(VarBuilder) -> Vec<(String, Tensor)>,
) -> (Vec<String>, Vec<Tensor>, HashMap<String, Tensor>) {
    let store = ParamStore::new(3);
    let named = build(store.var_builder(DType::F64, &Device::Cpu));
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut buffers = HashMap::new();
    for (i, (n, t)) in named.into_iter().enumerate() {
        if vicreg_core::is_buffer_name(&n) {
            buffers.insert(n, t);
            continue;
        }
        let v = if n.contains("bn") || n.contains("downsample.1") {
            let r = randn(1000 + i as u64, t.dims());
            if n.ends_with("weight") {
                r.affine(0.3, 1.0).unwrap()
            } else {
                r.affine(0.2, 0.0).unwrap()
            }
        } else {
            t.copy().unwrap()
        };
        names.push(n);
        values.push(v);
    }
    (names, values, buffers)
}

fn check_block(
    what: &str,
    x: Tensor,
    build: impl Fn(VarBuilder) -> Box<dyn ModuleT>,
    collect: impl Fn(VarBuilder) -> Vec<(String, Tensor)>,
) {
    let (names, values, buffers) = block_params(collect);
    let mut inputs = vec![x];
    inputs.extend(values);
    for train in [true, false] {
        let r = check_gradients(
            |xs| {
                let block = build(vb_from(&names, &xs[1..], &buffers));
                Ok(block.forward_t(&xs[0], train)?)
            },
            &inputs,
            &GradCheckOptions {
                max_coords_per_input: 12,
                ..Default::default()
            },
        )
        .unwrap();
        println!(
            "{what} (train {train}): worst {:.2e} over {} inputs",
            r.worst(),
            inputs.len()
        );
        assert!(
            r.has_grad.iter().all(|&h| h),
            "{what}: an input got no gradient: {:?}",
            r.has_grad
        );
        r.assert_ok(TOL)
            .unwrap_or_else(|e| panic!("{what} (train {train}): {e}"));
    }
}

#[test]
fn basic_block_gradients() {
    // identity shortcut
    check_block(
        "BasicBlock 4->4 s1",
        randn(40, &[2, 4, 4, 4]),
        |vb| Box::new(BasicBlock::new(4, 4, 1, true, vb).unwrap()),
        |vb| {
            let mut v = Vec::new();
            BasicBlock::new(4, 4, 1, true, vb)
                .unwrap()
                .collect("", &mut v);
            v
        },
    );
    // projection shortcut with stride 2 on an odd size
    check_block(
        "BasicBlock 3->4 s2",
        randn(41, &[2, 3, 5, 5]),
        |vb| Box::new(BasicBlock::new(3, 4, 2, false, vb).unwrap()),
        |vb| {
            let mut v = Vec::new();
            BasicBlock::new(3, 4, 2, false, vb)
                .unwrap()
                .collect("", &mut v);
            v
        },
    );
}

#[test]
fn bottleneck_block_gradients() {
    check_block(
        "Bottleneck 4->8 s2",
        randn(42, &[2, 4, 6, 6]),
        |vb| Box::new(Bottleneck::new(4, 2, 2, true, vb).unwrap()),
        |vb| {
            let mut v = Vec::new();
            Bottleneck::new(4, 2, 2, true, vb)
                .unwrap()
                .collect("", &mut v);
            v
        },
    );
    check_block(
        "Bottleneck 8->8 s1",
        randn(43, &[2, 8, 3, 3]),
        |vb| Box::new(Bottleneck::new(8, 2, 1, false, vb).unwrap()),
        |vb| {
            let mut v = Vec::new();
            Bottleneck::new(8, 2, 1, false, vb)
                .unwrap()
                .collect("", &mut v);
            v
        },
    );
}

//! Finite-difference gradient checks (F64) of the audio encoders' building
//! blocks: conv1d computed as conv2d, the narrow+maximum max pool, a 1-D
//! BasicBlock (every parameter, train and eval mode) and a whole tiny 1-D ResNet.

use std::collections::HashMap;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use encoders::audio::{conv1d_via_conv2d, max_pool1d, BasicBlock1d, ResNet1d, ResNet1dConfig};
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::model::Encoder;
use vicreg_core::{is_buffer_name, ParamStore, SeededRng};

const TOL: f64 = 1e-6;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Direct-loop PyTorch `F.conv1d` (no bias) for checking the forward values.
fn naive_conv1d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Vec<Vec<Vec<f64>>> {
    let xv: Vec<Vec<Vec<f64>>> = x.to_vec3().unwrap();
    let wv: Vec<Vec<Vec<f64>>> = w.to_vec3().unwrap();
    let (t, k) = (xv[0][0].len() as isize, wv[0][0].len());
    let t_out = ((t as usize + 2 * padding - k) / stride) + 1;
    xv.iter()
        .map(|xb| {
            wv.iter()
                .map(|wo| {
                    (0..t_out)
                        .map(|i| {
                            let mut s = 0.0;
                            for (xc, wc) in xb.iter().zip(wo) {
                                for (j, wj) in wc.iter().enumerate() {
                                    let p = (i * stride + j) as isize - padding as isize;
                                    if p >= 0 && p < t {
                                        s += xc[p as usize] * wj;
                                    }
                                }
                            }
                            s
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[test]
fn conv1d_via_conv2d_matches_direct_loops_and_has_exact_gradients() {
    // (kernel, stride, padding): with and without padding, strides 1, 2, 4.
    let cases = [
        (3, 1, 0),
        (3, 1, 1),
        (3, 2, 0),
        (3, 2, 1),
        (5, 4, 0),
        (5, 4, 2),
        (1, 2, 0),
    ];
    for (i, &(k, s, p)) in cases.iter().enumerate() {
        let x = randn(&[2, 3, 11], 10 + i as u64);
        let w = randn(&[4, 3, k], 100 + i as u64);
        let y = conv1d_via_conv2d(&x, &w, s, p).unwrap();
        let want = naive_conv1d(&x, &w, s, p);
        let got: Vec<Vec<Vec<f64>>> = y.to_vec3().unwrap();
        assert_eq!(y.dims(), &[2, 4, want[0][0].len()], "case {:?}", (k, s, p));
        for (g, w) in got
            .iter()
            .flatten()
            .flatten()
            .zip(want.iter().flatten().flatten())
        {
            assert!((g - w).abs() < 1e-12, "case {:?}: {g} vs {w}", (k, s, p));
        }
        let report = check_gradients(
            |xs| Ok(conv1d_via_conv2d(&xs[0], &xs[1], s, p)?),
            &[x, w],
            &GradCheckOptions::default(),
        )
        .unwrap();
        report
            .assert_ok(TOL)
            .unwrap_or_else(|e| panic!("case {:?}: {e}", (k, s, p)));
        assert!(
            report.max_abs_numeric.iter().all(|m| *m > 1e-3),
            "degenerate check {report:?}"
        );
    }
}

/// Documents why the module exists: candle's own conv1d gets the weight gradient wrong.
/// If this starts failing after a candle upgrade, candle's conv1d may have been fixed.
#[test]
fn candle_conv1d_weight_gradient_is_wrong() {
    let x = randn(&[2, 3, 11], 1);
    let w = randn(&[4, 3, 3], 2);
    let report = check_gradients(
        |xs| Ok(xs[0].conv1d(&xs[1], 1, 1, 1, 1)?),
        &[x, w],
        &GradCheckOptions::default(),
    )
    .unwrap();
    assert!(
        report.max_rel_error[1] > 1e-2,
        "candle conv1d weight gradient now passes: {report:?}"
    );
}

fn naive_max_pool1d(x: &Tensor, k: usize, s: usize, p: usize) -> Vec<Vec<Vec<f64>>> {
    let xv: Vec<Vec<Vec<f64>>> = x.to_vec3().unwrap();
    xv.iter()
        .map(|xb| {
            xb.iter()
                .map(|xc| {
                    let t = xc.len();
                    let n = (t + 2 * p - k) / s + 1;
                    (0..n)
                        .map(|i| {
                            (0..k)
                                .filter_map(|j| {
                                    let q = (i * s + j) as isize - p as isize;
                                    (q >= 0 && (q as usize) < t).then(|| xc[q as usize])
                                })
                                .fold(f64::NEG_INFINITY, f64::max)
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[test]
fn max_pool1d_matches_direct_loops_and_has_exact_gradients() {
    // (kernel, stride, padding), on even and odd lengths.
    let cases = [
        (3, 2, 1),
        (3, 1, 0),
        (3, 1, 1),
        (4, 4, 0),
        (2, 2, 1),
        (5, 3, 2),
    ];
    for (i, &(k, s, p)) in cases.iter().enumerate() {
        for t in [10usize, 11] {
            let x = randn(&[2, 3, t], 7 * i as u64 + t as u64);
            let y = max_pool1d(&x, k, s, p).unwrap();
            let want = naive_max_pool1d(&x, k, s, p);
            let got: Vec<Vec<Vec<f64>>> = y.to_vec3().unwrap();
            assert_eq!(got, want, "case {:?} t={t}", (k, s, p));
            let report = check_gradients(
                |xs| Ok(max_pool1d(&xs[0], k, s, p)?),
                &[x],
                &GradCheckOptions::default(),
            )
            .unwrap();
            report
                .assert_ok(TOL)
                .unwrap_or_else(|e| panic!("case {:?} t={t}: {e}", (k, s, p)));
        }
    }
    assert!(
        max_pool1d(&randn(&[1, 1, 5], 0), 3, 2, 2).is_err(),
        "padding > kernel/2 must be refused"
    );
}

/// Checks d/d(input and every trainable parameter) of a BasicBlock1d built from the checked tensors.
fn check_block(stride: usize, in_ch: usize, out_ch: usize, train: bool) {
    let dev = Device::Cpu;
    let store = ParamStore::new(3);
    BasicBlock1d::new(
        in_ch,
        out_ch,
        stride,
        3,
        false,
        store.var_builder(DType::F64, &dev),
    )
    .unwrap();
    let vars = store.named_vars();
    let mut rng = SeededRng::new(11);
    // Perturb BN parameters and running stats away from 1/0 so every term matters.
    let mut buffers: HashMap<String, Tensor> = HashMap::new();
    let mut names = vec![];
    let mut inputs = vec![randn(&[3, in_ch, 9], 5)];
    for (name, var) in &vars {
        let t = var.as_tensor();
        let t = if t.rank() == 1 {
            let n = t.dim(0).unwrap();
            let v: Vec<f64> = (0..n).map(|_| rng.uniform_range(0.5, 1.5)).collect();
            Tensor::from_vec(v, n, &dev).unwrap()
        } else {
            t.clone()
        };
        if is_buffer_name(name) {
            buffers.insert(name.clone(), t);
        } else {
            names.push(name.clone());
            inputs.push(t);
        }
    }
    assert!(
        names.len() >= 6,
        "expected conv and BN parameters, got {names:?}"
    );
    let report = check_gradients(
        |xs| {
            let mut map = buffers.clone();
            for (n, t) in names.iter().zip(&xs[1..]) {
                map.insert(n.clone(), t.clone());
            }
            let vb = VarBuilder::from_tensors(map, DType::F64, &Device::Cpu);
            let block = BasicBlock1d::new(in_ch, out_ch, stride, 3, false, vb)?;
            Ok(block.forward_t(&xs[0], train)?)
        },
        &inputs,
        &GradCheckOptions {
            max_coords_per_input: 24,
            ..Default::default()
        },
    )
    .unwrap();
    for (i, has) in report.has_grad.iter().enumerate() {
        assert!(
            *has,
            "no gradient for input {i} ({:?}) in {report:?}",
            if i == 0 { "x" } else { &names[i - 1] }
        );
    }
    report.assert_ok(TOL).unwrap_or_else(|e| {
        panic!("stride {stride} {in_ch}->{out_ch} train={train}: {e} (params {names:?})")
    });
}

#[test]
fn basic_block_1d_gradients() {
    check_block(2, 3, 4, true); // downsample branch
    check_block(1, 4, 4, true); // identity shortcut
    check_block(2, 3, 4, false); // eval mode (running statistics)
}

#[test]
fn tiny_resnet1d_input_gradient() {
    let store = ParamStore::new(1);
    let net = ResNet1d::new(
        &ResNet1dConfig::tiny(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let x = randn(&[3, 64], 9);
    let report = check_gradients(
        |xs| net.forward_t(&xs[0], true),
        &[x],
        &GradCheckOptions::default(),
    )
    .unwrap();
    report.assert_ok(TOL).unwrap();
    assert!(report.max_abs_numeric[0] > 1e-4, "{report:?}");
}

//! SGD and AdamW against hand-computed updates; parameter groups; variables
//! without a gradient are skipped; state survives a save/load through safetensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use vicreg_core::optim::{
    build_optimizer, AdamW, AdamWConfig, Lars, LarsConfig, Optimizer, OptimizerKind, ParamGroup,
    Sgd, SgdConfig,
};

fn var(v: &[f64]) -> Var {
    Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap()
}
fn mat(v: &[[f64; 2]; 2]) -> Var {
    Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap()
}
fn vals(v: &Var) -> Vec<f64> {
    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
}
/// loss = sum(w * c): gradient c.
fn grads_of(vars: &[(&Var, f64)]) -> candle_core::backprop::GradStore {
    let mut total = Tensor::new(0f64, &Device::Cpu).unwrap();
    for (v, c) in vars {
        total = (total + (v.as_tensor() * *c).unwrap().sum_all().unwrap()).unwrap();
    }
    total.backward().unwrap()
}

#[test]
fn sgd_momentum_weight_decay_by_hand() {
    let w = mat(&[[1.0, 2.0], [3.0, 4.0]]);
    let b = var(&[1.0, -1.0]);
    let cfg = SgdConfig {
        momentum: 0.9,
        weight_decay: 0.1,
        nesterov: false,
        exclude_1d_from_wd: true,
    };
    let mut opt = Sgd::new(
        vec![ParamGroup::new(vec![
            ("w".into(), w.clone()),
            ("b".into(), b.clone()),
        ])],
        cfg,
    )
    .unwrap();
    // step 1: g = 0.5 + 0.1 w; buf = g; w -= 0.1 buf. b: no wd, g = 0.5.
    opt.step(&grads_of(&[(&w, 0.5), (&b, 0.5)]), 0.1).unwrap();
    let w1: Vec<f64> = [1.0, 2.0, 3.0, 4.0]
        .iter()
        .map(|x| x - 0.1 * (0.5 + 0.1 * x))
        .collect();
    for (g, e) in vals(&w).iter().zip(&w1) {
        assert!((g - e).abs() < 1e-12);
    }
    assert_eq!(vals(&b), vec![0.95, -1.05]);
    // step 2: buf = 0.9 buf + g.
    opt.step(&grads_of(&[(&w, 0.5), (&b, 0.5)]), 0.1).unwrap();
    let bufs: Vec<f64> = [1.0, 2.0, 3.0, 4.0].iter().map(|x| 0.5 + 0.1 * x).collect();
    let w2: Vec<f64> = w1
        .iter()
        .zip(&bufs)
        .map(|(x, b1)| x - 0.1 * (0.9 * b1 + 0.5 + 0.1 * x))
        .collect();
    for (g, e) in vals(&w).iter().zip(&w2) {
        assert!((g - e).abs() < 1e-12);
    }
}

#[test]
fn adamw_by_hand_with_groups_and_no_decay_on_1d() {
    let w = mat(&[[1.0, -2.0], [0.5, 4.0]]);
    let b = var(&[1.0, -1.0]);
    let cfg = AdamWConfig {
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut head = ParamGroup::new(vec![("b".into(), b.clone())]);
    head.lr_scale = 2.0;
    let mut opt = AdamW::new(
        vec![ParamGroup::new(vec![("w".into(), w.clone())]), head],
        cfg,
    )
    .unwrap();
    let lr = 0.01;
    let mut m = 0.0;
    let mut v = 0.0;
    let mut wv: Vec<f64> = vec![1.0, -2.0, 0.5, 4.0];
    let mut bv: Vec<f64> = vec![1.0, -1.0];
    for t in 1..=3 {
        let g = 0.3 * t as f64;
        opt.step(&grads_of(&[(&w, g), (&b, g)]), lr).unwrap();
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        let upd = (m / (1.0 - 0.9f64.powi(t))) / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
        wv = wv.iter().map(|x| x * (1.0 - lr * 0.1) - lr * upd).collect();
        bv = bv.iter().map(|x| x - 2.0 * lr * upd).collect();
    }
    for (g, e) in vals(&w).iter().zip(&wv).chain(vals(&b).iter().zip(&bv)) {
        assert!((g - e).abs() < 1e-12, "{g} vs {e}");
    }
}

#[test]
fn variables_without_gradient_are_skipped_and_state_roundtrips() {
    for kind in [
        OptimizerKind::Lars,
        OptimizerKind::Sgd,
        OptimizerKind::Adamw,
    ] {
        let w = mat(&[[1.0, 2.0], [3.0, 4.0]]);
        let running_mean = var(&[0.5, 0.5]); // like a BatchNorm buffer: never gets a gradient
        let vars = vec![
            ("w".to_string(), w.clone()),
            ("bn.running_mean".to_string(), running_mean.clone()),
        ];
        let mut opt = build_optimizer(kind, vec![ParamGroup::new(vars.clone())], 1e-4).unwrap();
        opt.step(&grads_of(&[(&w, 1.0)]), 0.5).unwrap();
        assert_eq!(vals(&running_mean), vec![0.5, 0.5], "{kind:?}");
        assert_ne!(vals(&w), vec![1.0, 2.0, 3.0, 4.0], "{kind:?}");
        // Save through safetensors bytes and restore into a fresh optimizer.
        let dir = std::env::temp_dir().join(format!("vicreg-opt-{kind:?}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("opt.safetensors");
        vicreg_core::io::save_safetensors_atomic(&opt.state().unwrap(), &path).unwrap();
        let state: HashMap<String, Tensor> = vicreg_core::io::load_safetensors(&path).unwrap();
        let w2 = Var::from_tensor(w.as_tensor()).unwrap();
        let mut opt2 = build_optimizer(
            kind,
            vec![ParamGroup::new(vec![("w".into(), w2.clone())])],
            1e-4,
        )
        .unwrap();
        opt2.load_state(&state).unwrap();
        opt.step(&grads_of(&[(&w, 1.0)]), 0.5).unwrap();
        opt2.step(&grads_of(&[(&w2, 1.0)]), 0.5).unwrap();
        assert_eq!(vals(&w), vals(&w2), "{kind:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn duplicate_variables_and_unknown_optimizer_are_errors() {
    let w = mat(&[[1.0, 2.0], [3.0, 4.0]]);
    let g = vec![
        ParamGroup::new(vec![("w".into(), w.clone())]),
        ParamGroup::new(vec![("w".into(), w)]),
    ];
    assert!(build_optimizer(OptimizerKind::Sgd, g, 0.0).is_err());
    let err = "adam".parse::<OptimizerKind>().unwrap_err().to_string();
    assert!(err.contains("lars, sgd or adamw"), "{err}");
    let _ = DType::F64;
}

#[test]
fn corrupt_safetensors_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("vicreg-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.safetensors");
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let err = vicreg_core::io::load_safetensors(&p)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );
    let missing = vicreg_core::io::load_safetensors(&dir.join("nope.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.safetensors"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn optimizer_state_keeps_no_autograd_graph() {
    // An update computed from the tracked variable (e.g. `g + wd * p`) would chain
    // every step's graph through the momentum buffers: memory grows without bound.
    for kind in [
        OptimizerKind::Lars,
        OptimizerKind::Sgd,
        OptimizerKind::Adamw,
    ] {
        let w = mat(&[[1.0, 2.0], [3.0, 4.0]]);
        let b = var(&[0.5, -0.5]);
        let mut opt = build_optimizer(
            kind,
            vec![ParamGroup::new(vec![
                ("w".into(), w.clone()),
                ("b".into(), b.clone()),
            ])],
            0.1,
        )
        .unwrap();
        for _ in 0..3 {
            let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap()
                + b.as_tensor().sum_all().unwrap())
            .unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
        }
        for (name, t) in opt.state().unwrap() {
            assert!(
                !t.track_op(),
                "{kind:?}: state {name} holds an autograd graph"
            );
        }
    }
}

/// The fused in-place updates (contiguous f32/f64 CPU tensors) and the
/// generic tensor-op updates (taken here for a non-contiguous gradient) give
/// the same parameters and state over several steps, for AdamW, LARS and
/// for SGD with and without Nesterov.
#[test]
fn fused_and_generic_updates_agree() {
    let dev = Device::Cpu;
    let w0: Vec<f32> = (0..12).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
    let mk = || Var::from_tensor(&Tensor::from_vec(w0.clone(), (3, 4), &dev).unwrap()).unwrap();
    type MakeOptimizer = Box<dyn Fn(Var) -> Box<dyn Optimizer>>;
    let kinds: Vec<(&str, MakeOptimizer)> = vec![
        (
            "adamw",
            Box::new(|v: Var| -> Box<dyn Optimizer> {
                let cfg = AdamWConfig {
                    weight_decay: 0.1,
                    ..AdamWConfig::default()
                };
                Box::new(AdamW::new(vec![ParamGroup::new(vec![("w".into(), v)])], cfg).unwrap())
            }),
        ),
        (
            "sgd",
            Box::new(|v: Var| -> Box<dyn Optimizer> {
                let cfg = SgdConfig {
                    momentum: 0.9,
                    weight_decay: 0.05,
                    ..SgdConfig::default()
                };
                Box::new(Sgd::new(vec![ParamGroup::new(vec![("w".into(), v)])], cfg).unwrap())
            }),
        ),
        (
            "lars",
            Box::new(|v: Var| -> Box<dyn Optimizer> {
                // eta 1: steps large enough to see (0.001 moves by ~1e-4).
                let cfg = LarsConfig {
                    weight_decay: 0.05,
                    eta: 1.0,
                    ..LarsConfig::default()
                };
                Box::new(Lars::new(vec![ParamGroup::new(vec![("w".into(), v)])], cfg).unwrap())
            }),
        ),
        (
            "sgd-nesterov",
            Box::new(|v: Var| -> Box<dyn Optimizer> {
                let cfg = SgdConfig {
                    momentum: 0.9,
                    weight_decay: 0.05,
                    nesterov: true,
                    ..SgdConfig::default()
                };
                Box::new(Sgd::new(vec![ParamGroup::new(vec![("w".into(), v)])], cfg).unwrap())
            }),
        ),
    ];
    for (name, make) in kinds {
        let (a, b) = (mk(), mk());
        let (mut fused, mut generic) = (make(a.clone()), make(b.clone()));
        for step in 0..4 {
            let g: Vec<f32> = (0..12)
                .map(|i| (((i + 3 * step) * 11 % 7) as f32 - 3.0) * 0.1)
                .collect();
            let g = Tensor::from_vec(g, (3, 4), &dev).unwrap();
            // Same values, transposed layout: not contiguous.
            let g_nc = g.t().unwrap().contiguous().unwrap().t().unwrap();
            assert!(!g_nc.is_contiguous());
            let la = (a.as_tensor() * &g).unwrap().sum_all().unwrap();
            let mut ga = la.backward().unwrap();
            ga.insert(a.as_tensor(), g.clone());
            let lb = (b.as_tensor() * &g).unwrap().sum_all().unwrap();
            let mut gb = lb.backward().unwrap();
            gb.insert(b.as_tensor(), g_nc);
            fused.step(&ga, 0.05).unwrap();
            generic.step(&gb, 0.05).unwrap();
            let (va, vb): (Vec<f32>, Vec<f32>) = (
                a.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                b.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            );
            for (x, y) in va.iter().zip(&vb) {
                assert!((x - y).abs() < 1e-6, "{name} step {step}: {x} vs {y}");
            }
            assert!(va.iter().zip(&w0).any(|(x, w)| (x - w).abs() > 1e-3));
        }
        let (sa, sb) = (fused.state().unwrap(), generic.state().unwrap());
        assert_eq!(sa.len(), sb.len(), "{name}");
        for (k, ta) in &sa {
            let d = (ta.to_dtype(DType::F64).unwrap() - sb[k].to_dtype(DType::F64).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(d < 1e-6, "{name} state {k}: {d}");
        }
    }
}

//! ConvNeXt: the depthwise convolution op (finite differences in f64, and
//! candle's grouped convolution in f32), whole-network gradient checks,
//! golden values from PyTorch (`scripts/golden/make-convnext-vicregl-golden.py`:
//! forward maps / pooled features and every weight gradient, in f64), weights
//! in torchvision's names, seeded drop path, and input errors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use encoders::convnext::{ConvNeXt, ConvNeXtConfig};
use encoders::ops::depthwise_conv2d;
use vicreg_core::gradcheck::{check_gradients, GradCheckOptions};
use vicreg_core::model::Encoder;
use vicreg_core::{ParamStore, SeededRng};

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
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f64 {
    a.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn golden(name: &str) -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap()
}

#[test]
fn depthwise_gradients_match_finite_differences() {
    // (kernel, input shape): ConvNeXt's 7x7 on maps larger and smaller than
    // the kernel, and a 3x3 on a non-square map.
    let cases = [
        (7, [2, 3, 9, 8]),
        (7, [2, 2, 3, 2]),
        (7, [1, 2, 1, 1]),
        (3, [2, 3, 4, 6]),
    ];
    let opts = GradCheckOptions {
        max_coords_per_input: 40,
        ..Default::default()
    };
    for (i, (k, shape)) in cases.into_iter().enumerate() {
        let x = randn(10 + i as u64, &shape, DType::F64);
        let w = randn(100 + i as u64, &[shape[1], 1, k, k], DType::F64);
        let r =
            check_gradients(|xs| Ok(depthwise_conv2d(&xs[0], &xs[1])?), &[x, w], &opts).unwrap();
        assert!(r.has_grad.iter().all(|&h| h), "case {i}: missing gradient");
        assert!(
            r.max_abs_numeric.iter().all(|&m| m > 1e-3),
            "case {i}: trivial check"
        );
        r.assert_ok(1e-6)
            .unwrap_or_else(|e| panic!("case {i} k{k} on {shape:?}: {e}"));
    }
}

#[test]
fn depthwise_matches_candle_grouped_conv_in_f32() {
    for (i, shape) in [[3, 8, 14, 14], [2, 5, 7, 9], [1, 4, 3, 3]]
        .into_iter()
        .enumerate()
    {
        let c = shape[1];
        let x = Var::from_tensor(&randn(30 + i as u64, &shape, DType::F32)).unwrap();
        let w = Var::from_tensor(&randn(300 + i as u64, &[c, 1, 7, 7], DType::F32)).unwrap();
        let y = depthwise_conv2d(&x, &w).unwrap();
        let y_ref = x.conv2d(&w, 3, 1, 1, c).unwrap();
        assert_eq!(y.dims(), y_ref.dims());
        assert!(max_abs_diff(&y, &y_ref) <= 1e-5 * max_abs(&y_ref).max(1.0));
        let proj = randn(3000 + i as u64, y.dims(), DType::F32);
        let g = (&y * &proj).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w] {
            let (a, b) = (g.get(v).unwrap(), g_ref.get(v).unwrap());
            assert!(
                max_abs_diff(a, b) <= 1e-4 * max_abs(b).max(1.0),
                "case {i}: gradients differ by {}",
                max_abs_diff(a, b)
            );
        }
    }
    // bad shapes are errors, not panics
    let x = randn(1, &[1, 4, 5, 5], DType::F32);
    assert!(depthwise_conv2d(&x, &randn(2, &[4, 1, 6, 6], DType::F32)).is_err());
    assert!(depthwise_conv2d(&x, &randn(2, &[3, 1, 7, 7], DType::F32)).is_err());
}

fn tiny_cfg() -> ConvNeXtConfig {
    ConvNeXtConfig::custom([1, 1, 1, 1], [4, 4, 8, 8])
        .with_drop_path_rate(0.0)
        .with_layer_scale(0.7)
}

#[test]
fn whole_network_gradients_match_finite_differences() {
    let cfg = tiny_cfg();
    let store = ParamStore::new(5);
    let net = ConvNeXt::new(&cfg, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let named = net.named_tensors();
    // non-trivial values everywhere (LayerNorm weights 1 and biases 0 at init)
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let values: Vec<Tensor> = named
        .iter()
        .enumerate()
        .map(|(i, (_, t))| (randn(500 + i as u64, t.dims(), DType::F64) * 0.4).unwrap())
        .collect();
    let x = randn(7, &[2, 3, 32, 64], DType::F64);
    let r = check_gradients(
        |xs| {
            let map: HashMap<String, Tensor> =
                names.iter().cloned().zip(xs.iter().cloned()).collect();
            let net = ConvNeXt::new(
                &cfg,
                VarBuilder::from_tensors(map, DType::F64, &Device::Cpu),
            )
            .unwrap();
            let (maps, pooled) = net.forward_maps(&x, true)?;
            Ok(Tensor::cat(
                &[maps.flatten_all()?, pooled.flatten_all()?],
                0,
            )?)
        },
        &values,
        &GradCheckOptions {
            max_coords_per_input: 6,
            ..Default::default()
        },
    )
    .unwrap();
    println!(
        "convnext whole network: worst {:.2e} over {} tensors",
        r.worst(),
        values.len()
    );
    for (n, h) in names.iter().zip(&r.has_grad) {
        assert!(h, "{n} got no gradient");
    }
    r.assert_ok(1e-5).unwrap();
}

/// Builds the golden network (f64) with the file's weights.
fn golden_net(g: &HashMap<String, Tensor>, cfg: &ConvNeXtConfig) -> ConvNeXt {
    let store = ParamStore::new(0);
    let net = ConvNeXt::new(cfg, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let weights: HashMap<String, Tensor> = g
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("w.").map(|n| (n.to_string(), v.clone())))
        .collect();
    net.load_state_dict(&weights, Path::new("convnext_golden.safetensors"))
        .unwrap();
    net
}

#[test]
fn golden_forward_and_gradients_match_pytorch() {
    let g = golden("convnext_golden.safetensors");
    let cfg = ConvNeXtConfig::custom([1, 1, 2, 1], [8, 16, 24, 32])
        .with_drop_path_rate(0.0)
        .with_layer_scale(0.5);
    let net = golden_net(&g, &cfg);
    assert_eq!(net.num_parameters(), 31760);
    let (maps, pooled) = net.forward_maps(&g["input"], true).unwrap();
    assert_eq!(maps.dims(), g["maps"].dims());
    let e_maps = max_abs_diff(&maps, &g["maps"]);
    let e_pooled = max_abs_diff(&pooled, &g["pooled"]);
    println!("golden f64: maps {e_maps:.2e}, pooled {e_pooled:.2e}");
    assert!(e_maps < 1e-9 && e_pooled < 1e-9);
    let loss = ((&maps * &g["r_maps"]).unwrap().sum_all().unwrap()
        + (&pooled * &g["r_pooled"]).unwrap().sum_all().unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    let mut worst = 0f64;
    for (name, t) in net.named_tensors() {
        let want = &g[&format!("g.{name}")];
        let got = grads
            .get(&t)
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let e = max_abs_diff(got, want) / max_abs(want).max(1e-3);
        worst = worst.max(e);
        assert!(e < 1e-8, "{name}: relative gradient error {e:.2e}");
    }
    println!("golden f64 gradients: worst relative error {worst:.2e}");

    // f32 (the training dtype): same values within f32 precision.
    let store = ParamStore::new(0);
    let net32 = ConvNeXt::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    net32
        .load_state_dict(&net.state_dict().unwrap(), Path::new("f64 net"))
        .unwrap();
    let maps32 = net32
        .feature_maps(&g["input"].to_dtype(DType::F32).unwrap(), false)
        .unwrap();
    let e = max_abs_diff(&maps32, &g["maps"]);
    println!("golden f32: maps {e:.2e}");
    assert!(e < 1e-4 * max_abs(&g["maps"]).max(1.0));
}

#[test]
fn torchvision_weights_load_under_their_own_names() {
    let g = golden("convnext_torchvision.safetensors");
    let dir = std::env::temp_dir().join(format!("convnext-tv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("torchvision_convnext.safetensors");
    let tv: HashMap<String, Tensor> = g
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("tv.").map(|n| (n.to_string(), v.clone())))
        .collect();
    assert!(tv.contains_key("features.1.0.layer_scale"));
    candle_core::safetensors::save(&tv, &file).unwrap();
    let cfg = ConvNeXtConfig::custom([1, 1, 2, 1], [8, 16, 24, 32])
        .with_drop_path_rate(0.0)
        .with_layer_scale(1e-6);
    let net = ConvNeXt::new(
        &cfg,
        ParamStore::new(0).var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    net.load_weights(&file).unwrap();
    let (maps, pooled) = net.forward_maps(&g["input"], false).unwrap();
    assert!(max_abs_diff(&maps, &g["maps"]) < 1e-9);
    assert!(max_abs_diff(&pooled, &g["pooled"]) < 1e-9);

    // Without layer scale the same file is refused, naming the extra tensors.
    let plain = ConvNeXt::new(
        &cfg.clone().with_layer_scale(0.0),
        ParamStore::new(0).var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let e = plain.load_weights(&file).unwrap_err().to_string();
    assert!(e.contains("unexpected") && e.contains("gamma"), "{e}");

    // Official names round trip through save_safetensors, under a training
    // checkpoint's `module.backbone.` prefix too.
    let saved = dir.join("official.safetensors");
    net.save_safetensors(&saved).unwrap();
    let prefixed: HashMap<String, Tensor> = net
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (format!("module.backbone.{k}"), v))
        .chain([(
            "module.projector.0.weight".to_string(),
            Tensor::zeros((2, 2), DType::F64, &Device::Cpu).unwrap(),
        )])
        .collect();
    let ckpt = dir.join("vicregl_model.safetensors");
    candle_core::safetensors::save(&prefixed, &ckpt).unwrap();
    for path in [&saved, &ckpt] {
        let other = ConvNeXt::new(
            &cfg,
            ParamStore::new(9).var_builder(DType::F64, &Device::Cpu),
        )
        .unwrap();
        other.load_weights(path).unwrap();
        let m = other.feature_maps(&g["input"], false).unwrap();
        assert!(max_abs_diff(&m, &maps) < 1e-12);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn drop_path_is_seeded_and_off_in_eval() {
    let cfg = ConvNeXtConfig::custom([1, 1, 2, 1], [8, 8, 8, 8]).with_drop_path_rate(0.5);
    let x = randn(3, &[4, 3, 32, 32], DType::F32);
    let x2 = randn(4, &[4, 3, 32, 32], DType::F32);
    let run = |seed: u64, train: bool| {
        let store = ParamStore::new(1);
        let net = ConvNeXt::new(
            &cfg.clone().with_drop_path_seed(seed),
            store.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        (
            net.features(&x, train).unwrap(),
            net.features(&x2, train).unwrap(),
        )
    };
    // same seed and batch: same masks (also across model instances, as after a resume)
    assert_eq!(max_abs_diff(&run(7, true).0, &run(7, true).0), 0.0);
    // another seed, or another batch: other masks
    assert!(max_abs_diff(&run(7, true).0, &run(8, true).0) > 1e-6);
    let (a, b) = run(7, true);
    let (a_eval, b_eval) = run(7, false);
    let drop_pattern = |t: &Tensor, e: &Tensor| max_abs_diff(t, e);
    assert!(drop_pattern(&a, &a_eval) > 1e-6 && drop_pattern(&b, &b_eval) > 1e-6);
    // eval mode: no drop path, the seed does not matter
    assert_eq!(max_abs_diff(&run(7, false).0, &run(8, false).0), 0.0);
}

#[test]
fn atto_shapes_and_bad_inputs() {
    let cfg = ConvNeXtConfig::atto();
    let net = ConvNeXt::new(
        &cfg,
        ParamStore::new(0).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(net.repr_dim(), 320);
    assert_eq!(net.num_parameters(), 3_372_680);
    assert!(net.tensor("stages.2.5.pwconv2.weight").is_some());
    let y = net
        .forward_t(&randn(0, &[2, 3, 96, 64], DType::F32), true)
        .unwrap();
    assert_eq!(y.dims(), &[2, 320]);
    for bad in [
        randn(0, &[2, 1, 64, 64], DType::F32),
        randn(0, &[2, 3, 16, 64], DType::F32),
        randn(0, &[3, 64, 64], DType::F32),
    ] {
        let e = net.forward_t(&bad, true).unwrap_err().to_string();
        assert!(e.contains("convnext_atto"), "{e}");
    }
    let e = ConvNeXt::new(
        &ConvNeXtConfig::atto().with_drop_path_rate(2.0),
        ParamStore::new(0).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("drop_path_rate"), "{e}");
}

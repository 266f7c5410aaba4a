//! ResNet-18 against torchvision (shared/golden/README.md, section 1):
//! eval features, train features, BatchNorm running statistics after one
//! train-mode forward, and the conv1 weight gradient, on the device named by
//! `VICREG_TEST_DEVICE` (default `cpu`; e.g. `cuda:0` with a binary built with
//! `--features cuda`).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use encoders::resnet::{ResNet, ResNetConfig};
use vicreg_core::ParamStore;

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

fn shared_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for rel in ["../../shared", "../shared"] {
        let p = manifest.join(rel);
        if p.join("golden").is_dir() {
            return p;
        }
    }
    panic!("golden data not found: looked for shared/golden at ../../shared and ../shared relative to {manifest:?}");
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn resnet18_matches_torchvision() {
    let shared = shared_dir();
    let dev = test_device();
    let io: HashMap<String, Tensor> =
        candle_core::safetensors::load(shared.join("golden/resnet18_io.safetensors"), &dev)
            .unwrap();

    // The golden weights do not zero-init the residual BNs; they are loaded over our init anyway.
    let store = ParamStore::new(0);
    let cfg = ResNetConfig::resnet18().with_zero_init_residual(false);
    let net = ResNet::new(&cfg, store.var_builder(DType::F32, &dev)).unwrap();
    net.load_weights(shared.join("golden/resnet18_torchvision.safetensors"))
        .unwrap();
    assert_eq!(
        net.named_tensors().len(),
        100,
        "torchvision resnet18 has 100 tensors without fc"
    );

    let x = &io["input"];

    // Eval mode: running statistics, nothing updated.
    let fe = net.features(x, false).unwrap();
    let e_eval = max_abs_diff(&fe, &io["features_eval"]);
    println!("features_eval max abs err {e_eval:.3e}");
    assert!(
        e_eval <= 2e-4,
        "eval features differ from torchvision by {e_eval:.3e}"
    );

    // Train mode: batch statistics, running statistics updated once.
    let ft = net.features(x, true).unwrap();
    let e_train = max_abs_diff(&ft, &io["features_train"]);
    println!("features_train max abs err {e_train:.3e}");
    assert!(
        e_train <= 2e-4,
        "train features differ from torchvision by {e_train:.3e}"
    );

    let mut n_bn = 0;
    let (mut worst_mean, mut worst_var) = (0f64, 0f64);
    for (name, t) in net.named_tensors() {
        if let Some(prefix) = name.strip_suffix(".running_mean") {
            let want = &io[&format!("running_mean_after_train.{prefix}")];
            let e = max_abs_diff(&t, want);
            assert!(e <= 1e-5, "{name} after one train step differs by {e:.3e}");
            worst_mean = worst_mean.max(e);
            n_bn += 1;
        } else if let Some(prefix) = name.strip_suffix(".running_var") {
            let want = &io[&format!("running_var_after_train.{prefix}")];
            let e = max_abs_diff(&t, want);
            assert!(e <= 5e-5, "{name} after one train step differs by {e:.3e}");
            worst_var = worst_var.max(e);
        }
    }
    println!(
        "running stats max abs err: mean {worst_mean:.3e}, var {worst_var:.3e} over {n_bn} BNs"
    );
    assert_eq!(n_bn, 20, "every BatchNorm must be compared");

    // Gradient of sum(features_train * w) with respect to conv1.weight.
    let loss = (&ft * &io["grad_weights_w"]).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let w = net.tensor("conv1.weight").unwrap();
    let g = grads.get(&w).expect("conv1.weight received no gradient");
    let e_grad = max_abs_diff(g, &io["grad_conv1_weight"]);
    println!("grad_conv1_weight max abs err {e_grad:.3e}");
    assert!(
        e_grad <= 5e-2,
        "conv1 gradient differs from torchvision by {e_grad:.3e}"
    );
    assert!(
        grads.get(x).is_none(),
        "no gradient may be computed for the input images"
    );
    // Every parameter gets a gradient; running statistics do not.
    for (name, t) in net.named_tensors() {
        let has = grads.get(&t).is_some();
        assert_eq!(
            has,
            !vicreg_core::is_buffer_name(&name),
            "gradient presence wrong for {name}"
        );
    }
}

//! ResNet configurations: name parsing, presets, serde, torchvision tensor
//! names and parameter counts, official initialisation, input validation.

use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use encoders::resnet::{valid_names, BlockKind, ResNet, ResNetConfig};
use vicreg_core::model::Encoder;
use vicreg_core::ParamStore;

#[test]
fn names_parse_and_round_trip() {
    for (name, depth, width, dim) in [
        ("resnet18", 18, 1, 512),
        ("resnet34", 34, 1, 512),
        ("resnet50", 50, 1, 2048),
        ("ResNet101", 101, 1, 2048),
        ("resnet152", 152, 1, 2048),
        ("resnet50x2", 50, 2, 4096),
        ("resnet50x4", 50, 4, 8192),
        ("resnet200x2", 200, 2, 4096),
        ("resnet18x2", 18, 2, 1024),
    ] {
        let cfg: ResNetConfig = name.parse().unwrap();
        assert_eq!((cfg.depth, cfg.width), (depth, width), "{name}");
        assert_eq!(cfg.repr_dim().unwrap(), dim, "{name}");
        assert_eq!(cfg.name(), name.to_ascii_lowercase());
        assert!(cfg.zero_init_residual && cfg.in_channels == 3);
    }
    assert_eq!(ResNetConfig::resnet50x2(), "resnet50x2".parse().unwrap());
    assert_eq!(ResNetConfig::default(), ResNetConfig::resnet50());
    assert_eq!(
        ResNetConfig::resnet34().block_kind().unwrap(),
        BlockKind::Basic
    );
    assert_eq!(
        ResNetConfig::resnet152().stage_blocks().unwrap(),
        [3, 8, 36, 3]
    );
    assert_eq!(valid_names().len(), 6);
}

#[test]
fn bad_names_list_the_valid_ones() {
    for bad in [
        "resnet19",
        "vit_small",
        "resnet50x0",
        "resnet50xx",
        "resnet",
        "",
    ] {
        let msg = ResNetConfig::from_name(bad).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{bad:?}"))
                && msg.contains("resnet18, resnet34, resnet50, resnet101, resnet152"),
            "{bad}: {msg}"
        );
    }
    let cfg = ResNetConfig {
        depth: 20,
        ..Default::default()
    };
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("valid depths: 18, 34, 50"));
    assert!(ResNetConfig::resnet18().widen(0).validate().is_err());
    assert!(ResNetConfig::resnet18()
        .with_in_channels(0)
        .validate()
        .is_err());
}

#[test]
fn serde_round_trip_with_defaults() {
    let cfg = ResNetConfig::resnet50x2()
        .with_in_channels(1)
        .with_zero_init_residual(false);
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<ResNetConfig>(&json).unwrap(), cfg);
    let partial: ResNetConfig = serde_json::from_str(r#"{"depth": 18}"#).unwrap();
    assert_eq!(partial, ResNetConfig::resnet18());
    assert!(
        serde_json::from_str::<ResNetConfig>(r#"{"depht": 18}"#).is_err(),
        "unknown fields are refused"
    );
}

fn zeros(cfg: &ResNetConfig) -> ResNet {
    ResNet::new(cfg, VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap()
}

#[test]
fn parameter_counts_and_names_match_torchvision() {
    // torchvision's counts minus the fc layer (512*1000+1000 or 2048*1000+1000).
    for (cfg, params, tensors) in [
        (ResNetConfig::resnet18(), 11_176_512, 100),
        (ResNetConfig::resnet34(), 21_284_672, 180),
        (ResNetConfig::resnet50(), 23_508_032, 265),
        (ResNetConfig::resnet101(), 42_500_160, 520),
        (ResNetConfig::resnet152(), 58_143_808, 775),
    ] {
        let net = zeros(&cfg);
        assert_eq!(net.num_parameters(), params, "{}", cfg.name());
        assert_eq!(net.named_tensors().len(), tensors, "{}", cfg.name());
    }
    let net = zeros(&ResNetConfig::resnet50());
    for (name, shape) in [
        ("conv1.weight", vec![64, 3, 7, 7]),
        ("bn1.running_var", vec![64]),
        ("layer1.0.conv1.weight", vec![64, 64, 1, 1]),
        ("layer1.0.conv2.weight", vec![64, 64, 3, 3]),
        ("layer1.0.conv3.weight", vec![256, 64, 1, 1]),
        ("layer1.0.downsample.0.weight", vec![256, 64, 1, 1]),
        ("layer1.0.downsample.1.weight", vec![256]),
        ("layer2.0.conv1.weight", vec![128, 256, 1, 1]),
        ("layer2.0.downsample.0.weight", vec![512, 256, 1, 1]),
        ("layer4.2.bn3.running_mean", vec![2048]),
    ] {
        assert_eq!(
            net.tensor(name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .dims(),
            shape,
            "{name}"
        );
    }
    assert!(net.tensor("layer1.1.downsample.0.weight").is_none());
    assert!(net.tensor("fc.weight").is_none());
    // official widen: every channel count doubles
    let wide = zeros(&ResNetConfig::resnet50x2());
    assert_eq!(wide.repr_dim(), 4096);
    assert_eq!(wide.tensor("conv1.weight").unwrap().dims(), &[128, 3, 7, 7]);
    assert_eq!(
        wide.tensor("layer1.0.conv2.weight").unwrap().dims(),
        &[128, 128, 3, 3]
    );
    assert_eq!(
        wide.tensor("layer4.0.downsample.0.weight").unwrap().dims(),
        &[4096, 2048, 1, 1]
    );
}

fn resnet18() -> &'static (ParamStore, ResNet) {
    static NET: OnceLock<(ParamStore, ResNet)> = OnceLock::new();
    NET.get_or_init(|| {
        let store = ParamStore::new(4);
        let net = ResNet::new(
            &ResNetConfig::resnet18(),
            store.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        (store, net)
    })
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn official_initialisation() {
    let (store, net) = resnet18();
    // the store holds exactly the network's tensors, under the same names
    let names: Vec<String> = store.named_vars().into_iter().map(|(n, _)| n).collect();
    let mut mine: Vec<String> = net.named_tensors().into_iter().map(|(n, _)| n).collect();
    mine.sort();
    assert_eq!(names, mine);
    for (name, t) in net.named_tensors() {
        let v = values(&t);
        if name.ends_with("bn2.weight") && name.starts_with("layer") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}: zero-init residual");
        } else if name.ends_with("bn1.weight")
            || name.ends_with("downsample.1.weight")
            || name.ends_with("running_var")
        {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        } else if name.ends_with("bias") || name.ends_with("running_mean") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else {
            // Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (out * kh * kw))
            let d = t.dims();
            let want = (2.0 / (d[0] * d[2] * d[3]) as f64).sqrt();
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let tol = 4.0 * want / (2.0 * n).sqrt() + 1e-9;
            assert!(
                (std - want).abs() < tol.max(0.05 * want),
                "{name}: std {std} want {want}"
            );
            assert!(mean.abs() < 5.0 * want / n.sqrt(), "{name}: mean {mean}");
        }
    }
    // seeded: the same seed gives the same network
    let again = ResNet::new(
        &ResNetConfig::resnet18(),
        ParamStore::new(4).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(
        values(&again.tensor("layer2.0.conv1.weight").unwrap()),
        values(&net.tensor("layer2.0.conv1.weight").unwrap())
    );
}

#[test]
fn inputs_are_validated() {
    let (_, net) = resnet18();
    let dev = Device::Cpu;
    let err = |x: Tensor, train: bool| net.forward_t(&x, train).unwrap_err().to_string();
    let msg = err(
        Tensor::zeros((2, 1, 32, 32), DType::F32, &dev).unwrap(),
        false,
    );
    assert!(
        msg.contains("3 input channels") && msg.contains("[2, 1, 32, 32]"),
        "{msg}"
    );
    let msg = err(Tensor::zeros((3, 32, 32), DType::F32, &dev).unwrap(), false);
    assert!(msg.contains("(batch, 3, height, width)"), "{msg}");
    let msg = err(
        Tensor::zeros((1, 3, 32, 32), DType::F32, &dev).unwrap(),
        true,
    );
    assert!(msg.contains("more than one value per channel"), "{msg}");
    let msg = err(
        Tensor::zeros((2, 3, 8, 8), DType::U32, &dev).unwrap(),
        false,
    );
    assert!(msg.contains("floating point"), "{msg}");
    // one image is fine in eval mode, and in train mode once the last map has 2+ positions
    assert_eq!(
        net.forward_t(
            &Tensor::zeros((1, 3, 32, 32), DType::F32, &dev).unwrap(),
            false
        )
        .unwrap()
        .dims(),
        &[1, 512]
    );
    assert_eq!(
        net.features(
            &Tensor::zeros((1, 3, 40, 64), DType::F32, &dev).unwrap(),
            false
        )
        .unwrap()
        .dims(),
        &[1, 512]
    );
    let maps = net
        .feature_map(
            &Tensor::zeros((2, 3, 65, 33), DType::F32, &dev).unwrap(),
            false,
        )
        .unwrap();
    assert_eq!(maps.dims(), &[2, 512, 3, 2]);
    assert_eq!(ResNetConfig::final_spatial(65, 33), (3, 2));
}

#[test]
fn spectrogram_branch_has_one_input_channel() {
    let cfg = ResNetConfig::resnet18().with_in_channels(1);
    let net = zeros(&cfg);
    assert_eq!(net.tensor("conv1.weight").unwrap().dims(), &[64, 1, 7, 7]);
    let x = Tensor::zeros((2, 1, 64, 48), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.features(&x, true).unwrap().dims(), &[2, 512]);
}

/// torchvision v1.5: a strided bottleneck subsamples in its 3x3 conv, not in
/// the first 1x1. With an input that is non-zero only at odd (row, column)
/// positions, positive conv weights and identity BNs, the main branch sees
/// those pixels through the 3x3 window; a v1 block (stride on the 1x1) would
/// sample only even positions and output zeros.
#[test]
fn bottleneck_stride_is_on_the_3x3_conv() {
    use candle_core::ModuleT;
    use encoders::resnet::Bottleneck;
    use std::collections::HashMap;
    let dev = Device::Cpu;
    let mut shapes = Vec::new();
    Bottleneck::new(4, 2, 2, false, VarBuilder::zeros(DType::F32, &dev))
        .unwrap()
        .collect("", &mut shapes);
    let mut map = HashMap::new();
    for (name, t) in shapes {
        let v = if name.starts_with("downsample.0")
            || name.ends_with("bias")
            || name.ends_with("running_mean")
        {
            0.0
        } else {
            1.0
        };
        map.insert(
            name,
            (Tensor::ones(t.dims(), DType::F32, &dev).unwrap() * v).unwrap(),
        );
    }
    let block = Bottleneck::new(
        4,
        2,
        2,
        false,
        VarBuilder::from_tensors(map, DType::F32, &dev),
    )
    .unwrap();
    let mask: Vec<f32> = (0..8 * 8)
        .map(|i| {
            if (i / 8) % 2 == 1 && (i % 8) % 2 == 1 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let x = Tensor::from_vec(mask, (1, 1, 8, 8), &dev)
        .unwrap()
        .broadcast_as((1, 4, 8, 8))
        .unwrap()
        .contiguous()
        .unwrap();
    let y = block.forward_t(&x, false).unwrap();
    assert_eq!(y.dims(), &[1, 8, 4, 4]);
    let min = y
        .flatten_all()
        .unwrap()
        .min(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        min > 0.0,
        "every output position must see odd input pixels through the strided 3x3 conv"
    );
}

//! `--loss` selection: parsing, serde spelling and `build_loss`.

use std::str::FromStr;

use candle_core::{Device, Tensor};
use vicreg_core::loss::{build_loss, LossConfig, LossKind};

#[test]
fn parses_every_spelling_and_rejects_others() {
    for k in LossKind::ALL {
        assert_eq!(LossKind::from_str(k.as_str()).unwrap(), k);
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            format!("\"{}\"", k.as_str())
        );
        assert_eq!(
            serde_json::from_str::<LossKind>(&format!("\"{k}\"")).unwrap(),
            k
        );
    }
    assert_eq!(
        LossKind::from_str("Barlow_Twins").unwrap(),
        LossKind::BarlowTwins
    );
    let e = LossKind::from_str("moco").unwrap_err().to_string();
    assert!(e.contains("moco") && e.contains("barlow-twins"), "{e}");
    assert_eq!(LossKind::default(), LossKind::Vicreg);
    assert!(LossKind::Byol.uses_momentum_target() && !LossKind::Simsiam.uses_momentum_target());
    assert!(
        LossKind::Simsiam.needs_asymmetric_model() && !LossKind::Simclr.needs_asymmetric_model()
    );
}

#[test]
fn builds_each_loss_by_name() {
    let cfg = LossConfig::default();
    let za = Tensor::randn(0f32, 1.0, (8, 6), &Device::Cpu).unwrap();
    let zb = Tensor::randn(0f32, 1.0, (8, 6), &Device::Cpu).unwrap();
    let single: std::sync::Arc<dyn vicreg_core::collective::Collective> =
        std::sync::Arc::new(vicreg_core::collective::SingleProcess);
    for k in LossKind::ALL {
        let loss = build_loss(k, &cfg).unwrap();
        assert_eq!(loss.name(), k.as_str());
        if k.needs_multi_crop_model() {
            // two embeddings have no feature maps: a clear error, not a number
            let e = loss.compute(&za, &zb, &single).unwrap_err().to_string();
            assert!(e.contains("multi-crop"), "{e}");
            continue;
        }
        // Width 6 = 3 blocks of 2 for the packed BYOL / SimSiam layout.
        let v = loss
            .compute(&za, &zb, &single)
            .unwrap()
            .total
            .to_scalar::<f32>()
            .unwrap();
        assert!(v.is_finite() && v > 0.0, "{k}: {v}");
    }
    let mut bad = LossConfig::default();
    bad.simclr.temperature = -1.0;
    assert!(build_loss(LossKind::Simclr, &bad).is_err());
    assert!(build_loss(LossKind::Vicreg, &bad).is_ok());
}

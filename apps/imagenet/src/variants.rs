//! The loss and model variants of `--loss vicreg|barlow-twins|simclr|byol|simsiam`
//! (with `--share-weights`, `--vicreg-terms`, predictor and momentum options):
//! building the loss, the two-branch model and its trainer, and fitting it.
//!
//! Variable names in the store:
//! - symmetric losses, shared weights (the default): `backbone.*`, `projector.*`
//!   (the official checkpoint names);
//! - symmetric losses, `share-weights = false` (paper Table 5): branch A as
//!   above, branch B `backbone_b.*`, `projector_b.*`;
//! - byol / simsiam: `online.backbone.*`, `online.projector.*`, `predictor.*`,
//!   and for byol the momentum target `target.backbone.*`, `target.projector.*`.
//!
//! The encoder exported at the end (`<arch>-encoder.safetensors`) is always
//! branch A's / the online backbone.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use encoders::{is_convnext, ImageEncoder, ImageEncoderOptions};
use vicreg_core::collective::Collective;
use vicreg_core::engine::{BatchSource, TrainConfig, TrainSummary, Trainer, TrainerBuilder};
use vicreg_core::loss::{build_loss, JointLoss, LossConfig, VicRegLConfig, VicRegLLoss};
use vicreg_core::model::{
    Branch, ExpanderConfig, JointEmbedding, JointModel, MultiCropModel, MultiCropViews,
};
use vicreg_core::ParamStore;

use crate::config::PretrainConfig;

/// The settings of every loss (see [`LossSettings::loss_config`], including
/// the D.8 `vicreg-terms` weights).
///
/// [`LossSettings::loss_config`]: vicreg_core::recipe::LossSettings::loss_config
pub fn loss_config(cfg: &PretrainConfig) -> LossConfig {
    cfg.criterion.loss_config(cfg.loss(), Some(&cfg.variant))
}

/// The loss of `cfg.loss`.
pub fn loss(cfg: &PretrainConfig) -> Result<Box<dyn JointLoss>> {
    Ok(build_loss(cfg.criterion.loss, &loss_config(cfg))?)
}

/// The expander of every branch.
pub fn expander_config(cfg: &PretrainConfig) -> ExpanderConfig {
    ExpanderConfig {
        hidden_batch_norm: cfg.expander_bn,
        ..ExpanderConfig::with_mlp(&cfg.mlp)
    }
}

/// Store prefix of the exported encoder (branch A / online backbone).
pub fn backbone_prefix(cfg: &PretrainConfig) -> &'static str {
    if cfg.criterion.loss.needs_asymmetric_model() {
        "online.backbone."
    } else {
        crate::model::BACKBONE
    }
}

/// Store prefix of branch A's / the online expander.
pub fn projector_prefix(cfg: &PretrainConfig) -> &'static str {
    if cfg.criterion.loss.needs_asymmetric_model() {
        "online.projector."
    } else {
        "projector."
    }
}

/// The backbone options of `cfg` (ConvNeXt drop-path masks seeded by the run's seed).
pub fn encoder_options(cfg: &PretrainConfig) -> ImageEncoderOptions {
    ImageEncoderOptions {
        zero_init_residual: cfg.zero_init_residual,
        drop_path_rate: cfg.drop_path_rate,
        layer_scale_init_value: cfg.layer_scale,
        seed: cfg.train.seed,
    }
}

fn backbone(cfg: &PretrainConfig, vb: candle_nn::VarBuilder) -> Result<ImageEncoder> {
    Ok(ImageEncoder::from_arch(
        &cfg.arch,
        &encoder_options(cfg),
        vb,
    )?)
}

fn branch(
    cfg: &PretrainConfig,
    store: &ParamStore,
    dev: &Device,
    b: &str,
    p: &str,
) -> Result<Branch<ImageEncoder>> {
    let vb = store.var_builder(DType::F32, dev);
    Ok(Branch::new(
        backbone(cfg, vb.pp(b))?,
        &expander_config(cfg),
        vb.pp(p),
    )?)
}

/// What every model of this app trains with: `loss`, the process group,
/// `cfg`'s run directory (its config written there) and the backbone under
/// the store prefix `export` written as `<arch>-encoder.safetensors`.
fn run_settings<'m, M: JointModel>(
    builder: TrainerBuilder<'m, M>,
    cfg: &PretrainConfig,
    loss: Box<dyn JointLoss>,
    collective: Arc<dyn Collective>,
    export: &str,
) -> TrainerBuilder<'m, M> {
    builder
        .loss(loss)
        .collective(collective)
        .run_dir(&cfg.train.exp_dir, cfg)
        .export(&cfg.arch, export)
}

/// Builds the model of `cfg` in a fresh store seeded with `cfg.train.seed`, trains
/// it on `source` into `cfg.train.exp_dir` (resuming a checkpoint found there) and
/// returns the engine's summary.
pub fn fit<S: BatchSource<Tensor, Tensor>>(
    cfg: &PretrainConfig,
    train_cfg: TrainConfig,
    collective: Arc<dyn Collective>,
    source: &mut S,
    device: &Device,
) -> Result<TrainSummary> {
    cfg.check_combinations()?;
    let store = ParamStore::new(cfg.train.seed);
    let loss = loss(cfg)?;
    let export = backbone_prefix(cfg);
    if !cfg.criterion.loss.needs_asymmetric_model() {
        let net = if cfg.share_weights && cfg.expander_bn {
            // The official model (names as in its checkpoints).
            crate::model::siamese(&cfg.arch, &encoder_options(cfg), &cfg.mlp, &store, device)?
        } else {
            let a = branch(cfg, &store, device, "backbone", "projector")?;
            if cfg.share_weights {
                JointEmbedding::siamese(a)
            } else {
                JointEmbedding::new(a, branch(cfg, &store, device, "backbone_b", "projector_b")?)
            }
        };
        let builder = Trainer::builder(&net, &store, train_cfg);
        let mut t = run_settings(builder, cfg, loss, collective, export).build()?;
        return Ok(t.fit(source)?);
    }
    let branch_at = |p: &str| {
        branch(
            cfg,
            &store,
            device,
            &format!("{p}.backbone"),
            &format!("{p}.projector"),
        )
    };
    cfg.variant.fit_asymmetric(
        cfg.criterion.loss,
        &store,
        device,
        ("online", "target"),
        branch_at,
        train_cfg,
        |b| run_settings(b, cfg, loss, collective, export),
        source,
    )
}

/// The loss of a multi-crop run: VICRegL, or with `--loss vicreg` its
/// global criterion alone (multi-crop VICReg), coefficients from
/// `sim-coeff` / `std-coeff` / `cov-coeff`.
pub fn multi_crop_loss(cfg: &PretrainConfig) -> Result<VicRegLLoss> {
    let base = loss_config(cfg).vicregl;
    let alpha = if cfg.criterion.loss.needs_multi_crop_model() {
        cfg.alpha
    } else {
        1.0
    };
    Ok(VicRegLLoss::new(VicRegLConfig {
        alpha,
        num_matches: cfg.num_matches,
        l2_all_matches: cfg.l2_all_matches,
        ..base
    })?)
}

/// Builds the multi-crop model of `cfg` (backbone `backbone.*`, expander
/// `projector.*`, and with a local criterion the local expander
/// `maps_projector.*`, as the official VICRegL; both expanders use
/// LayerNorm with a ConvNeXt, BatchNorm with a ResNet, as the official
/// code) and trains it on `source` like [`fit`].
pub fn fit_multi_crop<S: BatchSource<MultiCropViews, ()>>(
    cfg: &PretrainConfig,
    train_cfg: TrainConfig,
    collective: Arc<dyn Collective>,
    source: &mut S,
    device: &Device,
) -> Result<TrainSummary> {
    cfg.check_combinations()?;
    let store = ParamStore::new(cfg.train.seed);
    let loss = multi_crop_loss(cfg)?;
    let vb = store.var_builder(DType::F32, device);
    let layer_norm = is_convnext(&cfg.arch);
    let projector = ExpanderConfig {
        layer_norm,
        ..ExpanderConfig::with_mlp(&cfg.mlp)
    };
    let maps = ExpanderConfig {
        layer_norm,
        ..ExpanderConfig::with_mlp(&cfg.maps_mlp)
    };
    let local = loss.config().alpha < 1.0;
    let net = MultiCropModel::new(
        backbone(cfg, vb.pp("backbone"))?,
        &projector,
        local.then_some(&maps),
        cfg.flip_grid,
        vb,
    )?;
    let builder = Trainer::builder(&net, &store, train_cfg);
    let mut t = run_settings(
        builder,
        cfg,
        Box::new(loss),
        collective,
        crate::model::BACKBONE,
    )
    .build()?;
    Ok(t.fit(source)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::loss::LossKind;
    use vicreg_core::recipe::{LossSettings, VariantSettings};

    fn with(loss: LossKind, vicreg_terms: bool, share_weights: bool) -> PretrainConfig {
        PretrainConfig {
            criterion: LossSettings::of(loss),
            variant: VariantSettings::with_vicreg_terms(vicreg_terms),
            share_weights,
            ..PretrainConfig::default()
        }
    }

    #[test]
    fn vicreg_terms_use_the_vicreg_ratios() {
        let cfg = with(LossKind::Byol, true, true);
        let l = loss_config(&cfg);
        assert_eq!(l.negative_cosine.std_coeff, 1.0);
        assert!((l.negative_cosine.cov_coeff - 0.04).abs() < 1e-12);
        cfg.check_combinations().unwrap();
        let e = with(LossKind::Simclr, true, true)
            .check_combinations()
            .unwrap_err();
        assert!(e.to_string().contains("vicreg-terms"), "{e}");
        let e = with(LossKind::Simsiam, false, false)
            .check_combinations()
            .unwrap_err();
        assert!(e.to_string().contains("share-weights"), "{e}");
    }
}

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

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use encoders::resnet::{ResNet, ResNetConfig};
use vicreg_core::collective::Collective;
use vicreg_core::engine::{BatchSource, TrainConfig, TrainSummary, Trainer};
use vicreg_core::loss::{build_loss, JointLoss, LossConfig};
use vicreg_core::model::{
    parse_mlp_spec, AsymmetricModel, Branch, EmaOptimizer, ExpanderConfig, JointEmbedding,
    Predictor,
};
use vicreg_core::ParamStore;

use crate::config::PretrainConfig;

/// The settings of every loss from the flat pretraining configuration
/// (see [`LossConfig::from_knobs`], including the D.8 `vicreg-terms` weights).
pub fn loss_config(cfg: &PretrainConfig) -> LossConfig {
    LossConfig::from_knobs(
        cfg.loss(),
        cfg.barlow_lambda,
        cfg.temperature,
        cfg.stop_gradient,
        cfg.vicreg_terms,
    )
}

/// The loss of `cfg.loss`.
pub fn loss(cfg: &PretrainConfig) -> Result<Box<dyn JointLoss>> {
    Ok(build_loss(cfg.loss, &loss_config(cfg))?)
}

/// Checks the combinations of variant options that make no sense.
pub fn validate(cfg: &PretrainConfig) -> Result<()> {
    let asym = cfg.loss.needs_asymmetric_model();
    if asym && !cfg.share_weights {
        bail!(
            "share-weights = false is for the symmetric losses (vicreg, barlow-twins, simclr); {} uses one online network (and a momentum copy for byol)",
            cfg.loss
        );
    }
    if cfg.vicreg_terms && !asym {
        bail!(
            "vicreg-terms adds VICReg's variance / covariance terms to byol or simsiam (paper D.8); with --loss {} it has no meaning",
            cfg.loss
        );
    }
    if cfg.vicreg_terms && cfg.sim_coeff <= 0.0 {
        bail!("vicreg-terms scales the terms by std-coeff / sim-coeff: sim-coeff must be > 0");
    }
    if cfg.predictor_hidden == Some(0) {
        bail!("predictor-hidden must be at least 1 (use predictor = false for no predictor)");
    }
    if !(0.0..=1.0).contains(&cfg.momentum_base) {
        bail!("momentum-base must be in [0, 1], got {}", cfg.momentum_base);
    }
    Ok(())
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
    if cfg.loss.needs_asymmetric_model() {
        "online.backbone."
    } else {
        crate::model::BACKBONE
    }
}

/// Store prefix of branch A's / the online expander.
pub fn projector_prefix(cfg: &PretrainConfig) -> &'static str {
    if cfg.loss.needs_asymmetric_model() {
        "online.projector."
    } else {
        "projector."
    }
}

fn resnet(cfg: &PretrainConfig, vb: candle_nn::VarBuilder) -> Result<ResNet> {
    let rc = ResNetConfig::from_name(&cfg.arch)?.with_zero_init_residual(cfg.zero_init_residual);
    Ok(ResNet::new(&rc, vb)?)
}

fn branch(
    cfg: &PretrainConfig,
    store: &ParamStore,
    dev: &Device,
    b: &str,
    p: &str,
) -> Result<Branch<ResNet>> {
    let vb = store.var_builder(DType::F32, dev);
    Ok(Branch::new(
        resnet(cfg, vb.pp(b))?,
        &expander_config(cfg),
        vb.pp(p),
    )?)
}

/// Builds the model of `cfg` in a fresh store seeded with `cfg.seed`, trains
/// it on `source` into `cfg.exp_dir` (resuming a checkpoint found there) and
/// returns the engine's summary.
pub fn fit<S: BatchSource<Tensor, Tensor>>(
    cfg: &PretrainConfig,
    train_cfg: TrainConfig,
    collective: Arc<dyn Collective>,
    source: &mut S,
    device: &Device,
) -> Result<TrainSummary> {
    validate(cfg)?;
    let store = ParamStore::new(cfg.seed);
    let loss = loss(cfg)?;
    let export = backbone_prefix(cfg);
    if !cfg.loss.needs_asymmetric_model() {
        let net = if cfg.share_weights && cfg.expander_bn {
            // The official model (names as in its checkpoints).
            crate::model::siamese(&cfg.arch, cfg.zero_init_residual, &cfg.mlp, &store, device)?
        } else {
            let a = branch(cfg, &store, device, "backbone", "projector")?;
            if cfg.share_weights {
                JointEmbedding::siamese(a)
            } else {
                JointEmbedding::new(a, branch(cfg, &store, device, "backbone_b", "projector_b")?)
            }
        };
        let mut t = Trainer::builder(&net, &store, train_cfg)
            .loss(loss)
            .collective(collective)
            .run_dir(&cfg.exp_dir, cfg)
            .export(&cfg.arch, export)
            .build()?;
        return Ok(t.fit(source)?);
    }
    let online = branch(cfg, &store, device, "online.backbone", "online.projector")?;
    let emb = *parse_mlp_spec(&cfg.mlp)?.last().unwrap_or(&1);
    let vb = store.var_builder(DType::F32, device);
    let predictor = cfg
        .predictor
        .then(|| Predictor::square(emb, cfg.predictor_hidden, vb.pp("predictor")))
        .transpose()?;
    let momentum = cfg.loss.uses_momentum_target();
    let target = if momentum {
        Some(branch(
            cfg,
            &store,
            device,
            "target.backbone",
            "target.projector",
        )?)
    } else {
        None
    };
    let net = AsymmetricModel::new(online, predictor, target)?;
    let mut builder = Trainer::builder(&net, &store, train_cfg.clone())
        .loss(loss)
        .collective(collective)
        .run_dir(&cfg.exp_dir, cfg)
        .export(&cfg.arch, export);
    if momentum {
        let steps = (source.batches_per_epoch() / train_cfg.accumulate.max(1)) * train_cfg.epochs;
        builder = builder.optimizer(Box::new(EmaOptimizer::over_store(
            &store,
            "online.",
            "target.",
            train_cfg.optimizer,
            train_cfg.weight_decay,
            cfg.momentum_base,
            steps as u64,
        )?));
    }
    Ok(builder.build()?.fit(source)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::loss::LossKind;

    #[test]
    fn vicreg_terms_use_the_vicreg_ratios() {
        let cfg = PretrainConfig {
            loss: LossKind::Byol,
            vicreg_terms: true,
            ..PretrainConfig::default()
        };
        let l = loss_config(&cfg);
        assert_eq!(l.negative_cosine.std_coeff, 1.0);
        assert!((l.negative_cosine.cov_coeff - 0.04).abs() < 1e-12);
        validate(&cfg).unwrap();
        let bad = PretrainConfig {
            loss: LossKind::Simclr,
            vicreg_terms: true,
            ..PretrainConfig::default()
        };
        assert!(validate(&bad)
            .unwrap_err()
            .to_string()
            .contains("vicreg-terms"));
        let bad = PretrainConfig {
            loss: LossKind::Simsiam,
            share_weights: false,
            ..PretrainConfig::default()
        };
        assert!(validate(&bad)
            .unwrap_err()
            .to_string()
            .contains("share-weights"));
    }
}

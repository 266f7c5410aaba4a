//! `--loss vicreg|barlow-twins|simclr|byol|simsiam` for audio: the loss, the
//! model of the pairing and weight-sharing options, and the trainer.
//!
//! - wave-spec (the paper's setting): two different encoders, never shared;
//!   symmetric losses only (byol / simsiam need two views of one encoder).
//! - wave-wave: one shared waveform branch (`wave.*`), or with
//!   `share-weights = false` a second one (`wave_b.*`); byol / simsiam use the
//!   shared branch as the online network (`wave.*`), a `predictor.*` and, for
//!   byol, a momentum copy `target.wave.*`.
//!
//! The exported encoders are always `wave-encoder.safetensors` (and
//! `spec-encoder.safetensors` for wave-spec), as `eval` expects.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use vicreg_core::collective::Collective;
use vicreg_core::engine::{BatchSource, TrainConfig, TrainSummary, Trainer};
use vicreg_core::loss::{build_loss, JointLoss, LossConfig};
use vicreg_core::model::{
    parse_mlp_spec, AsymmetricModel, Branch, EmaOptimizer, ExpanderConfig, JointEmbedding,
    Predictor,
};
use vicreg_core::ParamStore;

use crate::config::{Pairing, PretrainConfig};
use crate::model::{self, Joint, SPEC_PREFIX, WAVE_PREFIX};

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

/// Checks the combinations of loss, pairing and sharing options.
pub fn validate(cfg: &PretrainConfig) -> Result<()> {
    let asym = cfg.loss.needs_asymmetric_model();
    if asym && cfg.pairing == Pairing::SpecSpec {
        bail!(
            "--loss {} is available with --pairing wave-wave only",
            cfg.loss
        );
    }
    if cfg.pairing == Pairing::SpecSpec && cfg.share_weights == Some(false) {
        bail!("spec-spec shares one spectrogram encoder (share-weights = false is for wave-wave)");
    }
    if asym && cfg.pairing == Pairing::WaveSpec {
        bail!(
            "--loss {} needs two views through one encoder: use --pairing wave-wave (wave-spec has two different encoders)",
            cfg.loss
        );
    }
    if cfg.pairing == Pairing::WaveSpec && cfg.share_weights == Some(true) {
        bail!("share-weights = true is impossible with wave-spec (a 1-D and a 2-D encoder)");
    }
    if asym && cfg.share_weights == Some(false) {
        bail!(
            "share-weights = false is for the symmetric losses; {} uses one online network",
            cfg.loss
        );
    }
    if cfg.vicreg_terms && !asym {
        bail!(
            "vicreg-terms adds VICReg's variance / covariance terms to byol or simsiam (paper D.8), not to {}",
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

fn wave_branch(
    cfg: &PretrainConfig,
    store: &ParamStore,
    device: &Device,
    name: &str,
) -> Result<Branch<encoders::audio::ResNet1d>> {
    let vb = store.var_builder(DType::F32, device);
    Ok(Branch::new(
        model::wave_encoder(cfg, vb.pp(name).pp("encoder"))?,
        &ExpanderConfig::with_mlp(&cfg.mlp),
        vb.pp(name).pp("projector"),
    )?)
}

/// Builds the model of `cfg` (fresh store seeded with `cfg.seed`), trains it
/// on `source` into `cfg.exp_dir` (resuming a checkpoint found there).
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
    let dir = &cfg.exp_dir;
    if !cfg.loss.needs_asymmetric_model() {
        if cfg.pairing == Pairing::WaveWave && cfg.share_weights == Some(false) {
            let a = wave_branch(cfg, &store, device, "wave")?;
            let b = wave_branch(cfg, &store, device, "wave_b")?;
            let net = JointEmbedding::new(a, b);
            let mut t = Trainer::builder(&net, &store, train_cfg)
                .loss(loss)
                .collective(collective)
                .run_dir(dir, cfg)
                .export("wave", WAVE_PREFIX)
                .build()?;
            return Ok(t.fit(source)?);
        }
        return Ok(match model::joint(cfg, &store, device)? {
            Joint::WaveSpec(m) => {
                let mut t = Trainer::builder(&m, &store, train_cfg)
                    .loss(loss)
                    .collective(collective)
                    .run_dir(dir, cfg)
                    .export("wave", WAVE_PREFIX)
                    .export("spec", SPEC_PREFIX)
                    .build()?;
                t.fit(source)?
            }
            Joint::WaveWave(m) => {
                let mut t = Trainer::builder(&m, &store, train_cfg)
                    .loss(loss)
                    .collective(collective)
                    .run_dir(dir, cfg)
                    .export("wave", WAVE_PREFIX)
                    .build()?;
                t.fit(source)?
            }
            Joint::SpecSpec(m) => {
                let mut t = Trainer::builder(&m, &store, train_cfg)
                    .loss(loss)
                    .collective(collective)
                    .run_dir(dir, cfg)
                    .export("spec", SPEC_PREFIX)
                    .build()?;
                t.fit(source)?
            }
        });
    }
    let online = wave_branch(cfg, &store, device, "wave")?;
    let emb = *parse_mlp_spec(&cfg.mlp)?.last().unwrap_or(&1);
    let vb = store.var_builder(DType::F32, device);
    let predictor = cfg
        .predictor
        .then(|| Predictor::square(emb, cfg.predictor_hidden, vb.pp("predictor")))
        .transpose()?;
    let momentum = cfg.loss.uses_momentum_target();
    let target = momentum
        .then(|| wave_branch(cfg, &store, device, "target.wave"))
        .transpose()?;
    let net = AsymmetricModel::new(online, predictor, target)?;
    let mut builder = Trainer::builder(&net, &store, train_cfg.clone())
        .loss(loss)
        .collective(collective)
        .run_dir(dir, cfg)
        .export("wave", WAVE_PREFIX);
    if momentum {
        let steps = (source.batches_per_epoch() / train_cfg.accumulate.max(1)) * train_cfg.epochs;
        builder = builder.optimizer(Box::new(EmaOptimizer::over_store(
            &store,
            "wave.",
            "target.wave.",
            train_cfg.optimizer,
            train_cfg.weight_decay,
            cfg.momentum_base,
            steps as u64,
        )?));
    }
    let mut t = builder.build()?;
    Ok(t.fit(source)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::loss::LossKind;

    #[test]
    fn combinations_are_checked() {
        let ok = PretrainConfig {
            loss: LossKind::Byol,
            pairing: Pairing::WaveWave,
            vicreg_terms: true,
            ..PretrainConfig::default()
        };
        validate(&ok).unwrap();
        assert_eq!(loss_config(&ok).negative_cosine.std_coeff, 1.0);
        for (bad, word) in [
            (
                PretrainConfig {
                    loss: LossKind::Simsiam,
                    ..PretrainConfig::default()
                },
                "wave-wave",
            ),
            (
                PretrainConfig {
                    share_weights: Some(true),
                    ..PretrainConfig::default()
                },
                "share-weights",
            ),
            (
                PretrainConfig {
                    loss: LossKind::BarlowTwins,
                    vicreg_terms: true,
                    ..PretrainConfig::default()
                },
                "vicreg-terms",
            ),
        ] {
            let e = validate(&bad).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }
}

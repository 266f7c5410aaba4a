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

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use vicreg_core::collective::Collective;
use vicreg_core::engine::{BatchSource, TrainConfig, TrainSummary, Trainer, TrainerBuilder};
use vicreg_core::loss::{build_loss, JointLoss, LossConfig};
use vicreg_core::model::{Branch, ExpanderConfig, JointEmbedding, JointModel};
use vicreg_core::ParamStore;

use crate::config::{Pairing, PretrainConfig};
use crate::model::{self, Joint, SPEC_PREFIX, WAVE_PREFIX};

/// The settings of every loss (see [`LossSettings::loss_config`], including
/// the D.8 `vicreg-terms` weights).
///
/// [`LossSettings::loss_config`]: vicreg_core::recipe::LossSettings::loss_config
pub fn loss_config(cfg: &PretrainConfig) -> LossConfig {
    cfg.criterion.loss_config(cfg.loss(), Some(&cfg.variant))
}

/// The loss of `cfg.criterion.loss`.
pub fn loss(cfg: &PretrainConfig) -> Result<Box<dyn JointLoss>> {
    Ok(build_loss(cfg.criterion.loss, &loss_config(cfg))?)
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

/// Builds the model of `cfg` (fresh store seeded with `cfg.train.seed`), trains it
/// on `source` into `cfg.train.exp_dir` (resuming a checkpoint found there).
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
    let dir = &cfg.train.exp_dir;
    let wave: &[(&str, &str)] = &[("wave", WAVE_PREFIX)];
    if cfg.criterion.loss.needs_asymmetric_model() {
        return cfg.variant.fit_asymmetric(
            cfg.criterion.loss,
            &store,
            device,
            ("wave", "target.wave"),
            |name: &str| wave_branch(cfg, &store, device, name),
            train_cfg,
            |b| exports(b.loss(loss).collective(collective).run_dir(dir, cfg), wave),
            source,
        );
    }
    if cfg.pairing == Pairing::WaveWave && cfg.share_weights == Some(false) {
        let net = JointEmbedding::new(
            wave_branch(cfg, &store, device, "wave")?,
            wave_branch(cfg, &store, device, "wave_b")?,
        );
        return fit_symmetric(&net, &store, train_cfg, loss, collective, cfg, wave, source);
    }
    match model::joint(cfg, &store, device)? {
        Joint::WaveSpec(m) => {
            let both = &[("wave", WAVE_PREFIX), ("spec", SPEC_PREFIX)];
            fit_symmetric(&m, &store, train_cfg, loss, collective, cfg, both, source)
        }
        Joint::WaveWave(m) => {
            fit_symmetric(&m, &store, train_cfg, loss, collective, cfg, wave, source)
        }
        Joint::SpecSpec(m) => {
            let spec = &[("spec", SPEC_PREFIX)];
            fit_symmetric(&m, &store, train_cfg, loss, collective, cfg, spec, source)
        }
    }
}

/// `builder` exporting each `(name, store prefix)` of `list`.
fn exports<'m, M: JointModel>(
    mut builder: TrainerBuilder<'m, M>,
    list: &[(&str, &str)],
) -> TrainerBuilder<'m, M> {
    for (name, prefix) in list {
        builder = builder.export(name, prefix);
    }
    builder
}

/// Trains the symmetric model `net` (every loss but byol / simsiam).
#[allow(clippy::too_many_arguments)]
fn fit_symmetric<M, S>(
    net: &M,
    store: &ParamStore,
    train_cfg: TrainConfig,
    loss: Box<dyn JointLoss>,
    collective: Arc<dyn Collective>,
    cfg: &PretrainConfig,
    list: &[(&str, &str)],
    source: &mut S,
) -> Result<TrainSummary>
where
    M: JointModel<A = Tensor, B = Tensor>,
    S: BatchSource<Tensor, Tensor>,
{
    let builder = Trainer::builder(net, store, train_cfg)
        .loss(loss)
        .collective(collective)
        .run_dir(&cfg.train.exp_dir, cfg);
    Ok(exports(builder, list).build()?.fit(source)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vicreg_core::loss::LossKind;
    use vicreg_core::recipe::{LossSettings, VariantSettings};

    fn with(loss: LossKind, pairing: Pairing, vicreg_terms: bool) -> PretrainConfig {
        PretrainConfig {
            criterion: LossSettings::of(loss),
            variant: VariantSettings::with_vicreg_terms(vicreg_terms),
            pairing,
            ..PretrainConfig::default()
        }
    }

    #[test]
    fn combinations_are_checked() {
        let ok = with(LossKind::Byol, Pairing::WaveWave, true);
        ok.check_combinations().unwrap();
        assert_eq!(loss_config(&ok).negative_cosine.std_coeff, 1.0);
        let shared_wave_spec = PretrainConfig {
            share_weights: Some(true),
            ..PretrainConfig::default()
        };
        for (bad, word) in [
            (
                with(LossKind::Simsiam, Pairing::WaveSpec, false),
                "wave-wave",
            ),
            (shared_wave_spec, "share-weights"),
            (
                with(LossKind::BarlowTwins, Pairing::WaveSpec, true),
                "vicreg-terms",
            ),
        ] {
            let e = bad.check_combinations().unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }
}

//! The keys and the model of the variants that train two views through one
//! online encoder (`--loss byol|simsiam`: predictor, stop-gradient, momentum
//! target, the paper's D.8 `vicreg-terms`), for apps whose two branches can
//! be one encoder; [`VariantSettings::fit_asymmetric`] builds and trains
//! that model over any encoder.

use serde::{Deserialize, Serialize};

use crate::engine::{BatchSource, TrainConfig, TrainSummary, Trainer, TrainerBuilder};
use crate::limits::{check_float, check_int, FloatRange, WIDTH};
use crate::loss::LossKind;
use crate::model::{AsymmetricModel, Branch, EmaOptimizer, Encoder, Predictor};
use crate::{Error, ParamStore, Result};

/// BYOL / SimSiam settings (ignored by the symmetric losses, except that
/// `vicreg-terms` is refused with them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct VariantSettings {
    /// byol / simsiam: predictor MLP on the online branch.
    pub predictor: bool,
    /// byol / simsiam: predictor hidden width (unset: the embedding dimension).
    pub predictor_hidden: Option<usize>,
    /// byol: EMA momentum at step 0 (cosine schedule to 1).
    pub momentum_base: f64,
    /// byol / simsiam: stop-gradient on the target branch (false: the collapsing control).
    pub stop_gradient: bool,
    /// byol / simsiam: add VICReg's variance and covariance terms (paper D.8).
    pub vicreg_terms: bool,
}

impl Default for VariantSettings {
    /// The official BYOL / SimSiam settings: predictor, momentum 0.99 at step 0, stop-gradient.
    fn default() -> Self {
        Self {
            predictor: true,
            predictor_hidden: None,
            momentum_base: 0.99,
            stop_gradient: true,
            vicreg_terms: false,
        }
    }
}

impl VariantSettings {
    /// The defaults, with VICReg's variance and covariance terms added to
    /// the BYOL / SimSiam loss or not (paper D.8).
    pub fn with_vicreg_terms(vicreg_terms: bool) -> Self {
        Self {
            vicreg_terms,
            ..Self::default()
        }
    }

    /// Checks the ranges and the combinations with the loss `kind` that make
    /// no sense (`sim_coeff`: the invariance coefficient the D.8 terms are
    /// scaled by). Errors name the key.
    pub fn validate(&self, kind: LossKind, sim_coeff: f64) -> Result<()> {
        if let Some(v) = self.predictor_hidden {
            check_int("predictor-hidden", v, &WIDTH)?;
        }
        check_float("momentum-base", self.momentum_base, FloatRange::UNIT)?;
        if self.vicreg_terms && !kind.needs_asymmetric_model() {
            return Err(Error::config(format!(
                "vicreg-terms adds VICReg's variance / covariance terms to byol or simsiam (paper D.8); with --loss {kind} it has no meaning"
            )));
        }
        if self.vicreg_terms && sim_coeff <= 0.0 {
            return Err(Error::config(
                "vicreg-terms scales the terms by std-coeff / sim-coeff: sim-coeff must be > 0",
            ));
        }
        Ok(())
    }

    /// Builds the BYOL / SimSiam model of `kind` and trains it on `source`:
    /// the online branch `branch(online)`, a square predictor at
    /// `predictor.*` (if `predictor`), and for byol the momentum target
    /// `branch(target)`, updated as an EMA of the online weights (variables
    /// `{online}.*` -> `{target}.*`) by the optimizer this sets on the
    /// trainer. `configure` adds the rest (loss, collective, run dir, exports).
    #[allow(clippy::too_many_arguments)]
    pub fn fit_asymmetric<E, Er, S>(
        &self,
        kind: LossKind,
        store: &ParamStore,
        device: &candle_core::Device,
        (online, target): (&str, &str),
        branch: impl Fn(&str) -> std::result::Result<Branch<E>, Er>,
        train: TrainConfig,
        configure: impl for<'m> FnOnce(
            TrainerBuilder<'m, AsymmetricModel<E>>,
        ) -> TrainerBuilder<'m, AsymmetricModel<E>>,
        source: &mut S,
    ) -> std::result::Result<TrainSummary, Er>
    where
        E: Encoder,
        E::Input: Sized,
        Er: From<Error>,
        S: BatchSource<E::Input, E::Input>,
    {
        let online_branch = branch(online)?;
        let emb = online_branch.expander.out_dim();
        let vb = store.var_builder(candle_core::DType::F32, device);
        let predictor = self
            .predictor
            .then(|| Predictor::square(emb, self.predictor_hidden, vb.pp("predictor")))
            .transpose()?;
        let momentum = kind.uses_momentum_target();
        let target_branch = momentum.then(|| branch(target)).transpose()?;
        let net = AsymmetricModel::new(online_branch, predictor, target_branch)?;
        let mut builder = configure(Trainer::builder(&net, store, train.clone()));
        if momentum {
            let steps = (source.batches_per_epoch() / train.accumulate.max(1)) * train.epochs;
            builder = builder.optimizer(Box::new(EmaOptimizer::over_store(
                store,
                &format!("{online}."),
                &format!("{target}."),
                train.optimizer,
                train.weight_decay,
                self.momentum_base,
                steps as u64,
            )?));
        }
        Ok(builder.build()?.fit(source)?)
    }
}

/// [`VariantSettings`] as flags.
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VariantFlags {
    /// byol/simsiam: predictor on the online branch (true|false).
    #[arg(long)]
    pub predictor: Option<bool>,
    /// byol/simsiam: predictor hidden width. Range 1..=65536.
    #[arg(long, value_parser = crate::limits::int::<usize>(WIDTH))]
    pub predictor_hidden: Option<usize>,
    /// byol: EMA momentum at step 0. In [0, 1].
    #[arg(long, value_parser = crate::limits::unit_interval)]
    pub momentum_base: Option<f64>,
    /// byol/simsiam: stop-gradient on the target (true|false).
    #[arg(long)]
    pub stop_gradient: Option<bool>,
    /// byol/simsiam: add VICReg's variance/covariance terms (D.8); `--vicreg-terms` alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub vicreg_terms: Option<bool>,
}

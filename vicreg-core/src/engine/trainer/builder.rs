//! [`TrainerBuilder`]: a [`Trainer`] assembled by named steps instead of a
//! long positional argument list.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::Trainer;
use crate::collective::{Collective, SingleProcess};
use crate::engine::config::TrainConfig;
use crate::engine::run_dir::RunDir;
use crate::eval::OnlineProbe;
use crate::loss::JointLoss;
use crate::model::JointModel;
use crate::optim::{build_optimizer, Optimizer, ParamGroup};
use crate::{hash_str, Error, ParamStore, Result};

/// Builds a [`Trainer`]. Required: [`loss`](Self::loss) and
/// [`run_dir`](Self::run_dir). Defaults: one process, the optimizer of the
/// [`TrainConfig`] over every trainable variable of the store, no encoder
/// export.
///
/// See the [engine's module docs](crate::engine) for a whole run.
pub struct TrainerBuilder<'m, M: JointModel> {
    model: &'m M,
    store: ParamStore,
    cfg: TrainConfig,
    loss: Option<Box<dyn JointLoss>>,
    collective: Arc<dyn Collective>,
    run_dir: Option<(PathBuf, Result<String>)>,
    optimizer: Option<Box<dyn Optimizer>>,
    exports: Vec<(String, String)>,
}

impl<'m, M: JointModel> Trainer<'m, M> {
    /// Starts building a trainer for `model`, whose variables live in `store`,
    /// with the loop settings `cfg`.
    pub fn builder(model: &'m M, store: &ParamStore, cfg: TrainConfig) -> TrainerBuilder<'m, M> {
        TrainerBuilder {
            model,
            store: store.clone(),
            cfg,
            loss: None,
            collective: Arc::new(SingleProcess),
            run_dir: None,
            optimizer: None,
            exports: Vec::new(),
        }
    }
}

impl<'m, M: JointModel> TrainerBuilder<'m, M> {
    /// The joint-embedding loss.
    pub fn loss(mut self, loss: Box<dyn JointLoss>) -> Self {
        self.loss = Some(loss);
        self
    }

    /// The process group (default: this process alone).
    pub fn collective(mut self, collective: Arc<dyn Collective>) -> Self {
        self.collective = collective;
        self
    }

    /// The run directory (created if needed) and the app's fully resolved
    /// configuration, which rank 0 writes to its `config.toml` (any value
    /// that serializes to a TOML table).
    pub fn run_dir<C: Serialize + ?Sized>(
        mut self,
        dir: impl Into<PathBuf>,
        resolved_config: &C,
    ) -> Self {
        let dir = dir.into();
        let text = RunDir::config_toml(&dir, resolved_config);
        self.run_dir = Some((dir, text));
        self
    }

    /// The optimizer (default: `cfg.optimizer` with `cfg.weight_decay` over
    /// every trainable variable; replace it for parameter groups of your own
    /// or a wrapper such as the EMA optimizer).
    pub fn optimizer(mut self, optimizer: Box<dyn Optimizer>) -> Self {
        self.optimizer = Some(optimizer);
        self
    }

    /// At the end of the run, write `<branch>-encoder.safetensors` with every
    /// variable whose name starts with `prefix` (e.g. `"a.encoder."`), the
    /// prefix removed from the names.
    pub fn export(mut self, branch: &str, prefix: &str) -> Self {
        self.exports.push((branch.to_string(), prefix.to_string()));
        self
    }

    /// Checks the settings, creates the run directory and writes its
    /// `config.toml` (rank 0), and returns the trainer.
    pub fn build(self) -> Result<Trainer<'m, M>> {
        let loss = self
            .loss
            .ok_or_else(|| Error::config("trainer: no loss given (TrainerBuilder::loss)"))?;
        let (dir, text) = self.run_dir.ok_or_else(|| {
            Error::config("trainer: no run directory given (TrainerBuilder::run_dir)")
        })?;
        let cfg = self.cfg;
        cfg.validate()?;
        let dir = RunDir::create(dir)?;
        if self.collective.rank() == 0 {
            dir.write_config_text(&text?)?;
        }
        let trainable = self.store.trainable_vars();
        if trainable.is_empty() {
            return Err(Error::config(
                "the model has no trainable variables (build it through the ParamStore first)",
            ));
        }
        let optimizer = match self.optimizer {
            Some(o) => o,
            None => build_optimizer(
                cfg.optimizer,
                vec![ParamGroup::new(trainable.clone())],
                cfg.weight_decay,
            )?,
        };
        let probe = match &cfg.online_probe {
            Some(p) => {
                let device = trainable[0].1.device().clone();
                Some(OnlineProbe::new(
                    self.model.repr_dims().0,
                    p,
                    crate::mix64(cfg.seed ^ hash_str("online_probe")),
                    &device,
                )?)
            }
            None => None,
        };
        Ok(Trainer {
            model: self.model,
            store: self.store,
            loss,
            collective: self.collective,
            cfg,
            dir,
            optimizer,
            trainable,
            probe,
            exports: self.exports,
        })
    }
}

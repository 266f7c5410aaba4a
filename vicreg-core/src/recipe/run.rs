//! The `[run]` section of an app whose configuration has sections (e.g.
//! `apps/tabular`): [`TrainSettings`] plus the learning rate and the VICReg
//! coefficients; as flags, [`RunFlags`] (feature `cli`).

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::loss::CoeffFlags;
use super::loss::CoeffSettings;
#[cfg(feature = "cli")]
use super::train::TrainFlags;
use super::train::TrainSettings;
use crate::engine::{ResumeMode, TrainConfig};
use crate::limits::{check_float, FloatRange};
use crate::loss::VicRegConfig;
use crate::Result;

/// The settings of a VICReg run in one section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunSettings {
    /// Schedule, optimizer, seed, logging, checkpoints, device, processes.
    #[serde(flatten)]
    pub train: TrainSettings,
    /// Base learning rate; the peak is `base-lr * batch-size / 256`.
    pub base_lr: f64,
    /// The VICReg coefficients.
    #[serde(flatten)]
    pub coeffs: CoeffSettings,
}

impl Default for RunSettings {
    /// The official recipe's optimizer and coefficients (LARS, base lr 0.2,
    /// wd 1e-6, 25 / 25 / 1) at a laptop's epochs and batch.
    fn default() -> Self {
        Self {
            train: TrainSettings::default(),
            base_lr: 0.2,
            coeffs: CoeffSettings::default(),
        }
    }
}

impl RunSettings {
    /// Checks every key's range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        check_float("base-lr", self.base_lr, FloatRange::NON_NEGATIVE)?;
        self.coeffs.validate()
    }

    /// The engine's loop settings (`resume`: what to do with a checkpoint).
    pub fn train_config(&self, resume: ResumeMode) -> TrainConfig {
        self.train.train_config(self.base_lr, resume)
    }

    /// The VICReg loss coefficients.
    pub fn vicreg(&self) -> VicRegConfig {
        self.coeffs.vicreg()
    }
}

/// [`RunSettings`] as flags (every key as `--key`; unset flags leave the
/// config file's or the default value), plus `--config` and `--resume`.
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunFlags {
    #[command(flatten)]
    #[serde(flatten)]
    pub train: TrainFlags,
    /// Base learning rate (peak: base-lr * batch-size / 256). Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    pub base_lr: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub coeffs: CoeffFlags,
}

//! The loss keys of a run: which joint-embedding loss ([`LossSettings`]) and
//! the VICReg coefficients ([`CoeffSettings`]), with their flags (feature
//! `cli`).

use serde::{Deserialize, Serialize};

use super::variant::VariantSettings;
use crate::limits::{check_float, FloatRange};
use crate::loss::{LossConfig, LossKind, VicRegConfig};
use crate::Result;

/// `--loss` and the settings of the non-VICReg losses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct LossSettings {
    /// Joint-embedding loss: vicreg, barlow-twins, simclr, byol, simsiam or
    /// vicregl (image backbones with feature maps: `imagenet` only).
    pub loss: LossKind,
    /// Barlow Twins: weight of the off-diagonal term (official 0.0051).
    pub barlow_lambda: f64,
    /// SimCLR: softmax temperature.
    pub temperature: f64,
}

impl Default for LossSettings {
    /// VICReg; the official Barlow Twins lambda and SimCLR temperature.
    fn default() -> Self {
        Self {
            loss: LossKind::Vicreg,
            barlow_lambda: 0.0051,
            temperature: 0.1,
        }
    }
}

impl LossSettings {
    /// The loss `kind` with the default settings of every loss.
    pub fn of(kind: LossKind) -> Self {
        Self {
            loss: kind,
            ..Self::default()
        }
    }

    /// Checks every key's range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        check_float(
            "barlow-lambda",
            self.barlow_lambda,
            FloatRange::NON_NEGATIVE,
        )?;
        check_float("temperature", self.temperature, FloatRange::POSITIVE)
    }

    /// The settings of every loss: `vicreg` the VICReg coefficients,
    /// `variant` the BYOL / SimSiam keys (none: stop-gradient on, no D.8
    /// terms). See [`LossConfig::from_knobs`].
    pub fn loss_config(
        &self,
        vicreg: VicRegConfig,
        variant: Option<&VariantSettings>,
    ) -> LossConfig {
        let (stop_gradient, vicreg_terms) =
            variant.map_or((true, false), |v| (v.stop_gradient, v.vicreg_terms));
        LossConfig::from_knobs(
            vicreg,
            self.barlow_lambda,
            self.temperature,
            stop_gradient,
            vicreg_terms,
        )
    }
}

/// The VICReg coefficients (the paper's lambda, mu, nu).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct CoeffSettings {
    /// Invariance coefficient.
    pub sim_coeff: f64,
    /// Variance coefficient.
    pub std_coeff: f64,
    /// Covariance coefficient.
    pub cov_coeff: f64,
}

impl Default for CoeffSettings {
    /// The paper's 25 / 25 / 1.
    fn default() -> Self {
        Self {
            sim_coeff: 25.0,
            std_coeff: 25.0,
            cov_coeff: 1.0,
        }
    }
}

impl CoeffSettings {
    /// Checks that every coefficient is finite and `>= 0` (naming the key).
    pub fn validate(&self) -> Result<()> {
        for (k, v) in [
            ("sim-coeff", self.sim_coeff),
            ("std-coeff", self.std_coeff),
            ("cov-coeff", self.cov_coeff),
        ] {
            check_float(k, v, FloatRange::NON_NEGATIVE)?;
        }
        Ok(())
    }

    /// The VICReg loss with these coefficients (other settings: defaults).
    pub fn vicreg(&self) -> VicRegConfig {
        VicRegConfig {
            sim_coeff: self.sim_coeff,
            std_coeff: self.std_coeff,
            cov_coeff: self.cov_coeff,
            ..VicRegConfig::default()
        }
    }
}

/// [`LossSettings`] as flags.
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LossFlags {
    /// Loss: vicreg, barlow-twins, simclr, byol, simsiam or vicregl (byol / simsiam: two views of one encoder; vicregl: imagenet only).
    #[arg(long, value_parser = |s: &str| s.parse::<LossKind>().map_err(|e| e.to_string()))]
    pub loss: Option<LossKind>,
    /// Barlow Twins off-diagonal weight. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    pub barlow_lambda: Option<f64>,
    /// SimCLR temperature. Finite, > 0.
    #[arg(long, value_parser = crate::limits::finite_positive)]
    pub temperature: Option<f64>,
}

/// [`CoeffSettings`] as flags (`--sim-coeff`, `--std-coeff`, `--cov-coeff`).
#[cfg(feature = "cli")]
#[derive(clap::Args, Clone, Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CoeffFlags {
    /// Invariance coefficient. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    pub sim_coeff: Option<f64>,
    /// Variance coefficient. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    pub std_coeff: Option<f64>,
    /// Covariance coefficient. Finite, >= 0.
    #[arg(long, value_parser = crate::limits::finite_non_negative)]
    pub cov_coeff: Option<f64>,
}

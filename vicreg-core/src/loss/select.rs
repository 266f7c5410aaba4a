//! Picking a loss by name (`--loss vicreg|barlow-twins|simclr|byol|simsiam|vicregl`).

use serde::{Deserialize, Serialize};

use super::{
    BarlowTwinsConfig, BarlowTwinsLoss, JointLoss, NegativeCosineConfig, NegativeCosineLoss,
    SimClrConfig, SimClrLoss, VicRegConfig, VicRegLConfig, VicRegLLoss, VicRegLoss,
};
use crate::{Error, Result};

/// Which joint-embedding loss to train with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// VICReg.
    #[default]
    Vicreg,
    /// Barlow Twins.
    BarlowTwins,
    /// SimCLR / InfoNCE (NT-Xent).
    Simclr,
    /// BYOL: negative cosine, predictor, momentum target (needs an [`AsymmetricModel`](crate::model::AsymmetricModel)).
    Byol,
    /// SimSiam: negative cosine, predictor, stop-gradient, no momentum (needs an [`AsymmetricModel`](crate::model::AsymmetricModel)).
    Simsiam,
    /// VICRegL: multi-crop global VICReg + local VICReg on feature maps
    /// (needs a [`MultiCropModel`](crate::model::MultiCropModel)).
    Vicregl,
}

impl LossKind {
    /// Every kind, in `--loss` order.
    pub const ALL: [LossKind; 6] = [
        Self::Vicreg,
        Self::BarlowTwins,
        Self::Simclr,
        Self::Byol,
        Self::Simsiam,
        Self::Vicregl,
    ];

    /// The command-line / config spelling (also the loss's [`JointLoss::name`]).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Vicreg => "vicreg",
            Self::BarlowTwins => "barlow-twins",
            Self::Simclr => "simclr",
            Self::Byol => "byol",
            Self::Simsiam => "simsiam",
            Self::Vicregl => "vicregl",
        }
    }

    /// True for the losses that read every view and feature map of a
    /// [`MultiCropModel`](crate::model::MultiCropModel) (an image backbone
    /// with feature maps).
    pub fn needs_multi_crop_model(&self) -> bool {
        matches!(self, Self::Vicregl)
    }

    /// True for the losses that expect the packed `[p | z | t]` embeddings of an
    /// [`AsymmetricModel`](crate::model::AsymmetricModel) (with a predictor).
    pub fn needs_asymmetric_model(&self) -> bool {
        matches!(self, Self::Byol | Self::Simsiam)
    }

    /// True when the model should have a momentum (EMA) target branch.
    pub fn uses_momentum_target(&self) -> bool {
        matches!(self, Self::Byol)
    }
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == t || (t == "barlowtwins" && *k == Self::BarlowTwins))
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown loss {s:?}: expected vicreg, barlow-twins, simclr, byol, simsiam or vicregl"
                ))
            })
    }
}

/// The settings of every loss; [`build_loss`] uses the one of the chosen kind
/// (so a config file can hold them all and `--loss` switch between them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// VICReg coefficients.
    pub vicreg: VicRegConfig,
    /// Barlow Twins coefficients.
    pub barlow_twins: BarlowTwinsConfig,
    /// SimCLR temperature.
    pub simclr: SimClrConfig,
    /// BYOL / SimSiam options (layout, stop-gradient, added VICReg terms).
    pub negative_cosine: NegativeCosineConfig,
    /// VICRegL (and multi-crop VICReg) options.
    pub vicregl: VicRegLConfig,
}

impl LossConfig {
    /// Every loss's settings from the knobs the apps expose as flags: VICReg's
    /// coefficients, Barlow Twins' off-diagonal `lambda` (the rest official),
    /// SimCLR's temperature, and for BYOL / SimSiam the stop-gradient and, with
    /// `vicreg_terms` (paper D.8), VICReg's variance and covariance terms
    /// weighted `std_coeff / sim_coeff` and `cov_coeff / sim_coeff` relative to
    /// the cosine term (1 and 0.04 with the default 25 / 25 / 1), i.e.
    /// VICReg's ratios with the cosine loss in the invariance term's place.
    pub fn from_knobs(
        vicreg: VicRegConfig,
        barlow_lambda: f64,
        temperature: f64,
        stop_gradient: bool,
        vicreg_terms: bool,
    ) -> Self {
        let (std_coeff, cov_coeff) = if vicreg_terms && vicreg.sim_coeff > 0.0 {
            (
                vicreg.std_coeff / vicreg.sim_coeff,
                vicreg.cov_coeff / vicreg.sim_coeff,
            )
        } else {
            (0.0, 0.0)
        };
        let vicregl = VicRegLConfig {
            inv_coeff: vicreg.sim_coeff,
            var_coeff: vicreg.std_coeff,
            cov_coeff: vicreg.cov_coeff,
            ..VicRegLConfig::default()
        };
        Self {
            vicregl,
            vicreg,
            barlow_twins: BarlowTwinsConfig {
                lambda: barlow_lambda,
                ..BarlowTwinsConfig::official()
            },
            simclr: SimClrConfig { temperature },
            negative_cosine: NegativeCosineConfig {
                stop_gradient,
                ..NegativeCosineConfig::with_vicreg_terms(std_coeff, cov_coeff)
            },
        }
    }
}

/// Builds the loss of `kind` from its section of `cfg` (checked).
pub fn build_loss(kind: LossKind, cfg: &LossConfig) -> Result<Box<dyn JointLoss>> {
    Ok(match kind {
        LossKind::Vicreg => Box::new(VicRegLoss::new(cfg.vicreg.clone())?),
        LossKind::BarlowTwins => Box::new(BarlowTwinsLoss::new(cfg.barlow_twins.clone())?),
        LossKind::Simclr => Box::new(SimClrLoss::new(cfg.simclr.clone())?),
        LossKind::Byol => Box::new(NegativeCosineLoss::named(
            cfg.negative_cosine.clone(),
            "byol",
        )?),
        LossKind::Simsiam => Box::new(NegativeCosineLoss::named(
            cfg.negative_cosine.clone(),
            "simsiam",
        )?),
        LossKind::Vicregl => Box::new(VicRegLLoss::new(cfg.vicregl.clone())?),
    })
}

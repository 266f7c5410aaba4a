//! Optimizers with checkpointable state, parameter groups, and the official
//! learning-rate schedule. Variables without a gradient (BatchNorm running
//! statistics, frozen parts) are skipped.

mod adamw;
mod fused;
mod lars;
mod schedule;
mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use lars::{Lars, LarsConfig};
pub use schedule::{paper_small_batch_base_lr, LrSchedule};
pub use sgd::{Sgd, SgdConfig};

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A set of variables sharing a learning-rate multiplier and weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    /// Named variables of the group (names must be unique across groups).
    pub vars: Vec<(String, Var)>,
    /// The group's learning rate is `lr * lr_scale` (e.g. backbone vs head when fine-tuning).
    pub lr_scale: f64,
    /// Overrides the optimizer's weight decay for this group.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group with `lr_scale` 1 and the optimizer's weight decay.
    pub fn new(vars: Vec<(String, Var)>) -> Self {
        Self {
            vars,
            lr_scale: 1.0,
            weight_decay: None,
        }
    }
}

/// An optimizer whose whole state can be saved and restored.
pub trait Optimizer: Send {
    /// One update with learning rate `lr` (the schedule's value for this step).
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()>;
    /// Every state tensor, by a stable name (`<param>.momentum_buffer`, ...):
    /// a snapshot, which later steps do not change.
    fn state(&self) -> Result<HashMap<String, Tensor>>;
    /// Restores state saved by [`Optimizer::state`].
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
    /// All optimised variables, by name.
    fn vars(&self) -> Vec<(String, Var)>;
}

/// Which optimizer to build, for configs and command lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// LARS (official VICReg pretraining).
    #[default]
    Lars,
    /// SGD with momentum.
    Sgd,
    /// AdamW (decoupled weight decay).
    Adamw,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lars" => Ok(Self::Lars),
            "sgd" => Ok(Self::Sgd),
            "adamw" => Ok(Self::Adamw),
            _ => Err(Error::config(format!(
                "unknown optimizer {s:?}: expected lars, sgd or adamw"
            ))),
        }
    }
}

/// Builds an optimizer of `kind` with weight decay `wd` and otherwise the
/// defaults of each (LARS: momentum 0.9, eta 0.001; SGD: momentum 0.9; AdamW: betas 0.9/0.999).
pub fn build_optimizer(
    kind: OptimizerKind,
    groups: Vec<ParamGroup>,
    wd: f64,
) -> Result<Box<dyn Optimizer>> {
    Ok(match kind {
        OptimizerKind::Lars => Box::new(Lars::new(
            groups,
            LarsConfig {
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        OptimizerKind::Sgd => Box::new(Sgd::new(
            groups,
            SgdConfig {
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        OptimizerKind::Adamw => Box::new(AdamW::new(
            groups,
            AdamWConfig {
                weight_decay: wd,
                ..Default::default()
            },
        )?),
    })
}

pub(crate) fn check_unique(groups: &[ParamGroup]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for g in groups {
        for (n, _) in &g.vars {
            if !seen.insert(n.as_str()) {
                return Err(Error::config(format!(
                    "variable {n} appears in two parameter groups"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn scalar_f64(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

pub(crate) fn load_buffer(
    state: &HashMap<String, Tensor>,
    key: &str,
    like: &Var,
) -> Result<Option<Tensor>> {
    match state.get(key) {
        None => Ok(None),
        Some(t) => {
            if t.shape() != like.shape() {
                return Err(Error::invalid(format!(
                    "optimizer state {key}: shape {:?}, parameter {:?}",
                    t.dims(),
                    like.dims()
                )));
            }
            // A snapshot: the fused updates change the buffer in place, and
            // the caller's tensor must not change with it.
            let t = t.to_dtype(like.dtype())?.to_device(like.device())?;
            Ok(Some(fused::snapshot(&t)?))
        }
    }
}

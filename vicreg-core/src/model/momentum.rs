//! A momentum (EMA) target network (BYOL): the target's parameters follow the
//! online network's, `t <- tau t + (1 - tau) o`, after every optimizer step,
//! with `tau` rising from `base` to 1 on a cosine schedule.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::optim::Optimizer;
use crate::{is_buffer_name, Error, ParamStore, Result};

/// BYOL's momentum schedule: `tau(k) = 1 - (1 - base) (cos(pi k / K) + 1) / 2`
/// for step `k` of `K` total optimizer steps (`tau(0) = base`, `tau(K) = 1`;
/// steps past `K` keep `tau = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MomentumSchedule {
    /// Momentum at step 0 (BYOL: 0.996).
    pub base: f64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
}

impl MomentumSchedule {
    /// A schedule from `base` (in `[0, 1]`) over `total_steps` (> 0) steps.
    pub fn new(base: f64, total_steps: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&base) {
            return Err(Error::config(format!(
                "momentum base must be in [0, 1], got {base}"
            )));
        }
        if total_steps == 0 {
            return Err(Error::config("momentum schedule: total_steps must be > 0"));
        }
        Ok(Self { base, total_steps })
    }

    /// BYOL's schedule: 0.996 -> 1 over `total_steps`.
    pub fn byol(total_steps: u64) -> Result<Self> {
        Self::new(0.996, total_steps)
    }

    /// The momentum at optimizer step `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        let k = step.min(self.total_steps) as f64 / self.total_steps as f64;
        1.0 - (1.0 - self.base) * ((std::f64::consts::PI * k).cos() + 1.0) / 2.0
    }
}

/// Pairs of (target, online) variables of one [`ParamStore`]: every
/// non-buffer variable whose name starts with the target prefix is paired with
/// the online variable of the same name under the online prefix. BatchNorm
/// running statistics are not averaged: each network keeps its own.
#[derive(Clone)]
pub struct EmaTarget {
    pairs: Vec<(String, Var, Var)>,
    target_prefix: String,
}

impl EmaTarget {
    /// Pairs the variables under `target_prefix` (e.g. `"target."`) with those under
    /// `online_prefix` (e.g. `"online."`) and copies the online values into the
    /// target (the target starts as a copy of the online network).
    /// Errors if the target has no variable, or one has no online twin of the same shape.
    pub fn new(store: &ParamStore, online_prefix: &str, target_prefix: &str) -> Result<Self> {
        if online_prefix == target_prefix
            || online_prefix.starts_with(target_prefix)
            || target_prefix.starts_with(online_prefix)
        {
            return Err(Error::config(format!(
                "EMA target: prefixes {online_prefix:?} and {target_prefix:?} must not contain each other"
            )));
        }
        let all: HashMap<String, Var> = store.named_vars().into_iter().collect();
        let mut pairs = Vec::new();
        for (name, tv) in store.vars_with_prefix(target_prefix) {
            if is_buffer_name(&name) {
                continue;
            }
            let online_name = format!("{online_prefix}{}", &name[target_prefix.len()..]);
            let ov = all.get(&online_name).ok_or_else(|| {
                Error::config(format!(
                    "EMA target: {name} has no online twin {online_name}"
                ))
            })?;
            if ov.shape() != tv.shape() {
                return Err(Error::config(format!(
                    "EMA target: {name} has shape {:?} but {online_name} has {:?}",
                    tv.dims(),
                    ov.dims()
                )));
            }
            pairs.push((name, tv, ov.clone()));
        }
        if pairs.is_empty() {
            return Err(Error::config(format!(
                "EMA target: no variable under {target_prefix:?}"
            )));
        }
        let t = Self {
            pairs,
            target_prefix: target_prefix.to_string(),
        };
        t.update(0.0)?;
        Ok(t)
    }

    /// `t <- tau t + (1 - tau) o` for every pair (`tau = 0` copies the online values).
    pub fn update(&self, tau: f64) -> Result<()> {
        for (_, t, o) in &self.pairs {
            let o = o.as_tensor().detach();
            let new = if tau == 0.0 {
                o.copy()?
            } else {
                ((t.as_tensor().detach() * tau)? + (o * (1.0 - tau))?)?
            };
            t.set(&new)?;
        }
        Ok(())
    }

    /// Names of the target variables.
    pub fn target_names(&self) -> Vec<String> {
        self.pairs.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// `vars` without the target network's variables (what an optimizer should update).
    pub fn without_targets(&self, vars: Vec<(String, Var)>) -> Vec<(String, Var)> {
        vars.into_iter()
            .filter(|(n, _)| !n.starts_with(&self.target_prefix))
            .collect()
    }
}

/// Name of the EMA step counter in [`Optimizer::state`].
pub const EMA_STEP_STATE: &str = "ema.step";

/// An [`Optimizer`] that updates the EMA target after every step of the inner
/// optimizer, with the momentum of its schedule at that step. Its state is the
/// inner state plus the step counter ([`EMA_STEP_STATE`]), so resuming from a
/// checkpoint continues the schedule. Give it to the engine with
/// `Trainer::with_optimizer` (the inner optimizer should be built over the
/// online variables only, see [`EmaTarget::without_targets`]).
pub struct EmaOptimizer {
    inner: Box<dyn Optimizer>,
    target: EmaTarget,
    schedule: MomentumSchedule,
    step: u64,
}

impl EmaOptimizer {
    /// Wraps `inner`; the EMA step counter starts at 0.
    pub fn new(
        inner: Box<dyn Optimizer>,
        target: EmaTarget,
        schedule: MomentumSchedule,
    ) -> Result<Self> {
        let targets = target.target_names();
        if let Some((n, _)) = inner.vars().iter().find(|(n, _)| targets.contains(n)) {
            return Err(Error::config(format!(
                "EMA optimizer: the inner optimizer updates the target variable {n}"
            )));
        }
        Ok(Self {
            inner,
            target,
            schedule,
            step: 0,
        })
    }

    /// The usual assembly for a momentum target: pairs the variables under
    /// `online_prefix` with those under `target_prefix` in `store` (copying
    /// them), builds an optimizer of `kind` with weight decay `wd` over every
    /// trainable variable except the target's, and schedules the momentum from
    /// `momentum_base` to 1 over `total_steps` optimizer steps (BYOL's cosine).
    pub fn over_store(
        store: &ParamStore,
        online_prefix: &str,
        target_prefix: &str,
        kind: crate::optim::OptimizerKind,
        wd: f64,
        momentum_base: f64,
        total_steps: u64,
    ) -> Result<Self> {
        let target = EmaTarget::new(store, online_prefix, target_prefix)?;
        let inner = crate::optim::build_optimizer(
            kind,
            vec![crate::optim::ParamGroup::new(
                target.without_targets(store.trainable_vars()),
            )],
            wd,
        )?;
        let schedule = MomentumSchedule::new(momentum_base, total_steps.max(1))?;
        Self::new(inner, target, schedule)
    }

    /// Optimizer steps taken so far (the EMA schedule's position).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The momentum the next step will use.
    pub fn next_momentum(&self) -> f64 {
        self.schedule.at(self.step)
    }
}

impl Optimizer for EmaOptimizer {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.inner.step(grads, lr)?;
        self.target.update(self.schedule.at(self.step))?;
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut s = self.inner.state()?;
        s.insert(
            EMA_STEP_STATE.to_string(),
            Tensor::new(&[self.step as f64], &Device::Cpu)?,
        );
        Ok(s)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let t = state.get(EMA_STEP_STATE).ok_or_else(|| {
            Error::invalid(format!(
                "optimizer state has no {EMA_STEP_STATE} (not an EMA run?)"
            ))
        })?;
        let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        match v.as_slice() {
            [s] if s.is_finite() && *s >= 0.0 && s.fract() == 0.0 => self.step = *s as u64,
            _ => {
                return Err(Error::invalid(format!(
                    "{EMA_STEP_STATE} must be one non-negative integer, got {v:?}"
                )))
            }
        }
        let mut inner = state.clone();
        inner.remove(EMA_STEP_STATE);
        self.inner.load_state(&inner)
    }

    fn vars(&self) -> Vec<(String, Var)> {
        self.inner.vars()
    }
}

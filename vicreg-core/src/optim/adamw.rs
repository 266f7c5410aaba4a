//! AdamW with decoupled weight decay and parameter groups.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::{check_unique, fused, load_buffer, scalar_f64, Optimizer, ParamGroup};
use crate::{Error, Result};

/// AdamW hyper-parameters (PyTorch defaults, but no decay on 1-D parameters by default).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay: `p -= lr wd p`.
    pub weight_decay: f64,
    /// Skip weight decay on 1-D parameters (biases, norm weights).
    pub exclude_1d_from_wd: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            exclude_1d_from_wd: true,
        }
    }
}

/// AdamW as `torch.optim.AdamW` (bias-corrected moments, decoupled decay).
pub struct AdamW {
    groups: Vec<ParamGroup>,
    cfg: AdamWConfig,
    m: HashMap<String, Tensor>,
    v: HashMap<String, Tensor>,
    t: u64,
}

impl AdamW {
    /// An AdamW optimizer over `groups`.
    pub fn new(groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Result<Self> {
        check_unique(&groups)?;
        Ok(Self {
            groups,
            cfg,
            m: HashMap::new(),
            v: HashMap::new(),
            t: 0,
        })
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for group in &self.groups {
            let wd = group.weight_decay.unwrap_or(self.cfg.weight_decay);
            let glr = lr * group.lr_scale;
            for (name, var) in &group.vars {
                let Some(g) = grads.get(var.as_tensor()) else {
                    continue;
                };
                let g = &g.detach();
                let skip_wd = self.cfg.exclude_1d_from_wd && var.as_tensor().rank() == 1;
                let moments_fusable = [self.m.get(name), self.v.get(name)]
                    .iter()
                    .all(|b| b.is_none_or(|b| fused::fusable(&[var.as_tensor(), b])));
                if moments_fusable && fused::fusable(&[var.as_tensor(), g]) {
                    // One pass per buffer, in place (see `fused.rs`).
                    let p = var.as_tensor();
                    let m = match self.m.get(name) {
                        Some(m) => m.clone(),
                        None => p.zeros_like()?,
                    };
                    let v = match self.v.get(name) {
                        Some(v) => v.clone(),
                        None => p.zeros_like()?,
                    };
                    m.inplace_op2(
                        g,
                        &fused::MomentUpdate {
                            decay: b1,
                            scale: 1.0 - b1,
                            square: false,
                        },
                    )?;
                    v.inplace_op2(
                        g,
                        &fused::MomentUpdate {
                            decay: b2,
                            scale: 1.0 - b2,
                            square: true,
                        },
                    )?;
                    let wd_factor = if wd != 0.0 && !skip_wd {
                        1.0 - glr * wd
                    } else {
                        1.0
                    };
                    p.inplace_op3(
                        &m,
                        &v,
                        &fused::AdamStep {
                            lr: glr,
                            wd_factor,
                            bc1,
                            bc2,
                            eps: self.cfg.eps,
                        },
                    )?;
                    self.m.insert(name.clone(), m);
                    self.v.insert(name.clone(), v);
                    continue;
                }
                // Detached: an update built from the tracked variable would keep every
                // previous step's graph alive through the momentum buffers.
                let p = &var.as_tensor().detach();
                let p_decayed = if wd != 0.0 && !skip_wd {
                    (p * (1.0 - glr * wd))?
                } else {
                    p.clone()
                };
                let m = match self.m.get(name) {
                    Some(m) => ((m * b1)? + (g * (1.0 - b1))?)?,
                    None => (g * (1.0 - b1))?,
                };
                let v = match self.v.get(name) {
                    Some(v) => ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?,
                    None => (g.sqr()? * (1.0 - b2))?,
                };
                let denom = ((&v / bc2)?.sqrt()? + self.cfg.eps)?;
                let upd = ((&m / bc1)? / denom)?;
                var.set(&(p_decayed - (upd * glr)?)?)?;
                self.m.insert(name.clone(), m);
                self.v.insert(name.clone(), v);
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut s = HashMap::new();
        for (k, v) in &self.m {
            // Snapshots: the fused updates change the moments in place.
            s.insert(format!("{k}.exp_avg"), fused::snapshot(v)?);
        }
        for (k, v) in &self.v {
            s.insert(format!("{k}.exp_avg_sq"), fused::snapshot(v)?);
        }
        s.insert(
            "adamw.step".to_string(),
            Tensor::new(self.t as f64, &candle_core::Device::Cpu)?,
        );
        Ok(s)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.m.clear();
        self.v.clear();
        self.t = match state.get("adamw.step") {
            Some(t) => scalar_f64(t)? as u64,
            None => return Err(Error::invalid("AdamW state has no adamw.step entry")),
        };
        for group in &self.groups {
            for (name, var) in &group.vars {
                if let Some(t) = load_buffer(state, &format!("{name}.exp_avg"), var)? {
                    self.m.insert(name.clone(), t);
                }
                if let Some(t) = load_buffer(state, &format!("{name}.exp_avg_sq"), var)? {
                    self.v.insert(name.clone(), t);
                }
            }
        }
        Ok(())
    }

    fn vars(&self) -> Vec<(String, Var)> {
        self.groups.iter().flat_map(|g| g.vars.clone()).collect()
    }
}

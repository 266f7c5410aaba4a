//! SGD with momentum and weight decay (PyTorch semantics).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::{check_unique, fused, load_buffer, Optimizer, ParamGroup};
use crate::Result;

/// SGD hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Momentum coefficient (0 disables the buffer).
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Skip weight decay on 1-D parameters (biases, norm weights).
    pub exclude_1d_from_wd: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
            exclude_1d_from_wd: false,
        }
    }
}

/// `g += wd p; buf = momentum buf + g (buf = g at the first step); p -= lr buf`
/// (or `p -= lr (g + momentum buf)` with Nesterov), as `torch.optim.SGD`.
pub struct Sgd {
    groups: Vec<ParamGroup>,
    cfg: SgdConfig,
    buffers: HashMap<String, Tensor>,
}

impl Sgd {
    /// Momentum 0.9 SGD with L2 `weight_decay` over every trainable variable of
    /// `store` (the linear heads of evaluation).
    pub fn over_store(store: &crate::ParamStore, weight_decay: f64) -> Result<Self> {
        Self::new(
            vec![ParamGroup::new(store.trainable_vars())],
            SgdConfig {
                weight_decay,
                ..SgdConfig::default()
            },
        )
    }

    /// An SGD optimizer over `groups`.
    pub fn new(groups: Vec<ParamGroup>, cfg: SgdConfig) -> Result<Self> {
        check_unique(&groups)?;
        Ok(Self {
            groups,
            cfg,
            buffers: HashMap::new(),
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for group in &self.groups {
            let wd = group.weight_decay.unwrap_or(self.cfg.weight_decay);
            let glr = lr * group.lr_scale;
            for (name, var) in &group.vars {
                let Some(g) = grads.get(var.as_tensor()) else {
                    continue;
                };
                let g = &g.detach();
                let skip_wd = self.cfg.exclude_1d_from_wd && var.as_tensor().rank() == 1;
                let buf_fusable = self
                    .buffers
                    .get(name)
                    .is_none_or(|b| fused::fusable(&[var.as_tensor(), b]));
                if self.cfg.momentum != 0.0 && buf_fusable && fused::fusable(&[var.as_tensor(), g])
                {
                    // Buffer and parameter updated in place (see `fused.rs`); the first
                    // step's buffer is (g + wd p), as PyTorch's clone of the gradient.
                    let p = var.as_tensor();
                    let wd = if skip_wd { 0.0 } else { wd };
                    let (buf, decay) = match self.buffers.get(name) {
                        Some(b) => (b.clone(), self.cfg.momentum),
                        None => (p.zeros_like()?, 0.0),
                    };
                    buf.inplace_op3(
                        g,
                        p,
                        &fused::SgdBuffer {
                            momentum: decay,
                            wd,
                        },
                    )?;
                    p.inplace_op3(
                        g,
                        &buf,
                        &fused::SgdStep {
                            lr: glr,
                            wd,
                            momentum: self.cfg.momentum,
                            nesterov: self.cfg.nesterov,
                        },
                    )?;
                    self.buffers.insert(name.clone(), buf);
                    continue;
                }
                // Detached: an update built from the tracked variable would keep every
                // previous step's graph alive through the momentum buffers.
                let p = &var.as_tensor().detach();
                let g = if wd != 0.0 && !skip_wd {
                    (g + (p * wd)?)?
                } else {
                    g.clone()
                };
                let step = if self.cfg.momentum != 0.0 {
                    let buf = match self.buffers.get(name) {
                        Some(b) => ((b * self.cfg.momentum)? + &g)?,
                        None => g.clone(),
                    };
                    let s = if self.cfg.nesterov {
                        (&g + (&buf * self.cfg.momentum)?)?
                    } else {
                        buf.clone()
                    };
                    self.buffers.insert(name.clone(), buf);
                    s
                } else {
                    g
                };
                var.set(&(p - (step * glr)?)?)?;
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        // Snapshots: the fused updates change the buffers in place.
        self.buffers
            .iter()
            .map(|(k, v)| Ok((format!("{k}.momentum_buffer"), fused::snapshot(v)?)))
            .collect()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.buffers.clear();
        for group in &self.groups {
            for (name, var) in &group.vars {
                if let Some(t) = load_buffer(state, &format!("{name}.momentum_buffer"), var)? {
                    self.buffers.insert(name.clone(), t);
                }
            }
        }
        Ok(())
    }

    fn vars(&self) -> Vec<(String, Var)> {
        self.groups.iter().flat_map(|g| g.vars.clone()).collect()
    }
}

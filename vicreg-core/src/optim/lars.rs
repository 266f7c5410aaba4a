//! LARS with the semantics of the official VICReg code.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::{check_unique, fused, load_buffer, scalar_f64, Optimizer, ParamGroup};
use crate::Result;

/// LARS hyper-parameters (official defaults: momentum 0.9, eta 0.001, wd 1e-6).
#[derive(Clone, Debug, PartialEq)]
pub struct LarsConfig {
    /// Momentum coefficient.
    pub momentum: f64,
    /// Weight decay, added to the gradient before the trust ratio.
    pub weight_decay: f64,
    /// Trust coefficient eta.
    pub eta: f64,
    /// Exclude 1-D parameters (biases, norm weights) from weight decay and trust scaling (official: true).
    pub exclude_1d: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 1e-6,
            eta: 0.001,
            exclude_1d: true,
        }
    }
}

impl LarsConfig {
    /// The trust ratio `eta * ||p|| / ||g + wd p||` of norms `p_norm` and
    /// `update_norm` (1 when either is 0).
    fn trust(&self, p_norm: f64, update_norm: f64) -> f64 {
        if p_norm > 0.0 && update_norm > 0.0 {
            self.eta * p_norm / update_norm
        } else {
            1.0
        }
    }
}

/// LARS. For each parameter `p` with gradient `g` (official `exclude_bias_and_norm`):
/// if `p` is not 1-D, `g += wd p` and `g *= eta ||p|| / ||g||` (1 if a norm is 0);
/// then `mu = momentum mu + g` and `p -= lr mu`.
pub struct Lars {
    groups: Vec<ParamGroup>,
    cfg: LarsConfig,
    momentum: HashMap<String, Tensor>,
}

impl Lars {
    /// A LARS optimizer over `groups`.
    pub fn new(groups: Vec<ParamGroup>, cfg: LarsConfig) -> Result<Self> {
        check_unique(&groups)?;
        Ok(Self {
            groups,
            cfg,
            momentum: HashMap::new(),
        })
    }

    /// The trust ratio that the next step would apply to a parameter with this
    /// value and raw gradient (1 for excluded parameters).
    pub fn trust_ratio(&self, p: &Tensor, g: &Tensor, wd: f64) -> Result<f64> {
        if self.cfg.exclude_1d && p.rank() == 1 {
            return Ok(1.0);
        }
        let g = (g + (p * wd)?)?;
        let pn = scalar_f64(&p.sqr()?.sum_all()?)?.sqrt();
        let gn = scalar_f64(&g.sqr()?.sum_all()?)?.sqrt();
        Ok(self.cfg.trust(pn, gn))
    }

    /// The update of one contiguous CPU parameter in place: one pass for the
    /// two norms, one for the momentum buffer, one for the parameter (the
    /// same arithmetic as the generic path, accumulated in f64).
    fn fused_step(
        cfg: &LarsConfig,
        buffers: &mut HashMap<String, Tensor>,
        name: &str,
        (p, g): (&Tensor, &Tensor),
        wd: f64,
        lr: f64,
    ) -> Result<()> {
        let (wd, trust) = if cfg.exclude_1d && p.rank() == 1 {
            (0.0, 1.0)
        } else {
            let norms = p
                .apply_op2_no_bwd(g, &fused::LarsNorms { wd })?
                .to_vec1::<f64>()?;
            (wd, cfg.trust(norms[0].sqrt(), norms[1].sqrt()))
        };
        // The first step's buffer is the update itself (decay 0 over zeros).
        let (buf, decay) = match buffers.get(name) {
            Some(b) => (b.clone(), cfg.momentum),
            None => (p.zeros_like()?, 0.0),
        };
        buf.inplace_op3(
            g,
            p,
            &fused::LarsBuffer {
                momentum: decay,
                wd,
                trust,
            },
        )?;
        p.inplace_op2(&buf, &fused::BufferStep { lr })?;
        buffers.insert(name.to_string(), buf);
        Ok(())
    }
}

impl Optimizer for Lars {
    fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for group in &self.groups {
            let wd = group.weight_decay.unwrap_or(self.cfg.weight_decay);
            let glr = lr * group.lr_scale;
            for (name, var) in &group.vars {
                let Some(g) = grads.get(var.as_tensor()) else {
                    continue;
                };
                let g = &g.detach();
                let buf_fusable = self
                    .momentum
                    .get(name)
                    .is_none_or(|b| fused::fusable(&[var.as_tensor(), b]));
                if buf_fusable && fused::fusable(&[var.as_tensor(), g]) {
                    let pg = (var.as_tensor(), g);
                    Self::fused_step(&self.cfg, &mut self.momentum, name, pg, wd, glr)?;
                    continue;
                }
                // Detached: an update built from the tracked variable would keep every
                // previous step's graph alive through the momentum buffers.
                let p = &var.as_tensor().detach();
                let update = if self.cfg.exclude_1d && p.rank() == 1 {
                    g.clone()
                } else {
                    let g = (g + (p * wd)?)?;
                    let pn = scalar_f64(&p.sqr()?.sum_all()?)?.sqrt();
                    let gn = scalar_f64(&g.sqr()?.sum_all()?)?.sqrt();
                    (g * self.cfg.trust(pn, gn))?
                };
                let mu = match self.momentum.get(name) {
                    Some(m) => ((m * self.cfg.momentum)? + update)?,
                    None => update,
                };
                var.set(&(p - (&mu * glr)?)?)?;
                self.momentum.insert(name.clone(), mu);
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        // Snapshots: the fused updates change the buffers in place.
        self.momentum
            .iter()
            .map(|(k, v)| Ok((format!("{k}.momentum_buffer"), fused::snapshot(v)?)))
            .collect()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.momentum.clear();
        for group in &self.groups {
            for (name, var) in &group.vars {
                if let Some(t) = load_buffer(state, &format!("{name}.momentum_buffer"), var)? {
                    self.momentum.insert(name.clone(), t);
                }
            }
        }
        Ok(())
    }

    fn vars(&self) -> Vec<(String, Var)> {
        self.groups.iter().flat_map(|g| g.vars.clone()).collect()
    }
}

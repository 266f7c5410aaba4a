//! The linear probe of an evaluation as a run records it: the probe's
//! configuration, and whether its weight decay is chosen on held-out
//! training features (the test set is never looked at; see
//! [`select_weight_decay`](super::select_weight_decay)).

use serde::Serialize;

use super::features::Features;
use super::linear_probe::{linear_probe, LinearProbeConfig, ProbeResult};
use super::probe_select::{linear_probe_selected, with_min_steps};
use crate::Result;

/// A probe configuration and whether to choose its weight decay (serialized
/// flat: the configuration's keys and `select_wd`).
#[derive(Clone, Debug, Serialize)]
pub struct ProbeSettings {
    /// Epochs, lr, batch, seed, and the weight decay when it is not chosen.
    #[serde(flatten)]
    pub cfg: LinearProbeConfig,
    /// Choose the weight decay from [`WD_GRID`](super::WD_GRID) (and train
    /// at least [`MIN_PROBE_STEPS`](super::MIN_PROBE_STEPS) steps).
    pub select_wd: bool,
}

impl ProbeSettings {
    /// Trains the probe on `train`, tests on `test`; returns the result and the
    /// configuration actually used (with the chosen weight decay), e.g. to fit
    /// a [`LinearHead`](super::LinearHead) the same way.
    pub fn run(
        &self,
        train: &Features,
        test: &Features,
        classes: usize,
    ) -> Result<(ProbeResult, LinearProbeConfig)> {
        if !self.select_wd {
            return Ok((
                linear_probe(train, test, classes, &self.cfg)?,
                self.cfg.clone(),
            ));
        }
        let (r, sel) = linear_probe_selected(train, test, classes, &self.cfg)?;
        let used = LinearProbeConfig {
            weight_decay: sel.chosen,
            ..with_min_steps(&self.cfg, train.len())
        };
        Ok((r, used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn toy() -> Features {
        let x = Tensor::new(
            &[
                [1f32, 0.1],
                [0.9, -0.1],
                [1.1, 0.0],
                [0.8, 0.2],
                [1.2, -0.2],
                [-1.0, 0.2],
                [-0.8, -0.1],
                [-1.1, 0.0],
                [-0.9, 0.1],
                [-1.2, -0.2],
            ],
            &Device::Cpu,
        )
        .unwrap();
        Features::new(x, vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1]).unwrap()
    }

    #[test]
    fn a_fixed_decay_is_used_as_given_and_a_chosen_one_comes_from_the_grid() {
        let f = toy();
        let cfg = LinearProbeConfig {
            epochs: 5,
            lr: 0.5,
            weight_decay: 1e-3,
            batch_size: 4,
            ..Default::default()
        };
        let fixed = ProbeSettings {
            cfg: cfg.clone(),
            select_wd: false,
        };
        let (r, used) = fixed.run(&f, &f, 2).unwrap();
        assert_eq!(used, cfg);
        assert_eq!(r.top1, 100.0);
        let chosen = ProbeSettings {
            cfg,
            select_wd: true,
        };
        let (_, used) = chosen.run(&f, &f, 2).unwrap();
        assert!(super::super::WD_GRID.contains(&used.weight_decay));
        let json = serde_json::to_value(&chosen).unwrap();
        assert_eq!(json["select_wd"], true);
        assert_eq!(json["epochs"], 5);
    }
}

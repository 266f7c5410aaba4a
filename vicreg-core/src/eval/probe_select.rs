//! Choosing the linear probe's weight decay on held-out training features, as
//! transfer evaluations on small data sets do (SimCLR, VTAB: the L2 penalty is
//! picked on a validation split of the training set). On ImageNet-sized sets
//! the paper's fixed 1e-6 is fine; on a few hundred clips or images a
//! 512-d probe overfits without it, and the comparison between encoders
//! becomes a comparison of how much each overfits.
//!
//! The test features are never looked at: a stratified `val_frac` of the
//! training features (at least one per class with two or more samples) is held
//! out, the probe is trained on the rest once per weight decay of the grid, and
//! the weight decay with the best held-out top-1 wins (ties: the larger one).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::features::Features;
use super::linear_probe::{linear_probe, LinearProbeConfig, ProbeResult};
use crate::{Error, Result, SeededRng};

/// The weight decays tried by default.
pub const WD_GRID: [f64; 6] = [1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1];

/// Share of each class held out for the choice.
pub const VAL_FRAC: f64 = 0.2;

/// Fewest optimizer steps a probe run takes on small sets (epochs are raised
/// to reach it): 100 epochs of 2 mini-batches do not fit 512-d features.
pub const MIN_PROBE_STEPS: usize = 1000;

/// The outcome of a weight-decay choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WdSelection {
    /// The weight decay used for the final probe.
    pub chosen: f64,
    /// `(weight decay, held-out top-1 %)` for every candidate.
    pub grid: Vec<(f64, f64)>,
    /// Training features held out for the choice.
    pub held_out: usize,
}

/// `cfg` with at least [`MIN_PROBE_STEPS`] steps over `n` training samples.
pub fn with_min_steps(cfg: &LinearProbeConfig, n: usize) -> LinearProbeConfig {
    let per_epoch = n.div_ceil(cfg.batch_size.max(1)).max(1);
    LinearProbeConfig {
        epochs: cfg.epochs.max(MIN_PROBE_STEPS.div_ceil(per_epoch)),
        ..cfg.clone()
    }
}

/// Stratified split of sample indices into (fit, held out).
fn stratified_split(labels: &[usize], frac: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y].push(i);
    }
    let (mut fit, mut val) = (Vec::new(), Vec::new());
    for (c, idx) in by_class.iter().enumerate() {
        let mut rng = SeededRng::derive(seed, &[0x0077_6473_656c, c as u64]);
        let perm = rng.permutation(idx.len());
        let k = if idx.len() >= 2 {
            ((idx.len() as f64 * frac).round() as usize).clamp(1, idx.len() - 1)
        } else {
            0
        };
        for (j, &p) in perm.iter().enumerate() {
            if j < k {
                val.push(idx[p]);
            } else {
                fit.push(idx[p]);
            }
        }
    }
    fit.sort_unstable();
    val.sort_unstable();
    (fit, val)
}

fn rows(f: &Features, idx: &[usize]) -> Result<Features> {
    let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    let ids = Tensor::from_vec(ids, idx.len(), f.x.device())?;
    Features::new(
        f.x.index_select(&ids, 0)?,
        idx.iter().map(|&i| f.labels[i]).collect(),
    )
}

/// Picks the weight decay of `grid` with the best top-1 on a held-out
/// stratified `val_frac` of `train` (see the module docs).
pub fn select_weight_decay(
    train: &Features,
    num_classes: usize,
    cfg: &LinearProbeConfig,
    grid: &[f64],
    val_frac: f64,
) -> Result<WdSelection> {
    if grid.is_empty() {
        return Err(Error::config("weight-decay grid is empty"));
    }
    if !(val_frac > 0.0 && val_frac < 1.0) {
        return Err(Error::config(format!(
            "held-out fraction {val_frac} outside (0, 1)"
        )));
    }
    let (fit_idx, val_idx) = stratified_split(&train.labels, val_frac, cfg.seed);
    if val_idx.is_empty() || fit_idx.is_empty() {
        // Too few samples to hold any out: keep the configured decay.
        return Ok(WdSelection {
            chosen: cfg.weight_decay,
            grid: Vec::new(),
            held_out: 0,
        });
    }
    let (fit, val) = (rows(train, &fit_idx)?, rows(train, &val_idx)?);
    let run_cfg = with_min_steps(cfg, fit.len());
    let mut out = Vec::with_capacity(grid.len());
    for &wd in grid {
        let r = linear_probe(
            &fit,
            &val,
            num_classes,
            &LinearProbeConfig {
                weight_decay: wd,
                ..run_cfg.clone()
            },
        )?;
        out.push((wd, r.top1));
    }
    let best = out
        .iter()
        .fold(None::<(f64, f64)>, |acc, &(wd, acc1)| match acc {
            Some((bw, ba)) if ba > acc1 || (ba == acc1 && bw > wd) => Some((bw, ba)),
            _ => Some((wd, acc1)),
        })
        .map_or(cfg.weight_decay, |b| b.0);
    Ok(WdSelection {
        chosen: best,
        grid: out,
        held_out: val.len(),
    })
}

/// [`select_weight_decay`], then the probe on all of `train` with the chosen
/// decay (and at least [`MIN_PROBE_STEPS`] steps), tested on `test`.
pub fn linear_probe_selected(
    train: &Features,
    test: &Features,
    num_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<(ProbeResult, WdSelection)> {
    let sel = select_weight_decay(train, num_classes, cfg, &WD_GRID, VAL_FRAC)?;
    let final_cfg = LinearProbeConfig {
        weight_decay: sel.chosen,
        ..with_min_steps(cfg, train.len())
    };
    Ok((linear_probe(train, test, num_classes, &final_cfg)?, sel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn split_is_stratified_disjoint_and_seeded() {
        let labels: Vec<usize> = (0..50).map(|i| i % 5).collect();
        let (fit, val) = stratified_split(&labels, 0.2, 3);
        assert_eq!(val.len(), 10);
        assert_eq!(fit.len() + val.len(), 50);
        for c in 0..5 {
            assert_eq!(val.iter().filter(|&&i| labels[i] == c).count(), 2);
        }
        assert!(fit.iter().all(|i| !val.contains(i)));
        assert_eq!(stratified_split(&labels, 0.2, 3), (fit, val));
    }

    #[test]
    fn heavy_noise_dimensions_make_a_larger_decay_win() {
        // 2 informative dims + 200 pure-noise dims, 60 samples: without decay the probe
        // fits the noise; the choice must not pick the smallest decay.
        let mut rng = SeededRng::new(1);
        let n = 60;
        let d = 202;
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % 2;
            x.push(if c == 0 { 1.0 } else { -1.0 } + 0.8 * rng.normal() as f32);
            x.push(0.8 * rng.normal() as f32);
            for _ in 2..d {
                x.push(3.0 * rng.normal() as f32);
            }
            y.push(c);
        }
        let f = Features::new(Tensor::from_vec(x, (n, d), &Device::Cpu).unwrap(), y).unwrap();
        let cfg = LinearProbeConfig {
            epochs: 20,
            lr: 0.05,
            batch_size: 16,
            ..LinearProbeConfig::paper()
        };
        let sel = select_weight_decay(&f, 2, &cfg, &WD_GRID, 0.3).unwrap();
        assert_eq!(sel.grid.len(), WD_GRID.len());
        assert_eq!(sel.held_out, 18);
        let best = sel.grid.iter().map(|g| g.1).fold(0.0, f64::max);
        let chosen_acc = sel.grid.iter().find(|g| g.0 == sel.chosen).unwrap().1;
        assert_eq!(chosen_acc, best);
        assert!(with_min_steps(&cfg, 48).epochs >= MIN_PROBE_STEPS / 3);
    }
}

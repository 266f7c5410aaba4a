//! Weighted k-nearest-neighbour classification on L2-normalised features
//! (Wu et al. 2018; the weighting of DINO's `knn_classifier`).

use candle_core::DType;
use serde::{Deserialize, Serialize};

use super::features::{l2_normalize, Features};
use crate::{Error, Result};

/// k-NN settings. Defaults: k = 20 and 200, temperature 0.07 (the paper's protocol).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnConfig {
    /// Numbers of neighbours to evaluate (each capped at the training set size).
    pub ks: Vec<usize>,
    /// Temperature `T` of the vote weights `exp(cos_sim / T)`.
    pub temperature: f64,
    /// Test samples per similarity block (memory: `chunk * n_train` floats).
    pub chunk: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            ks: vec![20, 200],
            temperature: 0.07,
            chunk: 256,
        }
    }
}

/// Top-1 accuracy (%) of the k-NN classifier for one `k`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnnResult {
    /// Number of neighbours requested.
    pub k: usize,
    /// Top-1 accuracy in percent.
    pub top1: f64,
}

/// Classifies each `test` sample by the `k` most cosine-similar `train`
/// samples, each voting for its class with weight `exp(sim / T)`; the class
/// with the largest total wins (ties: the smaller class index). Neighbours with
/// equal similarity are taken in training order.
pub fn knn_classify(
    train: &Features,
    test: &Features,
    num_classes: usize,
    cfg: &KnnConfig,
) -> Result<Vec<KnnResult>> {
    if cfg.ks.is_empty() || cfg.ks.contains(&0) {
        return Err(Error::config(
            "k-NN: ks must be a non-empty list of positive numbers",
        ));
    }
    if !(cfg.temperature.is_finite() && cfg.temperature > 0.0) {
        return Err(Error::config(format!(
            "k-NN: temperature must be > 0, got {}",
            cfg.temperature
        )));
    }
    if train.dim() != test.dim() {
        return Err(Error::invalid(format!(
            "k-NN: train features have dim {}, test features {}",
            train.dim(),
            test.dim()
        )));
    }
    if let Some(&bad) = train
        .labels
        .iter()
        .chain(&test.labels)
        .find(|&&y| y >= num_classes)
    {
        return Err(Error::invalid(format!(
            "k-NN: label {bad} is out of range for {num_classes} classes"
        )));
    }
    let device = train.x.device().clone();
    let tr = l2_normalize(&train.x.to_dtype(DType::F32)?)?;
    let te = l2_normalize(&test.x.to_device(&device)?.to_dtype(DType::F32)?)?;
    let trt = tr.t()?.contiguous()?;
    let n_train = train.len();
    let kmax = cfg.ks.iter().copied().max().unwrap_or(1).min(n_train);
    let mut correct = vec![0usize; cfg.ks.len()];
    let chunk = cfg.chunk.max(1);
    let mut start = 0;
    let mut order: Vec<usize> = Vec::with_capacity(n_train);
    let mut votes = vec![0f64; num_classes];
    while start < test.len() {
        let len = chunk.min(test.len() - start);
        let sims = te.narrow(0, start, len)?.matmul(&trt)?.to_vec2::<f32>()?;
        for (row, sim) in sims.iter().enumerate() {
            let y = test.labels[start + row];
            order.clear();
            order.extend(0..n_train);
            let cmp = |a: &usize, b: &usize| sim[*b].total_cmp(&sim[*a]).then(a.cmp(b));
            if kmax < n_train {
                order.select_nth_unstable_by(kmax - 1, cmp);
                order.truncate(kmax);
            }
            order.sort_unstable_by(cmp);
            for (ki, &k) in cfg.ks.iter().enumerate() {
                votes.iter_mut().for_each(|v| *v = 0.0);
                for &j in order.iter().take(k.min(n_train)) {
                    votes[train.labels[j]] += (sim[j] as f64 / cfg.temperature).exp();
                }
                let mut best = 0;
                for c in 1..num_classes {
                    if votes[c] > votes[best] {
                        best = c;
                    }
                }
                correct[ki] += (best == y) as usize;
            }
        }
        start += len;
    }
    Ok(cfg
        .ks
        .iter()
        .zip(correct)
        .map(|(&k, c)| KnnResult {
            k,
            top1: 100.0 * c as f64 / test.len() as f64,
        })
        .collect())
}

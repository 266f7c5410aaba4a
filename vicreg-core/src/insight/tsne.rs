//! t-SNE (van der Maaten & Hinton 2008), exact: a 2-D map of representations
//! in which points that are neighbours in the representation space stay
//! neighbours. Exact O(n^2) gradients, so maps are limited to a few thousand
//! points ([`TsneConfig::max_points`]; more are subsampled with the seed).

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result, SeededRng};

/// t-SNE settings (the usual defaults of the reference implementation).
#[derive(Clone, Debug, PartialEq)]
pub struct TsneConfig {
    /// Effective number of neighbours each point's Gaussian is fitted to.
    pub perplexity: f64,
    /// Gradient-descent iterations.
    pub iterations: usize,
    /// Iterations with the attraction multiplied by `exaggeration`.
    pub exaggeration_iterations: usize,
    /// Early exaggeration factor.
    pub exaggeration: f64,
    /// Learning rate; `None`: `max(n / exaggeration / 4, 50)` (the "auto" rule).
    pub learning_rate: Option<f64>,
    /// Seed of the initial layout (and of the subsample).
    pub seed: u64,
    /// Largest number of points mapped; larger inputs are subsampled.
    pub max_points: usize,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 750,
            exaggeration_iterations: 250,
            exaggeration: 12.0,
            learning_rate: None,
            seed: 0,
            max_points: 2000,
        }
    }
}

/// The rows of `x` that [`tsne`] maps: all of them, or `max_points` of them
/// drawn with `seed` (in increasing order).
pub fn subsample(n: usize, max_points: usize, seed: u64) -> Vec<usize> {
    if n <= max_points {
        return (0..n).collect();
    }
    let mut idx = SeededRng::for_name(seed, "tsne-subsample").permutation(n);
    idx.truncate(max_points);
    idx.sort_unstable();
    idx
}

/// Maps the `(n, d)` matrix `x` (rows: points) to `(n, 2)` coordinates,
/// returned row-major as `[y0x, y0y, y1x, ...]`. `x` must have at most
/// `cfg.max_points` rows (see [`subsample`]) and more rows than `3 *
/// perplexity` allows neighbours for (at least 4 points).
pub fn tsne(x: &Tensor, cfg: &TsneConfig) -> Result<Vec<f32>> {
    let (n, _) = x.dims2()?;
    if n < 4 || n > cfg.max_points {
        return Err(Error::invalid(format!(
            "t-SNE maps 4 to {} points, got {n}",
            cfg.max_points
        )));
    }
    if !(cfg.perplexity.is_finite() && cfg.perplexity >= 1.0) {
        return Err(Error::invalid("t-SNE perplexity must be >= 1"));
    }
    let d2 = squared_distances(x)?;
    let p = affinities(&d2, n, cfg.perplexity.min((n - 1) as f64 / 3.0).max(1.0));
    Ok(optimize(&p, n, cfg))
}

/// Pairwise squared Euclidean distances of the rows of `x`, `(n * n)` row-major.
fn squared_distances(x: &Tensor) -> Result<Vec<f64>> {
    let x = x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let (n, _) = x.dims2()?;
    let gram: Vec<f32> = x.matmul(&x.t()?)?.flatten_all()?.to_vec1()?;
    let norms: Vec<f64> = (0..n).map(|i| gram[i * n + i] as f64).collect();
    Ok((0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            (norms[i] + norms[j] - 2.0 * gram[k] as f64).max(0.0)
        })
        .collect())
}

/// Symmetric joint probabilities `p_ij`: per point, a Gaussian whose
/// bandwidth gives the target perplexity (binary search on its precision).
fn affinities(d2: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        let row = &d2[i * n..(i + 1) * n];
        let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
        // Distances relative to the nearest neighbour keep exp() in range.
        let dmin = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &v)| v)
            .fold(f64::INFINITY, f64::min);
        let mut probs = vec![0.0f64; n];
        for _ in 0..64 {
            let mut sum = 0.0;
            let mut weighted = 0.0;
            for j in 0..n {
                let v = if j == i {
                    0.0
                } else {
                    (-(row[j] - dmin) * beta).exp()
                };
                probs[j] = v;
                sum += v;
                weighted += v * (row[j] - dmin);
            }
            if sum <= 0.0 {
                break;
            }
            // Entropy of the row in nats.
            let h = sum.ln() + beta * weighted / sum;
            for v in probs.iter_mut() {
                *v /= sum;
            }
            let diff = h - target;
            if diff.abs() < 1e-5 {
                break;
            }
            if diff > 0.0 {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
        p[i * n..(i + 1) * n].copy_from_slice(&probs);
    }
    let mut joint = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            joint[i * n + j] = ((p[i * n + j] + p[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    joint
}

/// Gradient descent with momentum and per-coordinate gains.
fn optimize(p: &[f64], n: usize, cfg: &TsneConfig) -> Vec<f32> {
    let mut rng = SeededRng::for_name(cfg.seed, "tsne-init");
    let mut y: Vec<f64> = (0..2 * n).map(|_| rng.normal() * 1e-4).collect();
    let mut update = vec![0.0f64; 2 * n];
    let mut gains = vec![1.0f64; 2 * n];
    let lr = cfg
        .learning_rate
        .unwrap_or_else(|| (n as f64 / cfg.exaggeration / 4.0).max(50.0));
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(8);
    for it in 0..cfg.iterations {
        let exaggerate = it < cfg.exaggeration_iterations;
        let ex = if exaggerate { cfg.exaggeration } else { 1.0 };
        let momentum = if exaggerate { 0.5 } else { 0.8 };
        let grad = gradient(p, &y, n, ex, threads);
        for k in 0..2 * n {
            let same_sign = (grad[k] > 0.0) == (update[k] > 0.0);
            gains[k] = if same_sign {
                (gains[k] * 0.8).max(0.01)
            } else {
                gains[k] + 0.2
            };
            update[k] = momentum * update[k] - lr * gains[k] * grad[k];
            y[k] += update[k];
        }
        // Keep the map centred.
        for c in 0..2 {
            let mean = (0..n).map(|i| y[2 * i + c]).sum::<f64>() / n as f64;
            for i in 0..n {
                y[2 * i + c] -= mean;
            }
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// The t-SNE gradient `4 sum_j (ex * p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2)`,
/// rows split over `threads` threads.
fn gradient(p: &[f64], y: &[f64], n: usize, ex: f64, threads: usize) -> Vec<f64> {
    // Unnormalised Student-t kernel and its sum over all pairs.
    let kernel = |i: usize, j: usize| {
        let dx = y[2 * i] - y[2 * j];
        let dy = y[2 * i + 1] - y[2 * j + 1];
        1.0 / (1.0 + dx * dx + dy * dy)
    };
    let chunk = n.div_ceil(threads.max(1));
    // Per-row sums, added in row order: the same map whatever the thread count.
    let mut row_sums = vec![0.0f64; n];
    std::thread::scope(|s| {
        for (c, out) in row_sums.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                for (r, acc) in out.iter_mut().enumerate() {
                    let i = c * chunk + r;
                    *acc = (0..n).filter(|&j| j != i).map(|j| kernel(i, j)).sum();
                }
            });
        }
    });
    let z: f64 = row_sums.iter().sum();
    let mut grad = vec![0.0f64; 2 * n];
    std::thread::scope(|s| {
        for (c, out) in grad.chunks_mut(2 * chunk).enumerate() {
            let start = c * chunk;
            s.spawn(move || {
                for (r, g) in out.chunks_mut(2).enumerate() {
                    let i = start + r;
                    let (mut gx, mut gy) = (0.0, 0.0);
                    for j in 0..n {
                        if i == j {
                            continue;
                        }
                        let k = kernel(i, j);
                        let m = (ex * p[i * n + j] - k / z) * k;
                        gx += m * (y[2 * i] - y[2 * j]);
                        gy += m * (y[2 * i + 1] - y[2 * j + 1]);
                    }
                    g[0] = 4.0 * gx;
                    g[1] = 4.0 * gy;
                }
            });
        }
    });
    grad
}

/// Leave-one-out k-nearest-neighbour accuracy of `labels` on the 2-D map
/// `y` (`[x0, y0, x1, y1, ...]`): how well the map keeps the classes apart.
pub fn knn_accuracy_2d(y: &[f32], labels: &[usize], k: usize) -> f64 {
    let n = labels.len().min(y.len() / 2);
    if n < 2 {
        return 0.0;
    }
    let classes = labels.iter().copied().max().unwrap_or(0) + 1;
    let mut correct = 0usize;
    for i in 0..n {
        let mut d: Vec<(f32, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let dx = y[2 * i] - y[2 * j];
                let dy = y[2 * i + 1] - y[2 * j + 1];
                (dx * dx + dy * dy, labels[j])
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut votes = vec![0usize; classes];
        for &(_, l) in d.iter().take(k) {
            votes[l] += 1;
        }
        let best = (0..classes).max_by_key(|&c| (votes[c], usize::MAX - c));
        correct += usize::from(best == Some(labels[i]));
    }
    correct as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four well-separated Gaussian blobs in 32 dimensions stay separated in
    /// the map, and the same seed gives the same map.
    #[test]
    fn separated_blobs_stay_separated_and_maps_are_reproducible() {
        let (per, dim, classes) = (30usize, 32usize, 4usize);
        let mut rng = SeededRng::new(7);
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for c in 0..classes {
            for _ in 0..per {
                for d in 0..dim {
                    let centre = if d % classes == c { 10.0 } else { 0.0 };
                    data.push((centre + rng.normal()) as f32);
                }
                labels.push(c);
            }
        }
        let x = Tensor::from_vec(data, (per * classes, dim), &Device::Cpu).unwrap();
        let cfg = TsneConfig {
            iterations: 400,
            ..TsneConfig::default()
        };
        let y = tsne(&x, &cfg).unwrap();
        assert_eq!(y.len(), 2 * per * classes);
        assert!(y.iter().all(|v| v.is_finite()));
        let acc = knn_accuracy_2d(&y, &labels, 5);
        assert!(acc > 0.97, "2-D 5-NN accuracy {acc}");
        assert_eq!(tsne(&x, &cfg).unwrap(), y);
        // Shuffled labels are not separated: the measure itself is meaningful.
        let mut shuffled = labels.clone();
        SeededRng::new(1).shuffle(&mut shuffled);
        assert!(knn_accuracy_2d(&y, &shuffled, 5) < 0.6);
    }

    #[test]
    fn subsample_is_seeded_and_bounded() {
        assert_eq!(subsample(5, 10, 0), vec![0, 1, 2, 3, 4]);
        let a = subsample(1000, 100, 3);
        assert_eq!(a.len(), 100);
        assert_eq!(a, subsample(1000, 100, 3));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
    }
}

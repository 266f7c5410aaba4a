//! Collapse diagnostics on `(batch, dim)` embeddings or representations.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

fn as_f64_2d(z: &Tensor) -> Result<(Vec<f64>, usize, usize)> {
    let (b, d) = z
        .dims2()
        .map_err(|_| Error::invalid(format!("expected (batch, dim), got {:?}", z.dims())))?;
    if b < 2 {
        return Err(Error::invalid(format!(
            "diagnostics need a batch of at least 2, got {b}"
        )));
    }
    let v = z
        .detach()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    Ok((v, b, d))
}

/// Per-column mean and unbiased std of a row-major `(b, d)` matrix.
fn column_mean_std(v: &[f64], b: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for i in 0..b {
        for j in 0..d {
            mean[j] += v[i * d + j];
        }
    }
    mean.iter_mut().for_each(|m| *m /= b as f64);
    let mut var = vec![0.0; d];
    for i in 0..b {
        for j in 0..d {
            let c = v[i * d + j] - mean[j];
            var[j] += c * c;
        }
    }
    let std = var.iter().map(|s| (s / (b as f64 - 1.0)).sqrt()).collect();
    (mean, std)
}

/// Per-dimension standard deviation (unbiased) summarised over dimensions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StdSummary {
    /// Mean over dimensions of the per-dimension std.
    pub mean: f64,
    /// Smallest per-dimension std.
    pub min: f64,
}

/// Per-dimension std over the batch: a collapsed embedding has std ~ 0.
pub fn embedding_std(z: &Tensor) -> Result<StdSummary> {
    let (v, b, d) = as_f64_2d(z)?;
    let (_, stds) = column_mean_std(&v, b, d);
    Ok(StdSummary {
        mean: stds.iter().sum::<f64>() / d as f64,
        min: stds.iter().cloned().fold(f64::INFINITY, f64::min),
    })
}

/// Average correlation coefficient (VICRegL's `correlation_metric`): standardise
/// each dimension, `x = (z - mean) / (std + 1e-5)`, `C = x^T x / (N - 1)`, and
/// return the signed mean of the off-diagonal entries of `C`. Computed in
/// O(N D) from `sum(C) = |sum_j x_j|^2 / (N - 1)` and `trace(C)`.
pub fn average_correlation(z: &Tensor) -> Result<f64> {
    let (v, b, d) = as_f64_2d(z)?;
    if d < 2 {
        return Ok(0.0);
    }
    let (mean, std) = column_mean_std(&v, b, d);
    let std: Vec<f64> = std.iter().map(|s| s + 1e-5).collect();
    let mut total = 0.0;
    let mut trace = 0.0;
    for i in 0..b {
        let mut row_sum = 0.0;
        for j in 0..d {
            let x = (v[i * d + j] - mean[j]) / std[j];
            row_sum += x;
            trace += x * x;
        }
        total += row_sum * row_sum;
    }
    let n1 = b as f64 - 1.0;
    Ok((total / n1 - trace / n1) / (d as f64 * (d as f64 - 1.0)))
}

/// Mean absolute off-diagonal correlation coefficient (the "average
/// correlation coefficient" of the VICReg paper's Figures 4-5, where it is
/// plotted for representations and embeddings): standardise each dimension,
/// `x = (z - mean) / (std + 1e-5)` (unbiased std), `C = x^T x / (N - 1)`, and
/// return `sum_{i != j} |C_ij| / (D (D - 1))`, in `[0, 1]` (up to the `1e-5`).
/// Unlike the signed [`average_correlation`], positive and negative
/// correlations do not cancel. O(N D^2) time, O(D^2) memory (the `(D, D)`
/// matrix); `D < 2` gives 0.
pub fn average_abs_correlation(z: &Tensor) -> Result<f64> {
    let (v, b, d) = as_f64_2d(z)?;
    if d < 2 {
        return Ok(0.0);
    }
    let (mean, std) = column_mean_std(&v, b, d);
    let std: Vec<f64> = std.iter().map(|s| s + 1e-5).collect();
    let x: Vec<f64> = (0..b * d)
        .map(|k| (v[k] - mean[k % d]) / std[k % d])
        .collect();
    let m = nalgebra::DMatrix::from_row_slice(b, d, &x);
    let c = m.transpose() * &m / (b as f64 - 1.0);
    let mut total = 0.0;
    for i in 0..d {
        for j in 0..d {
            if i != j {
                total += c[(i, j)].abs();
            }
        }
    }
    Ok(total / (d as f64 * (d as f64 - 1.0)))
}

/// Effective rank (RankMe, Garrido et al. 2023): `exp(-sum_k p_k log p_k)` with
/// `p_k = s_k / sum(s) + 1e-7` over the singular values `s` of `z` (not centred).
/// Between 1 (collapsed to a line) and `min(batch, dim)`.
pub fn effective_rank(z: &Tensor) -> Result<f64> {
    let (v, b, d) = as_f64_2d(z)?;
    // Singular values are the square roots of the eigenvalues of the smaller Gram matrix.
    let m = nalgebra::DMatrix::from_row_slice(b, d, &v);
    let gram = if b <= d {
        &m * m.transpose()
    } else {
        m.transpose() * &m
    };
    let eig = nalgebra::SymmetricEigen::new(gram);
    let s: Vec<f64> = eig.eigenvalues.iter().map(|l| l.max(0.0).sqrt()).collect();
    let sum: f64 = s.iter().sum();
    if sum <= 0.0 {
        return Ok(1.0);
    }
    let h: f64 = s
        .iter()
        .map(|x| {
            let p = x / sum + 1e-7;
            -p * p.ln()
        })
        .sum();
    Ok(h.exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn collapsed_and_decorrelated_embeddings() {
        let dev = Device::Cpu;
        let mut rng = crate::SeededRng::new(1);
        let vals: Vec<f32> = (0..256 * 16).map(|_| rng.normal() as f32).collect();
        let z = Tensor::from_vec(vals, (256, 16), &dev).unwrap();
        let s = embedding_std(&z).unwrap();
        assert!((s.mean - 1.0).abs() < 0.1);
        assert!(average_correlation(&z).unwrap().abs() < 0.02);
        assert!(effective_rank(&z).unwrap() > 14.0);
        // Every dimension the same: correlation 1, rank 1, std of a constant 0.
        let col = z.narrow(1, 0, 1).unwrap();
        let same = col.repeat((1, 16)).unwrap();
        assert!((average_correlation(&same).unwrap() - 1.0).abs() < 1e-3);
        assert!(effective_rank(&same).unwrap() < 1.01);
        assert!((average_abs_correlation(&same).unwrap() - 1.0).abs() < 1e-3);
        assert!(average_abs_correlation(&z).unwrap() < 0.1);
        // Half the dimensions anti-correlated: the signed mean cancels, the absolute one does not.
        let neg = col.neg().unwrap().repeat((1, 8)).unwrap();
        let mixed = Tensor::cat(&[&col.repeat((1, 8)).unwrap(), &neg], 1).unwrap();
        assert!(average_correlation(&mixed).unwrap().abs() < 0.1);
        assert!((average_abs_correlation(&mixed).unwrap() - 1.0).abs() < 1e-3);
        let constant = Tensor::ones((8, 4), DType::F32, &dev).unwrap();
        assert_eq!(embedding_std(&constant).unwrap().mean, 0.0);
    }
}

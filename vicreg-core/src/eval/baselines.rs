//! What a pretrained representation is compared with: accuracy rows of
//! baselines over the folds of a protocol, fold means and spreads, and
//! chance. Accuracies are in percent.
//!
//! ```
//! use vicreg_core::eval::{chance, mean_std, BaselineRow};
//!
//! let row = BaselineRow::from_folds("random-init wave".into(), &[(40.0, 80.0), (60.0, 90.0)]);
//! assert_eq!((row.mean_top1, row.mean_top5), (50.0, 85.0));
//! assert_eq!(mean_std(&[40.0, 60.0]), (50.0, 10.0));
//! assert_eq!(chance(50), (2.0, 10.0));
//! ```

use serde::Serialize;

/// One baseline's accuracy over the folds of a protocol.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineRow {
    /// What it is, e.g. `random-init wave` or `log-mel statistics (2 x 64)`.
    pub name: String,
    /// Mean top-1 over folds (%).
    pub mean_top1: f64,
    /// Mean top-5 over folds (%).
    pub mean_top5: f64,
    /// Top-1 of each fold (%), in protocol order.
    pub fold_top1: Vec<f64>,
}

impl BaselineRow {
    /// A row from per-fold `(top1, top5)` (no folds: means of 0).
    pub fn from_folds(name: String, folds: &[(f64, f64)]) -> Self {
        let n = folds.len().max(1) as f64;
        Self {
            name,
            mean_top1: folds.iter().map(|f| f.0).sum::<f64>() / n,
            mean_top5: folds.iter().map(|f| f.1).sum::<f64>() / n,
            fold_top1: folds.iter().map(|f| f.0).collect(),
        }
    }
}

/// Mean and population standard deviation of `v` (empty: `(0, 0)`).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
    )
}

/// Chance `(top-1, top-5)` in % for `classes` classes (top-5 is 100% for
/// five classes or fewer).
pub fn chance(classes: usize) -> (f64, f64) {
    let c = classes.max(1) as f64;
    (100.0 / c, 100.0 * (classes.min(5) as f64) / c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_means_and_chance() {
        assert_eq!(chance(10), (10.0, 50.0));
        assert_eq!(chance(3).1, 100.0);
        assert_eq!(chance(0), (100.0, 0.0));
        let r = BaselineRow::from_folds("x".into(), &[(10.0, 20.0), (30.0, 40.0)]);
        assert_eq!((r.mean_top1, r.mean_top5), (20.0, 30.0));
        assert_eq!(r.fold_top1, vec![10.0, 30.0]);
        let empty = BaselineRow::from_folds("none".into(), &[]);
        assert_eq!((empty.mean_top1, empty.fold_top1.len()), (0.0, 0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.25f64.sqrt()).abs() < 1e-12);
    }
}

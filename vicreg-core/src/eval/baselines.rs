//! What a pretrained representation is compared with: accuracy rows of
//! baselines over the folds of a protocol, fold means and spreads, and
//! chance, and k-NN on features that need no training (raw pixels,
//! spectrogram statistics...). Accuracies are in percent.
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

use super::{knn_classify, Features, KnnConfig};
use crate::Result;

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

/// Weighted cosine k-NN top-1 (%) for each of `ks` (T = 0.07, as the
/// encoders' k-NN) on `train` / `val` centred by the training set's
/// per-dimension mean: the raw-feature baseline (raw pixels are all positive,
/// so their cosine similarity is meaningless before centring).
pub fn centred_knn(
    train: &Features,
    val: &Features,
    classes: usize,
    ks: &[usize],
) -> Result<Vec<(usize, f64)>> {
    let mean = train.x.mean_keepdim(0)?;
    let c = |f: &Features| -> Result<Features> {
        Features::new(f.x.broadcast_sub(&mean)?, f.labels.clone())
    };
    let cfg = KnnConfig {
        ks: ks.to_vec(),
        ..KnnConfig::default()
    };
    Ok(knn_classify(&c(train)?, &c(val)?, classes, &cfg)?
        .iter()
        .map(|r| (r.k, r.top1))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

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

    #[test]
    fn centring_makes_an_offset_class_structure_visible() -> Result<()> {
        // Every vector is dominated by a common offset: uncentred cosine
        // similarity sees one cluster, centred it sees the two classes.
        let rows = [[100f32, 1.0], [100.0, 1.2], [100.0, -1.0], [100.0, -1.1]];
        let x = Tensor::new(&rows, &Device::Cpu)?;
        let f = Features::new(x, vec![0, 0, 1, 1])?;
        let r = centred_knn(&f, &f, 2, &[1])?;
        assert_eq!(r, vec![(1, 100.0)]);
        Ok(())
    }
}

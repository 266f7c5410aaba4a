//! The reference numbers every evaluation prints beside a pretrained encoder,
//! so a user sees at once whether pretraining helped: chance, and k-NN on
//! features that need no training (raw pixels, spectrogram statistics...).

use super::{knn_classify, Features, KnnConfig};
use crate::Result;

/// Chance `(top-1, top-5)` in % for `classes` classes (guessing uniformly).
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
    fn chance_of_a_few_and_many_classes() {
        assert_eq!(chance(4), (25.0, 100.0));
        assert_eq!(chance(10), (10.0, 50.0));
        assert_eq!(chance(0), (100.0, 0.0));
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

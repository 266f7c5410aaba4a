//! The retrieval protocols a test set is reported on: the whole set (COCO
//! "5K") and the mean over folds of min(1000, n) images (COCO "1K"), chance on
//! both, the Markdown table and the JSON record of an evaluation beside its
//! baselines.

use std::path::Path;

use candle_core::Tensor;
use serde::Serialize;
use serde_json::json;

use super::{retrieval_metrics, retrieval_metrics_folds, RetrievalMetrics};
use crate::{Error, Result};

/// Images per fold of the folded protocol (COCO 1K).
pub const FOLD_IMAGES: usize = 1000;

/// Retrieval results on one test set.
#[derive(Clone, Debug, Serialize)]
pub struct RetrievalEvaluation {
    /// Test images.
    pub images: usize,
    /// Test captions.
    pub captions: usize,
    /// Metrics over the whole test set (COCO 5K protocol on the real data).
    pub full: RetrievalMetrics,
    /// Images per fold of the folded protocol.
    pub fold_images: usize,
    /// Mean metrics over the folds (COCO 1K protocol on the real data).
    pub folds: RetrievalMetrics,
}

impl RetrievalEvaluation {
    /// Chance on both protocols of a test set with this caption ownership.
    pub fn chance(caption_image: &[usize], n_images: usize) -> Self {
        let fold = n_images.clamp(1, FOLD_IMAGES);
        Self {
            images: n_images,
            captions: caption_image.len(),
            full: retrieval_chance(caption_image, n_images),
            fold_images: fold,
            folds: retrieval_chance(
                &caption_image.iter().map(|&i| i % fold).collect::<Vec<_>>(),
                fold,
            ),
        }
    }

    /// Both protocols on L2-normalised `images` `(n, d)` and `captions`
    /// `(c, d)`; `caption_image[j]` is the image of caption `j`.
    pub fn compute(images: &Tensor, captions: &Tensor, caption_image: &[usize]) -> Result<Self> {
        let n = images.dim(0)?;
        if n == 0 {
            return Err(Error::invalid("empty test set"));
        }
        let fold = n.min(FOLD_IMAGES);
        Ok(Self {
            images: n,
            captions: caption_image.len(),
            full: retrieval_metrics(images, captions, caption_image)?,
            fold_images: fold,
            folds: retrieval_metrics_folds(images, captions, caption_image, fold)?,
        })
    }

    /// The JSON record: `test_images`, `test_captions`, `full` and `folds`
    /// (`i2t_r1` ... `t2i_r10`, `rsum`; `folds` also `fold_images`).
    pub fn to_json(&self) -> serde_json::Value {
        let e = self;
        json!({
            "test_images": e.images, "test_captions": e.captions,
            "full": {"i2t_r1": e.full.i2t[0], "i2t_r5": e.full.i2t[1], "i2t_r10": e.full.i2t[2], "t2i_r1": e.full.t2i[0], "t2i_r5": e.full.t2i[1], "t2i_r10": e.full.t2i[2], "rsum": e.full.rsum},
            "folds": {"fold_images": e.fold_images, "i2t_r1": e.folds.i2t[0], "i2t_r5": e.folds.i2t[1], "i2t_r10": e.folds.i2t[2], "t2i_r1": e.folds.t2i[0], "t2i_r5": e.folds.t2i[1], "t2i_r10": e.folds.t2i[2], "rsum": e.folds.rsum},
        })
    }
}

/// Chance recall at 1, 5 and 10 (%) for a test set: text -> image, each caption has one
/// right image among `n_images` (K / N); image -> text, an image with `m` of the `c`
/// captions is hit when one of its captions is among K drawn at random
/// (`1 - C(c - m, K) / C(c, K)`), averaged over images.
pub fn retrieval_chance(caption_image: &[usize], n_images: usize) -> RetrievalMetrics {
    let c = caption_image.len();
    let mut per_image = vec![0usize; n_images];
    for &i in caption_image {
        if let Some(v) = per_image.get_mut(i) {
            *v += 1;
        }
    }
    let ks = [1usize, 5, 10];
    let miss = |m: usize, k: usize| -> f64 {
        // C(c - m, k) / C(c, k) = prod_{j < k} (c - m - j) / (c - j)
        (0..k.min(c))
            .map(|j| (c.saturating_sub(m + j)) as f64 / (c - j) as f64)
            .product()
    };
    let mut i2t = [0.0; 3];
    let mut t2i = [0.0; 3];
    for (slot, &k) in ks.iter().enumerate() {
        i2t[slot] = 100.0 * per_image.iter().map(|&m| 1.0 - miss(m, k)).sum::<f64>()
            / n_images.max(1) as f64;
        t2i[slot] = 100.0 * (k.min(n_images) as f64) / n_images.max(1) as f64;
    }
    RetrievalMetrics {
        i2t,
        t2i,
        rsum: i2t.iter().sum::<f64>() + t2i.iter().sum::<f64>(),
    }
}

/// Writes `e` (see [`RetrievalEvaluation::to_json`]) with its `baselines`
/// under `"baselines"` (by name) to `path`, atomically.
pub fn write_retrieval_json(
    path: &Path,
    e: &RetrievalEvaluation,
    baselines: &[(String, &RetrievalEvaluation)],
) -> Result<()> {
    let mut v = e.to_json();
    if !baselines.is_empty() {
        v["baselines"] = baselines
            .iter()
            .map(|(name, b)| (name.clone(), b.to_json()))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    crate::io::write_json(path, &v)
}

/// A Markdown table of named evaluations, both protocols.
pub fn retrieval_table(rows: &[(String, &RetrievalEvaluation)]) -> String {
    let mut s = String::new();
    s += "| model | test set | i2t R@1 | i2t R@5 | i2t R@10 | t2i R@1 | t2i R@5 | t2i R@10 | rsum |\n";
    s += "|---|---|---|---|---|---|---|---|---|\n";
    for (name, e) in rows {
        let mut sets = vec![(format!("{} images", e.images), &e.full)];
        // The folded protocol only differs when the test set has more than one fold.
        if e.images > e.fold_images {
            sets.push((
                format!("{} folds of {}", e.images / e.fold_images, e.fold_images),
                &e.folds,
            ));
        }
        for (set, m) in sets {
            s += &format!(
                "| {name} | {set} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                m.i2t[0], m.i2t[1], m.i2t[2], m.t2i[0], m.t2i[1], m.t2i[2], m.rsum
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_recalls_match_hand_counts() {
        // 2 images with 2 captions each.
        let c = retrieval_chance(&[0, 0, 1, 1], 2);
        assert!((c.t2i[0] - 50.0).abs() < 1e-9 && (c.t2i[1] - 100.0).abs() < 1e-9);
        // One draw out of 4 captions hits one of the image's 2 with probability 1/2.
        assert!((c.i2t[0] - 50.0).abs() < 1e-9);
        assert!((c.i2t[2] - 100.0).abs() < 1e-9);
        // 400 images with 1 caption each: K / N both ways.
        let own: Vec<usize> = (0..400).collect();
        let c = retrieval_chance(&own, 400);
        assert!((c.i2t[2] - 2.5).abs() < 1e-9 && (c.t2i[2] - 2.5).abs() < 1e-9);
    }
}

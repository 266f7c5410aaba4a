//! Cross-modal retrieval metrics (VSE++ protocol): recall at 1/5/10 for
//! image-to-text and text-to-image, with several captions per image.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::features::l2_normalize;
use crate::{Error, Result};

/// Recalls in percent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Image -> text R@1, R@5, R@10: share of images whose best-ranked
    /// ground-truth caption is among the top K captions.
    pub i2t: [f64; 3],
    /// Text -> image R@1, R@5, R@10: share of captions whose image is among the top K images.
    pub t2i: [f64; 3],
    /// Sum of the six recalls.
    pub rsum: f64,
}

impl RetrievalMetrics {
    fn from_parts(i2t: [f64; 3], t2i: [f64; 3]) -> Self {
        Self {
            i2t,
            t2i,
            rsum: i2t.iter().sum::<f64>() + t2i.iter().sum::<f64>(),
        }
    }

    /// The metrics as `(name, value)` pairs (`i2t_r1`, ..., `rsum`), for logs.
    pub fn named(&self) -> Vec<(String, f64)> {
        let mut v = Vec::new();
        for (dir, r) in [("i2t", self.i2t), ("t2i", self.t2i)] {
            for (k, x) in [1, 5, 10].iter().zip(r) {
                v.push((format!("{dir}_r{k}"), x));
            }
        }
        v.push(("rsum".into(), self.rsum));
        v
    }
}

fn check_map(n_img: usize, n_cap: usize, caption_image: &[usize]) -> Result<()> {
    if caption_image.len() != n_cap {
        return Err(Error::invalid(format!(
            "{n_cap} captions but {} caption-to-image entries",
            caption_image.len()
        )));
    }
    if n_img == 0 || n_cap == 0 {
        return Err(Error::invalid(
            "retrieval needs at least one image and one caption",
        ));
    }
    if let Some(&bad) = caption_image.iter().find(|&&i| i >= n_img) {
        return Err(Error::invalid(format!(
            "caption refers to image {bad}, but there are {n_img} images"
        )));
    }
    let mut has = vec![false; n_img];
    caption_image.iter().for_each(|&i| has[i] = true);
    if let Some(i) = has.iter().position(|h| !h) {
        return Err(Error::invalid(format!("image {i} has no caption")));
    }
    Ok(())
}

/// Metrics from a `(n_images, n_captions)` score matrix (higher = more similar);
/// `caption_image[c]` is the image of caption `c`. A rank counts the candidates
/// scored strictly higher, so ties go in the query's favour.
pub fn retrieval_from_scores(scores: &Tensor, caption_image: &[usize]) -> Result<RetrievalMetrics> {
    let (n_img, n_cap) = scores.dims2().map_err(|_| {
        Error::invalid(format!(
            "scores must be (images, captions), got {:?}",
            scores.dims()
        ))
    })?;
    check_map(n_img, n_cap, caption_image)?;
    let s = scores.detach().to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let ks = [1usize, 5, 10];
    let mut i2t = [0usize; 3];
    for (i, row) in s.iter().enumerate() {
        let rank = caption_image
            .iter()
            .enumerate()
            .filter(|(_, &img)| img == i)
            .map(|(c, _)| row.iter().filter(|&&v| v > row[c]).count())
            .min()
            .ok_or_else(|| Error::invalid(format!("retrieval: image {i} has no caption")))?;
        for (hit, k) in i2t.iter_mut().zip(ks) {
            *hit += (rank < k) as usize;
        }
    }
    let mut t2i = [0usize; 3];
    for (c, &img) in caption_image.iter().enumerate() {
        let target = s[img][c];
        let rank = s.iter().filter(|row| row[c] > target).count();
        for (hit, k) in t2i.iter_mut().zip(ks) {
            *hit += (rank < k) as usize;
        }
    }
    let pct = |h: [usize; 3], n: usize| h.map(|x| 100.0 * x as f64 / n as f64);
    Ok(RetrievalMetrics::from_parts(
        pct(i2t, n_img),
        pct(t2i, n_cap),
    ))
}

/// Metrics on the full set from `(n_images, dim)` image and `(n_captions, dim)`
/// caption embeddings, scored by cosine similarity.
pub fn retrieval_metrics(
    images: &Tensor,
    captions: &Tensor,
    caption_image: &[usize],
) -> Result<RetrievalMetrics> {
    let a = l2_normalize(&images.detach().to_dtype(DType::F32)?)?;
    let b = l2_normalize(&captions.detach().to_dtype(DType::F32)?)?;
    if a.dims().get(1) != b.dims().get(1) {
        return Err(Error::invalid(format!(
            "image embeddings {:?} and caption embeddings {:?} differ in dim",
            a.dims(),
            b.dims()
        )));
    }
    retrieval_from_scores(&a.matmul(&b.t()?)?, caption_image)
}

/// The average of [`retrieval_metrics`] over consecutive folds of
/// `fold_images` images (COCO "1K test": 5 folds of 1000 images with their
/// captions). Images beyond the last complete fold are left out.
pub fn retrieval_metrics_folds(
    images: &Tensor,
    captions: &Tensor,
    caption_image: &[usize],
    fold_images: usize,
) -> Result<RetrievalMetrics> {
    let n_img = images.dim(0)?;
    check_map(n_img, captions.dim(0)?, caption_image)?;
    if fold_images == 0 || n_img < fold_images {
        return Err(Error::invalid(format!(
            "cannot make folds of {fold_images} images from {n_img} images"
        )));
    }
    let folds = n_img / fold_images;
    let mut i2t = [0.0; 3];
    let mut t2i = [0.0; 3];
    for f in 0..folds {
        let lo = f * fold_images;
        let hi = lo + fold_images;
        let caps: Vec<usize> = (0..caption_image.len())
            .filter(|&c| (lo..hi).contains(&caption_image[c]))
            .collect();
        let ids = Tensor::from_vec(
            caps.iter().map(|&c| c as u32).collect::<Vec<u32>>(),
            caps.len(),
            captions.device(),
        )?;
        let map: Vec<usize> = caps.iter().map(|&c| caption_image[c] - lo).collect();
        let m = retrieval_metrics(
            &images.narrow(0, lo, fold_images)?,
            &captions.index_select(&ids, 0)?,
            &map,
        )?;
        for j in 0..3 {
            i2t[j] += m.i2t[j] / folds as f64;
            t2i[j] += m.t2i[j] / folds as f64;
        }
    }
    Ok(RetrievalMetrics::from_parts(i2t, t2i))
}

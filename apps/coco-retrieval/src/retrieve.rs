//! `coco-retrieval retrieve`: the test-set items nearest to a text query
//! (images) or an image query (captions), by cosine similarity of the
//! expander outputs, from the run's cached index.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use datasets::augment::ViewTransform;
use vicreg_core::eval::l2_normalize;
use vicreg_core::SeededRng;

use crate::evaluate::RetrievalIndex;
use crate::model::LoadedRun;
use crate::text::encode_texts;
use datasets::image::splits::eval_transform;

/// One retrieved item.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Cosine similarity with the query.
    pub score: f32,
    /// Index of the item (an image for text queries, a caption for image queries).
    pub index: usize,
    /// The image file (of the caption, for image queries).
    pub image: PathBuf,
    /// The caption (the image's first caption, for text queries).
    pub caption: String,
}

/// The `k` best of `scores` (descending; ties by index).
fn top_k(scores: &Tensor, k: usize) -> Result<Vec<(usize, f32)>> {
    let s: Vec<f32> = scores.flatten_all()?.to_vec1()?;
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
    Ok(order.into_iter().take(k).map(|i| (i, s[i])).collect())
}

/// The `(1, dim)` normalised embedding of a caption.
pub fn text_embedding(run: &LoadedRun, text: &str, device: &Device) -> Result<Tensor> {
    if text.trim().is_empty() {
        bail!("--text is empty");
    }
    let batch = encode_texts(&run.tokenizer, &[text], device)?;
    Ok(l2_normalize(
        &run.model.branch_b().forward_t(&batch, false)?.emb,
    )?)
}

/// The `(1, dim)` normalised embedding of an image file.
pub fn image_embedding(run: &LoadedRun, path: &Path, device: &Device) -> Result<Tensor> {
    let img = datasets::image::load_rgb(path)
        .with_context(|| format!("reading query image {}", path.display()))?;
    let chw = eval_transform(run.cfg.image_size)?.apply(&img, &mut SeededRng::new(0))?;
    let x = Tensor::from_vec(chw.data, (1, chw.channels, chw.height, chw.width), device)?;
    Ok(l2_normalize(
        &run.model.branch_a().forward_t(&x, false)?.emb,
    )?)
}

/// Test images nearest to a text query.
pub fn by_text(
    run: &LoadedRun,
    index: &RetrievalIndex,
    text: &str,
    k: usize,
    device: &Device,
) -> Result<Vec<Hit>> {
    let q = text_embedding(run, text, device)?;
    let scores = q.matmul(&index.images.t()?)?;
    let first_caption = |i: usize| {
        index
            .meta
            .caption_image
            .iter()
            .position(|&o| o == i)
            .map(|c| index.meta.captions[c].clone())
            .unwrap_or_default()
    };
    Ok(top_k(&scores, k)?
        .into_iter()
        .map(|(i, s)| Hit {
            score: s,
            index: i,
            image: index.meta.images[i].clone(),
            caption: first_caption(i),
        })
        .collect())
}

/// Test captions nearest to an image query.
pub fn by_image(
    run: &LoadedRun,
    index: &RetrievalIndex,
    path: &Path,
    k: usize,
    device: &Device,
) -> Result<Vec<Hit>> {
    let q = image_embedding(run, path, device)?;
    let scores = q.matmul(&index.captions.t()?)?;
    Ok(top_k(&scores, k)?
        .into_iter()
        .map(|(c, s)| Hit {
            score: s,
            index: c,
            image: index.meta.images[index.meta.caption_image[c]].clone(),
            caption: index.meta.captions[c].clone(),
        })
        .collect())
}

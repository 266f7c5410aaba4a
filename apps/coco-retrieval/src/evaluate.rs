//! `coco-retrieval eval`: cross-modal retrieval on the test set (R@1/5/10
//! image->text and text->image, rsum) over the whole set (COCO "5K") and as
//! the mean over folds of min(1000, n) images (COCO "1K"), from an index of
//! the test set's embeddings built once and cached in the run directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use datasets::augment::{EvalTransform, EvalTransformConfig};
use datasets::coco::{collate_image_all_captions, CocoCaptions, CocoEval};
use datasets::loader::{Loader, LoaderConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vicreg_core::eval::{
    l2_normalize, retrieval_metrics, retrieval_metrics_folds, RetrievalMetrics,
};

use crate::model::{LoadedRun, MODEL_FILE};
use crate::text::text_batch;
use datasets::coco::Part;

/// Cached embeddings of the test set.
pub const INDEX_FILE: &str = "retrieval-index.safetensors";
/// Paths and captions of the cached index.
pub const INDEX_META_FILE: &str = "retrieval-index.json";
/// Results of `eval`.
pub const EVAL_FILE: &str = "retrieval_eval.json";

/// The deterministic image transform of evaluation for crops of `size` pixels.
pub fn eval_transform(size: u32) -> Result<EvalTransform> {
    let cfg = if size == 224 {
        EvalTransformConfig::default()
    } else {
        EvalTransformConfig::small_images(size)
    };
    Ok(EvalTransform::new(cfg)?)
}

/// What the index holds besides the embeddings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexMeta {
    /// Identifies the weights the index was built with (size and mtime of model.safetensors).
    pub model_stamp: String,
    /// Image files, in index order.
    pub images: Vec<PathBuf>,
    /// Captions, in index order.
    pub captions: Vec<String>,
    /// Image (index into `images`) of each caption.
    pub caption_image: Vec<usize>,
}

/// The test set's embeddings (expander outputs, L2-normalised).
pub struct RetrievalIndex {
    /// `(n_images, dim)`.
    pub images: Tensor,
    /// `(n_captions, dim)`.
    pub captions: Tensor,
    /// Files and texts.
    pub meta: IndexMeta,
}

/// Embeds every image and caption of `test` with the run's model (eval mode).
pub fn embed(
    run: &LoadedRun,
    test: CocoCaptions,
    workers: usize,
    device: &Device,
) -> Result<RetrievalIndex> {
    let images: Vec<PathBuf> = test.entries().iter().map(|e| e.path.clone()).collect();
    let captions: Vec<String> = test
        .entries()
        .iter()
        .flat_map(|e| e.captions.iter().cloned())
        .collect();
    let ds = CocoEval::new(
        Arc::new(test),
        eval_transform(run.cfg.image_size)?,
        run.tokenizer.clone(),
    );
    let dev = device.clone();
    let loader = Loader::new(
        Arc::new(ds),
        LoaderConfig {
            batch_size: 128,
            num_workers: workers,
            shuffle: false,
            drop_last: false,
            policy: datasets::image::BadSamplePolicy::Strict,
            ..LoaderConfig::default()
        },
        move |items| collate_image_all_captions(items, &dev),
    )?;
    let (mut zi, mut zt, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    let mut offset = 0usize;
    let batches = loader.iter_epoch(0, 0);
    let bar = vicreg_core::eval::extraction_bar(batches.size_hint().1);
    for b in batches {
        bar.inc(1);
        let (x, ids, mask, own) = b?;
        let n = x.dim(0)?;
        zi.push(run.model.branch_a().forward_t(&x, false)?.emb);
        zt.push(
            run.model
                .branch_b()
                .forward_t(&text_batch(&ids, &mask)?, false)?
                .emb,
        );
        owner.extend(
            own.to_vec1::<u32>()?
                .into_iter()
                .map(|o| o as usize + offset),
        );
        offset += n;
    }
    bar.finish_and_clear();
    let norm = |v: Vec<Tensor>| -> Result<Tensor> {
        Ok(l2_normalize(&Tensor::cat(&v, 0)?.to_dtype(DType::F32)?)?)
    };
    Ok(RetrievalIndex {
        images: norm(zi)?,
        captions: norm(zt)?,
        meta: IndexMeta {
            model_stamp: String::new(),
            images,
            captions,
            caption_image: owner,
        },
    })
}

/// Size and modification time of `<run>/model.safetensors`.
fn model_stamp(exp_dir: &Path) -> Result<String> {
    let f = exp_dir.join(MODEL_FILE);
    let m = std::fs::metadata(&f)
        .with_context(|| format!("{}: no trained model (run pretraining first)", f.display()))?;
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{}:{t}", m.len()))
}

/// The run's index of its test-set embeddings: read from the cache when it
/// was built with the current weights, else built and cached. Returns it and
/// whether it was rebuilt.
pub fn run_index(
    run: &LoadedRun,
    exp_dir: &Path,
    workers: usize,
    device: &Device,
) -> Result<(RetrievalIndex, bool)> {
    let stamp = model_stamp(exp_dir)?;
    let (tf, mf) = (exp_dir.join(INDEX_FILE), exp_dir.join(INDEX_META_FILE));
    if tf.is_file() && mf.is_file() {
        let meta: Option<IndexMeta> = std::fs::read_to_string(&mf)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        if let Some(meta) = meta.filter(|m| m.model_stamp == stamp) {
            let t = vicreg_core::io::load_safetensors(&tf)?;
            if let (Some(i), Some(c)) = (t.get("images"), t.get("captions")) {
                if i.dim(0)? == meta.images.len() && c.dim(0)? == meta.captions.len() {
                    let index = RetrievalIndex {
                        images: i.to_device(device)?,
                        captions: c.to_device(device)?,
                        meta,
                    };
                    return Ok((index, false));
                }
            }
        }
    }
    let test = run.cfg.open_part(Part::Test)?;
    eprintln!(
        "building the retrieval index: {} test images, {} captions",
        test.len(),
        test.num_captions()
    );
    let mut index = embed(run, test, workers, device)?;
    index.meta.model_stamp = stamp;
    let tensors = [
        ("images".to_string(), index.images.clone()),
        ("captions".to_string(), index.captions.clone()),
    ]
    .into_iter()
    .collect();
    vicreg_core::io::save_safetensors_atomic(&tensors, &tf)?;
    vicreg_core::io::write_atomic(&mf, serde_json::to_string(&index.meta)?.as_bytes())?;
    Ok((index, true))
}

/// Retrieval results on one test set.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
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

/// Chance on both protocols of a test set with this caption ownership.
pub fn chance_evaluation(caption_image: &[usize], n_images: usize) -> Evaluation {
    let fold = n_images.clamp(1, 1000);
    Evaluation {
        images: n_images,
        captions: caption_image.len(),
        full: chance(caption_image, n_images),
        fold_images: fold,
        folds: chance(
            &caption_image.iter().map(|&i| i % fold).collect::<Vec<_>>(),
            fold,
        ),
    }
}

/// Both protocols on an index.
pub fn evaluate(index: &RetrievalIndex) -> Result<Evaluation> {
    let n = index.meta.images.len();
    if n == 0 {
        bail!("empty test set");
    }
    let fold = n.min(1000);
    Ok(Evaluation {
        images: n,
        captions: index.meta.captions.len(),
        full: retrieval_metrics(&index.images, &index.captions, &index.meta.caption_image)?,
        fold_images: fold,
        folds: retrieval_metrics_folds(
            &index.images,
            &index.captions,
            &index.meta.caption_image,
            fold,
        )?,
    })
}

/// Chance recall at 1, 5 and 10 (%) for a test set: text -> image, each caption has one
/// right image among `n_images` (K / N); image -> text, an image with `m` of the `c`
/// captions is hit when one of its captions is among K drawn at random
/// (`1 - C(c - m, K) / C(c, K)`), averaged over images.
pub fn chance(caption_image: &[usize], n_images: usize) -> RetrievalMetrics {
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

/// Writes `<run>/retrieval_eval.json`, with the baselines when given.
pub fn save(
    exp_dir: &Path,
    e: &Evaluation,
    baselines: &[(String, &Evaluation)],
) -> Result<PathBuf> {
    let p = exp_dir.join(EVAL_FILE);
    let m = |e: &Evaluation| {
        json!({
            "test_images": e.images, "test_captions": e.captions,
            "full": {"i2t_r1": e.full.i2t[0], "i2t_r5": e.full.i2t[1], "i2t_r10": e.full.i2t[2], "t2i_r1": e.full.t2i[0], "t2i_r5": e.full.t2i[1], "t2i_r10": e.full.t2i[2], "rsum": e.full.rsum},
            "folds": {"fold_images": e.fold_images, "i2t_r1": e.folds.i2t[0], "i2t_r5": e.folds.i2t[1], "i2t_r10": e.folds.i2t[2], "t2i_r1": e.folds.t2i[0], "t2i_r5": e.folds.t2i[1], "t2i_r10": e.folds.t2i[2], "rsum": e.folds.rsum},
        })
    };
    let mut v = m(e);
    if !baselines.is_empty() {
        v["baselines"] = baselines
            .iter()
            .map(|(name, b)| (name.clone(), m(b)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    vicreg_core::io::write_atomic(&p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    Ok(p)
}

/// A Markdown table of named evaluations, both protocols.
pub fn table(rows: &[(String, &Evaluation)]) -> String {
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
        let c = chance(&[0, 0, 1, 1], 2);
        assert!((c.t2i[0] - 50.0).abs() < 1e-9 && (c.t2i[1] - 100.0).abs() < 1e-9);
        // One draw out of 4 captions hits one of the image's 2 with probability 1/2.
        assert!((c.i2t[0] - 50.0).abs() < 1e-9);
        assert!((c.i2t[2] - 100.0).abs() < 1e-9);
        // 400 images with 1 caption each: K / N both ways.
        let own: Vec<usize> = (0..400).collect();
        let c = chance(&own, 400);
        assert!((c.i2t[2] - 2.5).abs() < 1e-9 && (c.t2i[2] - 2.5).abs() < 1e-9);
    }
}

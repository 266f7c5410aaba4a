//! `coco-retrieval eval`: cross-modal retrieval on the test set (R@1/5/10
//! image->text and text->image, rsum) over the whole set (COCO "5K") and as
//! the mean over folds of min(1000, n) images (COCO "1K"), from an index of
//! the test set's embeddings built once and cached in the run directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use datasets::coco::{collate_image_all_captions, CocoCaptions, CocoEval};
use datasets::image::splits::eval_transform;
use datasets::loader::{Loader, LoaderConfig};
use serde::{Deserialize, Serialize};
pub use vicreg_core::eval::RetrievalEvaluation as Evaluation;
use vicreg_core::eval::{l2_normalize, write_retrieval_json};

use crate::model::{LoadedRun, MODEL_FILE};
use crate::text::text_batch;
use datasets::coco::Part;

/// Cached embeddings of the test set.
pub const INDEX_FILE: &str = "retrieval-index.safetensors";
/// Paths and captions of the cached index.
pub const INDEX_META_FILE: &str = "retrieval-index.json";
/// Results of `eval`.
pub const EVAL_FILE: &str = "retrieval_eval.json";

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

/// Both protocols on an index.
pub fn evaluate(index: &RetrievalIndex) -> Result<Evaluation> {
    let caption_image = &index.meta.caption_image;
    Ok(Evaluation::compute(
        &index.images,
        &index.captions,
        caption_image,
    )?)
}

/// Writes `<run>/retrieval_eval.json`, with the baselines when given.
pub fn save(
    exp_dir: &Path,
    e: &Evaluation,
    baselines: &[(String, &Evaluation)],
) -> Result<PathBuf> {
    let p = exp_dir.join(EVAL_FILE);
    write_retrieval_json(&p, e, baselines)?;
    Ok(p)
}

//! Opening the captioned images a user points at: a COCO 2017 tree
//! (`annotations/captions_{train,val}2017.json`, `train2017/`, `val2017/`),
//! optionally with the Karpathy split file, and the built-in synthetic set.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use datasets::coco::{Coco2017Split, CocoCaptions, KarpathySplit};

/// Which part of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Pretraining images: Karpathy `train` + `restval`, else `train2017`.
    Train,
    /// Retrieval test set: Karpathy `test` (5K images), else `val2017` (5K images).
    Test,
}

/// Opens `part` of the COCO tree at `data_dir` (with the Karpathy split file if given).
/// Errors name the directory or file at fault (missing annotations, malformed JSON,
/// a captioned image whose file is missing).
pub fn open(data_dir: &Path, karpathy: Option<&Path>, part: Part) -> Result<CocoCaptions> {
    if !data_dir.is_dir() {
        bail!(
            "data directory {} does not exist or is not a directory",
            data_dir.display()
        );
    }
    let c = match karpathy {
        Some(split_file) => {
            let split_file = resolve_split_file(data_dir, split_file);
            let split = match part {
                Part::Train => KarpathySplit::Train,
                Part::Test => KarpathySplit::Test,
            };
            CocoCaptions::load_karpathy(data_dir, &split_file, split)
                .with_context(|| format!("reading the Karpathy split {}", split_file.display()))?
        }
        None => {
            let split = match part {
                Part::Train => Coco2017Split::Train,
                Part::Test => Coco2017Split::Val,
            };
            let ann = data_dir
                .join("annotations")
                .join(format!("captions_{}2017.json", split.name()));
            if !ann.is_file() {
                bail!(
                    "{}: annotations file missing (expected the COCO 2017 layout: annotations/captions_train2017.json, \
                     annotations/captions_val2017.json, train2017/, val2017/)",
                    ann.display()
                );
            }
            CocoCaptions::load_2017(data_dir, split)
                .with_context(|| format!("reading COCO captions {}", ann.display()))?
        }
    };
    Ok(c)
}

/// A split file given relative to the data directory is found there too.
fn resolve_split_file(data_dir: &Path, f: &Path) -> PathBuf {
    if f.is_file() || f.is_absolute() {
        return f.to_path_buf();
    }
    let inside = data_dir.join(f);
    if inside.is_file() {
        inside
    } else {
        f.to_path_buf()
    }
}

/// The cache folder of built-in data: `$VICREG_CACHE`, else `~/.cache/vicreg-rs`, else `./.cache`.
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VICREG_CACHE") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() => PathBuf::from(h).join(".cache").join("vicreg-rs"),
        _ => PathBuf::from(".cache"),
    }
}

//! The Karpathy split of COCO (`dataset_coco.json`): `images[]` with `filepath`,
//! `filename`, `split` (`train`/`restval`/`val`/`test`), `sentences[].raw` and `cocoid`.
//! On the real file this gives 113,287 training images (train + restval), 5,000
//! validation and 5,000 test images.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::coco::captions::{read_json, CocoCaptions, CocoImageEntry};
use crate::{Error, Result};

/// A Karpathy split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KarpathySplit {
    /// `train` + `restval`.
    Train,
    /// `val`.
    Val,
    /// `test`.
    Test,
}

impl KarpathySplit {
    fn contains(self, split: &str) -> bool {
        match self {
            KarpathySplit::Train => split == "train" || split == "restval",
            KarpathySplit::Val => split == "val",
            KarpathySplit::Test => split == "test",
        }
    }
}

#[derive(Deserialize)]
struct RawSentence {
    raw: String,
}

#[derive(Deserialize)]
struct RawImage {
    #[serde(default)]
    filepath: String,
    filename: String,
    split: String,
    sentences: Vec<RawSentence>,
    #[serde(default)]
    cocoid: Option<u64>,
    #[serde(default)]
    imgid: Option<u64>,
}

#[derive(Deserialize)]
struct RawSplitFile {
    images: Vec<RawImage>,
}

/// Finds the image file: `root/filepath/filename`, then a flat `root/images/filename`
/// (or `root/images/filepath/filename`), then `root/filename`, or, for the 2014 names of
/// the original split file with 2017 folders on disk, `root/{train,val}2017/{cocoid:012}.jpg`.
fn resolve(root: &Path, im: &RawImage) -> Option<PathBuf> {
    let candidates = [
        root.join(&im.filepath).join(&im.filename),
        root.join("images").join(&im.filename),
        root.join("images").join(&im.filepath).join(&im.filename),
        root.join(&im.filename),
    ];
    if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(p);
    }
    let id = im.cocoid?;
    ["train2017", "val2017"]
        .iter()
        .map(|d| root.join(d).join(format!("{id:012}.jpg")))
        .find(|p| p.is_file())
}

impl CocoCaptions {
    /// Loads one Karpathy split from `split_file`, with images under `root`.
    ///
    /// Errors: malformed JSON or an unknown `split` value is [`Error::BadFile`] naming the
    /// split file; an image of the split that is found neither as `root/filepath/filename`
    /// nor as a 2017 file by `cocoid` is [`Error::Layout`] naming both.
    pub fn load_karpathy(root: &Path, split_file: &Path, split: KarpathySplit) -> Result<Self> {
        let raw: RawSplitFile = read_json(split_file)?;
        let mut entries = Vec::new();
        for (k, im) in raw.images.iter().enumerate() {
            if !matches!(im.split.as_str(), "train" | "restval" | "val" | "test") {
                return Err(Error::bad_file(
                    split_file,
                    format!(
                        "images[{k}] ({}) has unknown split {:?} (train/restval/val/test)",
                        im.filename, im.split
                    ),
                ));
            }
            if !split.contains(&im.split) {
                continue;
            }
            // Both names come from the split file: they must stay under `root`.
            let checked = crate::safe_path::join_under(root, &im.filename).and_then(|_| {
                if im.filepath.is_empty() {
                    Ok(root.to_path_buf())
                } else {
                    crate::safe_path::join_under(root, &im.filepath)
                }
            });
            if let Err(m) = checked {
                return Err(Error::bad_file(
                    split_file,
                    format!(
                        "images[{k}] (filepath {:?}, filename {:?}): {m}",
                        im.filepath, im.filename
                    ),
                ));
            }
            let path = resolve(root, im).ok_or_else(|| {
                Error::Layout(format!(
                    "{}: image {} of {} is missing (also looked in images/, the data root and, by cocoid, train2017/, val2017/)",
                    root.join(&im.filepath).join(&im.filename).display(),
                    im.filename,
                    split_file.display()
                ))
            })?;
            let captions: Vec<String> = im
                .sentences
                .iter()
                .map(|s| s.raw.trim().to_string())
                .collect();
            if captions.is_empty() {
                continue;
            }
            entries.push(CocoImageEntry {
                image_id: im.cocoid.or(im.imgid).unwrap_or(k as u64),
                path,
                captions,
            });
        }
        let out = CocoCaptions::from_entries(entries, split_file.to_path_buf());
        out.check_files()?;
        Ok(out)
    }
}

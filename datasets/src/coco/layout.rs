//! Opening the captioned images a user points at. `--data-dir` may hold:
//! - a COCO 2017 tree (`annotations/captions_{train,val}2017.json`,
//!   `train2017/`, `val2017/`), optionally with a Karpathy split file;
//! - a Karpathy-style split file `dataset_*.json` (`images[].filepath` /
//!   `filename` / `split` / `sentences`), found by itself when it is the only
//!   one, images under `filepath/`, `images/` or the root;
//! - any other COCO-format pair `annotations/captions_train*.json` +
//!   `annotations/captions_{val,test}*.json`, images in a flat `images/`
//!   folder, else in the folder named like the file (`captions_val2014.json`
//!   -> `val2014/`), else in the root.
//!
//! [`open_part`] also takes the files named directly (an app's
//! `--train-images` / `--train-captions` and `val-` flags).

use std::path::{Path, PathBuf};

use super::{Coco2017Split, CocoCaptions, KarpathySplit};
use crate::{Error, Result};

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
        return Err(Error::Layout(format!(
            "data directory {} does not exist or is not a directory",
            data_dir.display()
        )));
    }
    let c = match karpathy {
        Some(split_file) => {
            let split_file = resolve_split_file(data_dir, split_file);
            let split = match part {
                Part::Train => KarpathySplit::Train,
                Part::Test => KarpathySplit::Test,
            };
            CocoCaptions::load_karpathy(data_dir, &split_file, split).map_err(|e| {
                Error::Layout(format!(
                    "reading the Karpathy split {}: {e}",
                    split_file.display()
                ))
            })?
        }
        None => {
            let split = match part {
                Part::Train => Coco2017Split::Train,
                Part::Test => Coco2017Split::Val,
            };
            let ann = data_dir
                .join("annotations")
                .join(format!("captions_{}2017.json", split.name()));
            if ann.is_file() {
                CocoCaptions::load_2017(data_dir, split).map_err(|e| {
                    Error::Layout(format!("reading COCO captions {}: {e}", ann.display()))
                })?
            } else if let Some(split_file) = single_karpathy_file(data_dir)? {
                return open(data_dir, Some(&split_file), part);
            } else if let Some((json, images)) = other_coco_pair(data_dir, part)? {
                load_pair(&json, &images)?
            } else {
                return Err(Error::Layout(format!(
                    "{}: annotations file missing; expected a COCO 2017 tree (annotations/captions_train2017.json, \
                     annotations/captions_val2017.json, train2017/, val2017/), a Karpathy split file dataset_*.json, \
                     or annotations/captions_train*.json with annotations/captions_val*.json (or _test*) and an images/ folder; \
                     or give --train-images/--train-captions and --val-images/--val-captions",
                    ann.display()
                )));
            }
        }
    };
    Ok(c)
}

/// The one `dataset_*.json` in `dir` (a Karpathy-style split file), if exactly one exists.
fn single_karpathy_file(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("dataset_") && name.ends_with(".json") && p.is_file() {
            found.push(p);
        }
    }
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Layout(format!(
            "{}: several Karpathy split files ({}); name one with --karpathy-split",
            dir.display(),
            found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `annotations/captions_<prefix>*.json` for `part` (train: `train`; test: `val`,
/// else `test`) and its image folder; `None` when there is no such file.
fn other_coco_pair(dir: &Path, part: Part) -> Result<Option<(PathBuf, PathBuf)>> {
    let ann = dir.join("annotations");
    if !ann.is_dir() {
        return Ok(None);
    }
    let mut names: Vec<String> = std::fs::read_dir(&ann)
        .map_err(|e| Error::io(&ann, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("captions_") && n.ends_with(".json"))
        .collect();
    names.sort();
    let prefixes: &[&str] = match part {
        Part::Train => &["train"],
        Part::Test => &["val", "test"],
    };
    for prefix in prefixes {
        let hits: Vec<&String> = names
            .iter()
            .filter(|n| n["captions_".len()..].starts_with(prefix))
            .collect();
        match hits.as_slice() {
            [] => continue,
            [one] => {
                let stem = one["captions_".len()..one.len() - ".json".len()].to_string();
                let images = [dir.join("images"), dir.join(&stem)]
                    .into_iter()
                    .find(|p| p.is_dir())
                    .unwrap_or_else(|| dir.to_path_buf());
                return Ok(Some((ann.join(one.as_str()), images)));
            }
            many => {
                return Err(Error::Layout(format!(
                    "{}: several caption files for the {prefix} part ({}); name one with --{}-captions",
                    ann.display(),
                    many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    if part == Part::Train { "train" } else { "val" }
                )));
            }
        }
    }
    Ok(None)
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

/// COCO-format captions at `json` with their images in `images`.
fn load_pair(json: &Path, images: &Path) -> Result<CocoCaptions> {
    CocoCaptions::load_annotations(json, images).map_err(|e| {
        Error::Layout(format!(
            "reading COCO captions {} (images in {}): {e}",
            json.display(),
            images.display()
        ))
    })
}

/// Opens `part` from the files named for it, `(images folder, captions JSON)`
/// (an app's `--train-images` + `--train-captions`, or `--val-images` +
/// `--val-captions` for [`Part::Test`]), else from the layout of `data_dir`
/// (see [`open`]). Both files or neither; errors name the file or folder at fault.
pub fn open_part(
    data_dir: Option<&Path>,
    karpathy: Option<&Path>,
    (images, captions): (Option<&Path>, Option<&Path>),
    part: Part,
) -> Result<CocoCaptions> {
    let (images_key, captions_key) = match part {
        Part::Train => ("train-images", "train-captions"),
        Part::Test => ("val-images", "val-captions"),
    };
    match (images, captions) {
        (Some(images), Some(captions)) => {
            if !images.is_dir() {
                return Err(Error::Layout(format!(
                    "{}: {images_key} is not a directory",
                    images.display()
                )));
            }
            load_pair(captions, images)
        }
        (None, None) => {
            let dir = data_dir.ok_or_else(|| {
                Error::Layout(format!(
                    "no data: give --data-dir (a COCO 2017 tree) or --{images_key} with --{captions_key}"
                ))
            })?;
            open(dir, karpathy, part)
        }
        _ => Err(Error::Layout(format!(
            "{images_key} and {captions_key} go together (a folder and its captions JSON)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captions_json(ids: &[(u64, &str)]) -> String {
        let images: Vec<String> = ids
            .iter()
            .map(|(id, f)| format!(r#"{{"id":{id},"file_name":"{f}"}}"#))
            .collect();
        let anns: Vec<String> = ids
            .iter()
            .map(|(id, _)| format!(r#"{{"image_id":{id},"caption":"a picture {id}"}}"#))
            .collect();
        format!(
            r#"{{"images":[{}],"annotations":[{}]}}"#,
            images.join(","),
            anns.join(",")
        )
    }

    /// `annotations/captions_{train,test}.json` with a flat `images/` folder.
    fn flat_set(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("coco-layout-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("annotations")).unwrap();
        std::fs::create_dir_all(dir.join("images")).unwrap();
        for f in ["a.png", "b.png", "c.png"] {
            std::fs::write(dir.join("images").join(f), b"x").unwrap();
        }
        let ann = dir.join("annotations");
        std::fs::write(
            ann.join("captions_train.json"),
            captions_json(&[(1, "a.png"), (2, "b.png")]),
        )
        .unwrap();
        std::fs::write(
            ann.join("captions_test.json"),
            captions_json(&[(3, "c.png")]),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_flat_images_folder_is_found_for_both_parts() {
        let dir = flat_set("flat");
        assert_eq!(open(&dir, None, Part::Train).unwrap().len(), 2);
        let test = open_part(Some(&dir), None, (None, None), Part::Test).unwrap();
        assert_eq!(test.len(), 1);
        // The same files named directly.
        let images = dir.join("images");
        let json = dir.join("annotations").join("captions_train.json");
        let given = (Some(images.as_path()), Some(json.as_path()));
        assert_eq!(open_part(None, None, given, Part::Train).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_or_half_given_files_are_clear_errors() {
        let dir = flat_set("errors");
        let e = open_part(None, None, (None, None), Part::Train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--data-dir"), "{e}");
        let json = dir.join("annotations").join("captions_test.json");
        let e = open_part(None, None, (None, Some(json.as_path())), Part::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("val-images and val-captions go together"), "{e}");
        let e = open_part(
            None,
            None,
            (Some(json.as_path()), Some(json.as_path())),
            Part::Test,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("val-images is not a directory"), "{e}");
        // Two caption files for one part: name one.
        std::fs::copy(&json, dir.join("annotations").join("captions_val.json")).unwrap();
        std::fs::copy(&json, dir.join("annotations").join("captions_val2.json")).unwrap();
        let e = open(&dir, None, Part::Test).unwrap_err().to_string();
        assert!(
            e.contains("several caption files") && e.contains("--val-captions"),
            "{e}"
        );
        let empty = dir.join("images");
        let e = open(&empty, None, Part::Train).unwrap_err().to_string();
        assert!(e.contains("annotations file missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

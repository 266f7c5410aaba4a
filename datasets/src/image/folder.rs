//! `ImageFolder`: `root/<split>/<class>/<file>.{JPEG,jpg,jpeg,png}` (torchvision layout),
//! classes sorted by name, labels = class positions. The index is built by
//! listing directories only (no decoding), and stores file names in one string
//! buffer (about name-length bytes + 12 bytes per sample).

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::decode::load_rgb;
use super::ImageSource;
use crate::{Error, Result};

/// What to do with a bad sample (non-image file, empty class folder, corrupt image).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BadSamplePolicy {
    /// Leave it out and count it (reported in [`IndexReport`] or by the loader).
    #[default]
    Skip,
    /// Stop with an error naming the file.
    Strict,
}

/// Options of [`ImageFolder::open`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderOptions {
    /// Skip (default) or fail on bad files.
    pub policy: BadSamplePolicy,
    /// Accepted file extensions, compared case-insensitively.
    pub extensions: Vec<String>,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            policy: BadSamplePolicy::Skip,
            extensions: ["jpeg", "jpg", "png"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// What the index left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Files that are not images by their extension (in class folders or loose in the split folder).
    pub skipped_files: Vec<PathBuf>,
    /// Class folders without any image file (their labels are kept, so labels
    /// stay aligned across splits).
    pub empty_classes: Vec<String>,
}

/// An indexed image-folder split.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    split_dir: PathBuf,
    classes: Vec<String>,
    /// Concatenated `<class>/<file>` relative paths.
    names: String,
    /// Sample i's relative path is `names[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u64>,
    labels: Vec<u32>,
    report: IndexReport,
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| Error::bad_file(dir.join(&n), "file name is not valid UTF-8"))?;
        let is_dir = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .is_dir();
        out.push((name, path, is_dir));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl ImageFolder {
    /// Indexes `root/<split>` (e.g. `split = "train"` or `"val"`). Errors: a missing
    /// split folder or one without class folders (always); a non-image file or an
    /// empty class folder (only with [`BadSamplePolicy::Strict`]; otherwise counted
    /// in [`ImageFolder::report`]); no image at all.
    pub fn open(root: &Path, split: &str, opts: &FolderOptions) -> Result<Self> {
        let split_dir = root.join(split);
        if !split_dir.is_dir() {
            return Err(Error::Layout(format!(
                "missing split folder {} (expected {}/{split}/<class>/<image files>)",
                split_dir.display(),
                root.display()
            )));
        }
        let exts: Vec<String> = opts
            .extensions
            .iter()
            .map(|e| e.to_ascii_lowercase())
            .collect();
        let strict = opts.policy == BadSamplePolicy::Strict;
        let mut report = IndexReport::default();
        let mut classes = Vec::new();
        let mut names = String::new();
        let mut offsets = vec![0u64];
        let mut labels = Vec::new();
        for (cname, cpath, is_dir) in sorted_entries(&split_dir)? {
            if !is_dir {
                if strict {
                    return Err(Error::bad_file(
                        &cpath,
                        "not a class folder: loose file in the split folder",
                    ));
                }
                report.skipped_files.push(cpath);
                continue;
            }
            let label = classes.len() as u32;
            let mut count = 0usize;
            for (fname, fpath, fdir) in sorted_entries(&cpath)? {
                let ext_ok = !fdir
                    && Path::new(&fname)
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)));
                if !ext_ok {
                    if strict {
                        return Err(Error::bad_file(
                            &fpath,
                            format!(
                                "not an image file (accepted extensions: {})",
                                exts.join(", ")
                            ),
                        ));
                    }
                    report.skipped_files.push(fpath);
                    continue;
                }
                names.push_str(&cname);
                names.push('/');
                names.push_str(&fname);
                offsets.push(names.len() as u64);
                labels.push(label);
                count += 1;
            }
            if count == 0 {
                if strict {
                    return Err(Error::Layout(format!(
                        "empty class folder {}",
                        cpath.display()
                    )));
                }
                report.empty_classes.push(cname.clone());
            }
            classes.push(cname);
        }
        if classes.is_empty() {
            return Err(Error::Layout(format!(
                "no class folders in {}",
                split_dir.display()
            )));
        }
        if labels.is_empty() {
            return Err(Error::Layout(format!(
                "no image files in any class folder of {}",
                split_dir.display()
            )));
        }
        names.shrink_to_fit();
        Ok(Self {
            split_dir,
            classes,
            names,
            offsets,
            labels,
            report,
        })
    }

    /// Class names, sorted; label `k` is `classes()[k]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The split folder.
    pub fn split_dir(&self) -> &Path {
        &self.split_dir
    }

    /// Number of indexed images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when no image is indexed (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Path of sample `index`.
    pub fn path(&self, index: usize) -> PathBuf {
        let rel = &self.names[self.offsets[index] as usize..self.offsets[index + 1] as usize];
        self.split_dir.join(rel)
    }

    /// Label of sample `index`.
    pub fn label_of(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    /// Files and classes left out by the index.
    pub fn report(&self) -> &IndexReport {
        &self.report
    }

    /// For each of this split's classes, its label in `train_classes` (matched
    /// by name): a val split may lack some of train's classes, or list them in
    /// another order. A class that `train_classes` does not have is an error
    /// naming it and this split's folder.
    pub fn class_map_onto(&self, train_classes: &[String]) -> Result<Vec<usize>> {
        let by_name: std::collections::HashMap<&str, usize> = train_classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let unknown: Vec<&str> = self
            .classes
            .iter()
            .filter(|c| !by_name.contains_key(c.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Error::Layout(format!(
                "{}: class folder(s) {} not among the {} training classes",
                self.split_dir.display(),
                unknown.join(", "),
                train_classes.len()
            )));
        }
        Ok(self
            .classes
            .iter()
            .filter_map(|c| by_name.get(c.as_str()).copied())
            .collect())
    }

    /// Errors unless `other` has the same class list (e.g. train vs val).
    pub fn check_same_classes(&self, other: &ImageFolder) -> Result<()> {
        if self.classes != other.classes {
            return Err(Error::Layout(format!(
                "class folders differ between {} ({} classes) and {} ({} classes)",
                self.split_dir.display(),
                self.classes.len(),
                other.split_dir.display(),
                other.classes.len()
            )));
        }
        Ok(())
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn num_classes(&self) -> usize {
        self.classes.len()
    }
    fn label(&self, index: usize) -> usize {
        self.label_of(index)
    }
    fn load(&self, index: usize) -> Result<RgbImage> {
        load_rgb(&self.path(index))
    }
    fn name(&self, index: usize) -> Option<String> {
        (index < self.len()).then(|| self.path(index).display().to_string())
    }
}

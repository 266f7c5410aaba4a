//! Opening the image classification data a user points at: an ImageFolder
//! tree (`train/<class>/*.JPEG`, `val/<class>/...`) or a folder of IDX files
//! (MNIST / Fashion-MNIST), behind one [`ImageSource`]; evaluation splits
//! relabelled onto the training classes by name; the paper's semi-supervised
//! subsets; the default crop size of a set; ordered evaluation batches.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::{
    collate_labelled, BadSamplePolicy, FolderOptions, IdxDataset, IdxSplit, ImageFolder,
    ImageSource, LabelledImageDataset,
};
use crate::augment::{EvalTransform, EvalTransformConfig};
use crate::loader::{Loader, LoaderConfig};
use crate::{Error, Result};

/// Either on-disk format.
pub enum AnySource {
    /// `root/<split>/<class>/<image>`.
    Folder(ImageFolder),
    /// IDX image + label files.
    Idx(IdxDataset),
}

impl ImageSource for AnySource {
    fn len(&self) -> usize {
        match self {
            AnySource::Folder(f) => ImageSource::len(f),
            AnySource::Idx(d) => ImageSource::len(d),
        }
    }
    fn num_classes(&self) -> usize {
        match self {
            AnySource::Folder(f) => f.num_classes(),
            AnySource::Idx(d) => d.num_classes(),
        }
    }
    fn label(&self, index: usize) -> usize {
        match self {
            AnySource::Folder(f) => f.label(index),
            AnySource::Idx(d) => d.label(index),
        }
    }
    fn load(&self, index: usize) -> Result<RgbImage> {
        match self {
            AnySource::Folder(f) => f.load(index),
            AnySource::Idx(d) => d.load(index),
        }
    }
    fn name(&self, index: usize) -> Option<String> {
        match self {
            AnySource::Folder(f) => f.name(index),
            AnySource::Idx(d) => d.name(index),
        }
    }
}

impl AnySource {
    /// Class names (folder names); `None` for IDX, whose classes are numbers.
    pub fn class_names(&self) -> Option<&[String]> {
        match self {
            AnySource::Folder(f) => Some(f.classes()),
            AnySource::Idx(_) => None,
        }
    }
}

/// An evaluation split relabelled onto the training split's classes: labels
/// are train labels, `num_classes` is train's.
pub struct OnTrainClasses {
    inner: AnySource,
    /// `map[val label] = train label`.
    map: Vec<usize>,
    classes: usize,
}

impl ImageSource for OnTrainClasses {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn label(&self, index: usize) -> usize {
        let l = self.inner.label(index);
        self.map.get(l).copied().unwrap_or(l)
    }
    fn load(&self, index: usize) -> Result<RgbImage> {
        self.inner.load(index)
    }
    fn name(&self, index: usize) -> Option<String> {
        self.inner.name(index)
    }
}

/// Maps `val` onto the training classes: by folder name when both splits are
/// folders (val may lack classes or order them differently; a val class that
/// train lacks is an error naming it); IDX splits must have the same count.
pub fn onto_train_classes(
    val: AnySource,
    train_names: Option<&[String]>,
    train_classes: usize,
) -> Result<OnTrainClasses> {
    let map = match (&val, train_names) {
        (AnySource::Folder(f), Some(names)) => f.class_map_onto(names)?,
        _ => {
            if val.num_classes() != train_classes {
                return Err(Error::Layout(format!(
                    "train has {train_classes} classes but val has {} (IDX labels are numbers and \
                     cannot be matched by name)",
                    val.num_classes()
                )));
            }
            (0..train_classes).collect()
        }
    };
    let missing = train_classes.saturating_sub(map.len());
    if missing > 0 {
        if let AnySource::Folder(f) = &val {
            eprintln!(
                "{}: {missing} of the {train_classes} training classes have no val folder; \
                 val labels are matched to train by class name",
                f.split_dir().display()
            );
        }
    }
    Ok(OnTrainClasses {
        inner: val,
        map,
        classes: train_classes,
    })
}

/// Which format a data directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ImageFolder (`train/`, `val/`).
    Folder,
    /// IDX files (`train-images-idx3-ubyte[.gz]`, `t10k-...`).
    Idx,
}

/// Detects the format of `dir`, with a clear error when it is neither.
pub fn detect(dir: &Path) -> Result<Format> {
    if !dir.is_dir() {
        return Err(Error::Layout(format!(
            "data directory {} does not exist or is not a directory",
            dir.display()
        )));
    }
    if dir.join("train").is_dir() {
        return Ok(Format::Folder);
    }
    let has_idx = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("train-images-idx3-ubyte")
        });
    if has_idx {
        return Ok(Format::Idx);
    }
    Err(Error::Layout(format!(
        "{}: expected an ImageFolder tree (train/<class>/*.JPEG and val/<class>/...) or IDX files \
         (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...)",
        dir.display()
    )))
}

/// Opens a split: `train` / `val` of a folder tree, `train` / `t10k` of IDX files
/// (`val` maps to `t10k`).
pub fn open_split(dir: &Path, split: &str, strict: bool) -> Result<AnySource> {
    let policy = if strict {
        BadSamplePolicy::Strict
    } else {
        BadSamplePolicy::Skip
    };
    Ok(match detect(dir)? {
        Format::Folder => {
            let opts = FolderOptions {
                policy,
                ..FolderOptions::default()
            };
            let f = ImageFolder::open(dir, split, &opts)?;
            let r = f.report();
            if !r.skipped_files.is_empty() {
                eprintln!(
                    "{}: skipped {} files that are not images (e.g. {})",
                    f.split_dir().display(),
                    r.skipped_files.len(),
                    r.skipped_files[0].display()
                );
            }
            if !r.empty_classes.is_empty() {
                eprintln!(
                    "{}: empty class folders: {}",
                    f.split_dir().display(),
                    r.empty_classes.join(", ")
                );
            }
            AnySource::Folder(f)
        }
        Format::Idx => {
            let s = if split == "train" {
                IdxSplit::Train
            } else {
                IdxSplit::Test
            };
            AnySource::Idx(IdxDataset::open(dir, s)?)
        }
    })
}

/// Training images whose headers [`default_image_size`] reads.
const SIZE_SAMPLE: usize = 64;

/// The default crop size for a data directory: for an image folder, the
/// median shorter side of up to 64 training images spread over the set (read
/// from their headers), clamped to 16..=224 (ImageNet-sized photos get the
/// official 224; 64 px icons get 64 instead of being blown up 3.5x); 32 for IDX.
pub fn default_image_size(dir: &Path) -> Result<u32> {
    Ok(match detect(dir)? {
        Format::Folder => {
            let train = open_split(dir, "train", false)?;
            let AnySource::Folder(f) = &train else {
                return Ok(224);
            };
            let n = f.len();
            let step = (n / SIZE_SAMPLE).max(1);
            let mut sides: Vec<u32> = (0..n)
                .step_by(step)
                .take(SIZE_SAMPLE)
                .filter_map(|i| image::image_dimensions(f.path(i)).ok())
                .map(|(w, h)| w.min(h))
                .collect();
            if sides.is_empty() {
                return Ok(224);
            }
            sides.sort_unstable();
            sides[sides.len() / 2].clamp(16, 224)
        }
        Format::Idx => 32,
    })
}

/// The deterministic evaluation transform for crops of `size` pixels: the
/// official resize 256 / centre-crop 224 at ImageNet size, the same ratio below.
pub fn eval_transform(size: u32) -> Result<EvalTransform> {
    let cfg = if size == 224 {
        EvalTransformConfig::default()
    } else {
        EvalTransformConfig::small_images(size)
    };
    EvalTransform::new(cfg)
}

/// Batches of `(images (B, 3, S, S), labels)` of a whole split in file order,
/// decoded by `workers` threads. A file that cannot be decoded stops the
/// iteration with an error naming it: evaluation and `embed` never skip or
/// substitute an image (row `i` of the features is always file `i`).
pub fn eval_batches<S: ImageSource + 'static>(
    source: S,
    size: u32,
    batch_size: usize,
    workers: usize,
    device: &Device,
) -> Result<impl Iterator<Item = vicreg_core::Result<(Tensor, Vec<usize>)>>> {
    let ds = Arc::new(LabelledImageDataset::new(source, eval_transform(size)?));
    let dev = device.clone();
    let loader = Loader::new(
        ds,
        LoaderConfig::evaluation(batch_size, workers),
        move |items| collate_labelled(items, &dev),
    )?;
    Ok(loader.iter_epoch(0, 0).map(crate::loader::to_labelled))
}

/// A subset of a source, by index.
pub struct Subset {
    inner: AnySource,
    indices: Vec<usize>,
}

impl ImageSource for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn label(&self, index: usize) -> usize {
        self.inner.label(self.indices[index])
    }
    fn load(&self, index: usize) -> Result<RgbImage> {
        self.inner.load(self.indices[index])
    }
    fn name(&self, index: usize) -> Option<String> {
        self.inner.name(*self.indices.get(index)?)
    }
}

/// The semi-supervised subsets of the paper: `percent` of each class's images,
/// chosen deterministically from `seed` (at least one per class), or the
/// images named in `subset_file` (one file name per line, as the official
/// 1% / 10% ImageNet subset lists).
pub fn labelled_subset(
    source: AnySource,
    percent: f64,
    subset_file: Option<&Path>,
    seed: u64,
) -> Result<Subset> {
    let n = source.len();
    let indices: Vec<usize> = if let Some(file) = subset_file {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let wanted: std::collections::HashSet<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let AnySource::Folder(folder) = &source else {
            return Err(Error::Layout("--train-subset names image files; IDX data has no file names (use --train-percent)".into()));
        };
        let picked: Vec<usize> = (0..n)
            .filter(|&i| {
                let p = folder.path(i);
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| wanted.contains(f))
            })
            .collect();
        if picked.is_empty() {
            return Err(Error::Layout(format!(
                "{}: none of its {} names matches an image of the training set",
                file.display(),
                wanted.len()
            )));
        }
        if picked.len() < wanted.len() {
            eprintln!(
                "{}: {} of {} listed images found",
                file.display(),
                picked.len(),
                wanted.len()
            );
        }
        picked
    } else {
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(Error::Layout(format!(
                "--train-percent must be in (0, 100], got {percent}"
            )));
        }
        if percent >= 100.0 {
            (0..n).collect()
        } else {
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); source.num_classes()];
            for i in 0..n {
                by_class[source.label(i)].push(i);
            }
            let mut picked = Vec::new();
            for (c, idx) in by_class.iter().enumerate() {
                if idx.is_empty() {
                    continue;
                }
                let mut rng = vicreg_core::SeededRng::derive(seed, &[0x5eb5e7, c as u64]);
                let perm = rng.permutation(idx.len());
                let k = ((idx.len() as f64 * percent / 100.0).round() as usize).max(1);
                picked.extend(perm[..k].iter().map(|&j| idx[j]));
            }
            picked.sort_unstable();
            picked
        }
    };
    Ok(Subset {
        inner: source,
        indices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth_images::{generate_image_folder, SynthImageConfig};

    fn folder(tag: &str, classes: usize, val_classes: usize) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("splits-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = SynthImageConfig {
            num_classes: classes,
            train_per_class: 4,
            val_per_class: 2,
            image_size: 40,
            ..SynthImageConfig::default()
        };
        generate_image_folder(&dir, &cfg).unwrap();
        // Drop the last val classes: real val splits may lack some.
        let mut names: Vec<_> = std::fs::read_dir(dir.join("val"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for extra in names.iter().skip(val_classes) {
            std::fs::remove_dir_all(extra).unwrap();
        }
        dir
    }

    #[test]
    fn folder_splits_sizes_subsets_and_missing_val_classes() {
        let dir = folder("a", 3, 2);
        assert_eq!(detect(&dir).unwrap(), Format::Folder);
        assert_eq!(default_image_size(&dir).unwrap(), 40);
        let train = open_split(&dir, "train", true).unwrap();
        assert_eq!((train.len(), train.num_classes()), (12, 3));
        let names = train.class_names().unwrap().to_vec();
        let val = open_split(&dir, "val", true).unwrap();
        let val = onto_train_classes(val, Some(&names), 3).unwrap();
        assert_eq!((val.len(), val.num_classes()), (4, 3));
        for i in 0..val.len() {
            let folder = Path::new(&val.name(i).unwrap())
                .parent()
                .and_then(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap();
            assert_eq!(names[val.label(i)], folder);
        }
        let half = labelled_subset(train, 50.0, None, 7).unwrap();
        assert_eq!(half.len(), 6);
        let per_class = (0..half.len()).fold([0; 3], |mut c, i| {
            c[half.label(i)] += 1;
            c
        });
        assert_eq!(per_class, [2, 2, 2]);
        let train = open_split(&dir, "train", true).unwrap();
        assert!(labelled_subset(train, 0.0, None, 7).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn neither_format_is_an_error_naming_the_folder() {
        let dir = std::env::temp_dir().join(format!("splits-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = detect(&dir).unwrap_err().to_string();
        assert!(
            e.contains(&dir.display().to_string()) && e.contains("ImageFolder"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn eval_batches_keep_file_order() {
        let dir = folder("b", 2, 2);
        let val = open_split(&dir, "val", true).unwrap();
        let labels: Vec<usize> = (0..val.len()).map(|i| val.label(i)).collect();
        let mut seen = Vec::new();
        for b in eval_batches(val, 16, 3, 2, &Device::Cpu).unwrap() {
            let (x, y) = b.unwrap();
            assert_eq!(x.dims()[1..], [3, 16, 16]);
            seen.extend(y);
        }
        assert_eq!(seen, labels);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The baselines `linear-eval` and `knn-eval` report beside a pretrained
//! encoder, so a user sees at once whether pretraining helped: the same
//! backbone at random initialisation (same protocol), raw-pixel k-NN, and
//! chance.
//!
//! Raw pixels: each image through the evaluation transform at
//! `min(crop size, 32)` pixels (resize, centre crop, ImageNet normalisation),
//! flattened, centred by the training set's per-pixel mean, then the same
//! weighted cosine k-NN as the encoders' (k = 20 and 200, T = 0.07). At most
//! [`MAX_PIXEL_TRAIN`] training images are used (a seeded subset beyond that).

use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use datasets::image::ImageSource;
use serde::Serialize;
use vicreg_core::eval::{centred_knn, chance, extract_with, Features};

use datasets::image::splits;

/// Side of the raw-pixel thumbnails, pixels.
pub const PIXEL_SIDE: u32 = 32;
/// Most training images the raw-pixel baseline keeps.
pub const MAX_PIXEL_TRAIN: usize = 100_000;
/// Training sets up to this size get the baselines unless `--baselines false`.
pub const AUTO_BASELINE_MAX_TRAIN: usize = 20_000;

/// Every baseline of one evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct ImageBaselines {
    /// The same protocol on the randomly initialised backbone: linear `(top-1, top-5)` (%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_init_linear: Option<(f64, f64)>,
    /// The same k-NN on the randomly initialised backbone: `(k, top-1 %)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_init_knn: Option<Vec<(usize, f64)>>,
    /// Raw-pixel k-NN: `(k, top-1 %)`.
    pub raw_pixel_knn: Vec<(usize, f64)>,
    /// Side of the pixel thumbnails.
    pub pixel_side: u32,
    /// Training images the pixel baseline used.
    pub pixel_train_images: usize,
    /// Chance top-1 (%): 100 / classes.
    pub chance_top1: f64,
    /// Chance top-5 (%).
    pub chance_top5: f64,
}

/// Whether to run the baselines: the flag when given, else on for training sets
/// of at most [`AUTO_BASELINE_MAX_TRAIN`] images.
pub fn wanted(flag: Option<bool>, data_dir: &Path) -> Result<bool> {
    Ok(match flag {
        Some(b) => b,
        None => splits::open_split(data_dir, "train", false)?.len() <= AUTO_BASELINE_MAX_TRAIN,
    })
}

/// Raw-pixel train / val features of `data_dir` (see the module docs).
pub fn pixel_features(
    data_dir: &Path,
    size: u32,
    seed: u64,
    workers: usize,
) -> Result<(Features, Features, usize)> {
    let side = size.min(PIXEL_SIDE);
    let train = splits::open_split(data_dir, "train", false)?;
    let classes = train.num_classes();
    let names = train.class_names().map(<[String]>::to_vec);
    let n = train.len();
    let train = if n > MAX_PIXEL_TRAIN {
        let pct = 100.0 * MAX_PIXEL_TRAIN as f64 / n as f64;
        splits::labelled_subset(train, pct, None, seed)?
    } else {
        splits::labelled_subset(train, 100.0, None, seed)?
    };
    let val = splits::open_split(data_dir, "val", false)?;
    let val = splits::onto_train_classes(val, names.as_deref(), classes)?;
    let flat = |x: &candle_core::Tensor| Ok(x.flatten_from(1)?);
    let ftrain = extract_with(
        flat,
        splits::eval_batches(train, side, 256, workers, &Device::Cpu)?,
    )?;
    let fval = extract_with(
        flat,
        splits::eval_batches(val, side, 256, workers, &Device::Cpu)?,
    )?;
    Ok((ftrain, fval, classes))
}

/// The baselines: `random` holds the random-init results the caller computed
/// with its own protocol; raw pixels and chance are computed here.
pub fn evaluate(
    data_dir: &Path,
    size: u32,
    seed: u64,
    workers: usize,
    random_init_linear: Option<(f64, f64)>,
    random_init_knn: Option<Vec<(usize, f64)>>,
) -> Result<ImageBaselines> {
    eprintln!("baseline: raw-pixel k-NN at {} px", size.min(PIXEL_SIDE));
    let (tr, va, classes) = pixel_features(data_dir, size, seed, workers)?;
    let raw_pixel_knn = centred_knn(&tr, &va, classes, &[20, 200])?;
    let (c1, c5) = chance(classes);
    Ok(ImageBaselines {
        random_init_linear,
        random_init_knn,
        raw_pixel_knn,
        pixel_side: size.min(PIXEL_SIDE),
        pixel_train_images: tr.len(),
        chance_top1: c1,
        chance_top5: c5,
    })
}

/// Prints the baseline rows of a results table whose first row (the
/// pretrained encoder) the caller printed.
pub fn print_rows(b: &ImageBaselines) {
    if let Some((t1, t5)) = b.random_init_linear {
        println!("| random init, linear | {t1:.2}% | {t5:.2}% |");
    }
    for (k, t) in b.random_init_knn.iter().flatten() {
        println!("| random init, {k}-NN | {t:.2}% | |");
    }
    for (k, t) in &b.raw_pixel_knn {
        println!("| raw pixels ({} px), {k}-NN | {t:.2}% | |", b.pixel_side);
    }
    println!("| chance | {:.2}% | {:.2}% |", b.chance_top1, b.chance_top5);
}

/// Writes `baselines.json` into `dir`.
pub fn save(dir: &Path, b: &ImageBaselines) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    vicreg_core::io::write_atomic(
        &dir.join("baselines.json"),
        serde_json::to_string_pretty(b)?.as_bytes(),
    )?;
    Ok(())
}

//! `imagenet linear-eval` and `imagenet knn-eval`: the paper's protocols on a
//! frozen (or fine-tuned) backbone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use datasets::image::ImageSource;
use encoders::ImageEncoder;
use serde_json::json;
use std::sync::Arc;

use candle_core::Tensor;
use datasets::augment::{LinearTrainTransform, LinearTrainTransformConfig};
use datasets::image::{collate_labelled, LabelledImageDataset};
use datasets::loader::{Loader, LoaderConfig};
use vicreg_core::eval::{
    extract_features, finetune, knn_classify, linear_probe, standardize, EpochAccuracy, Features,
    FinetuneConfig, KnnConfig, LabelledBatches, LinearProbeConfig, ProbeResult,
};
use vicreg_core::ParamStore;

use crate::model;
use datasets::image::splits;

/// Frozen representations of every image of `source` (eval transform, eval-mode BN).
pub fn features<S: ImageSource + 'static>(
    net: &ImageEncoder,
    source: S,
    size: u32,
    workers: usize,
    device: &Device,
) -> Result<Features> {
    let batches = splits::eval_batches(source, size, 128, workers, device)?;
    Ok(extract_features(net, batches)?)
}

/// The backbone to evaluate (and the store of its variables): pretrained
/// weights, or seeded random init when `pretrained` is None.
pub fn backbone_with_store(
    arch: &str,
    pretrained: Option<&Path>,
    seed: u64,
    device: &Device,
) -> Result<(ImageEncoder, ParamStore)> {
    match pretrained {
        Some(p) => model::load_backbone(arch, p, device),
        None => {
            let store = ParamStore::new(seed);
            let net = model::backbone(
                arch,
                &encoders::ImageEncoderOptions::default(),
                &store,
                device,
            )?;
            Ok((net, store))
        }
    }
}

/// The backbone alone (see [`backbone_with_store`]).
pub fn backbone(
    arch: &str,
    pretrained: Option<&Path>,
    seed: u64,
    device: &Device,
) -> Result<ImageEncoder> {
    Ok(backbone_with_store(arch, pretrained, seed, device)?.0)
}

/// Resolves `--arch`: the flag, else the pretraining run's config.toml, else resnet50.
pub fn resolve_arch(arch: Option<String>, pretrained: Option<&Path>) -> String {
    arch.or_else(|| pretrained.and_then(model::arch_of_run))
        .unwrap_or_else(|| "resnet50".into())
}

/// The labelled training images (`train_percent` of each class, or the files
/// of `subset_file`) and the val images mapped onto the training classes,
/// with the class names (an ImageFolder's folders; `0`, `1`, ... for IDX
/// labels): what [`split_features`] embeds, in its order.
pub fn eval_splits(
    data_dir: &Path,
    train_percent: f64,
    subset_file: Option<&Path>,
    seed: u64,
) -> Result<(splits::Subset, splits::OnTrainClasses, Vec<String>)> {
    let train = splits::open_split(data_dir, "train", false)?;
    let classes = train.num_classes();
    let names = train.class_names().map(<[String]>::to_vec);
    let train = splits::labelled_subset(train, train_percent, subset_file, seed)?;
    let val = splits::open_split(data_dir, "val", false)?;
    let val = splits::onto_train_classes(val, names.as_deref(), classes)?;
    let names = names.unwrap_or_else(|| (0..classes).map(|c| c.to_string()).collect());
    Ok((train, val, names))
}

/// Train/val features of a data directory for `net`, with the class names
/// (their count is the number of classes; see [`eval_splits`]).
#[allow(clippy::too_many_arguments)]
pub fn split_features(
    net: &ImageEncoder,
    data_dir: &Path,
    size: u32,
    train_percent: f64,
    subset_file: Option<&Path>,
    seed: u64,
    workers: usize,
    device: &Device,
) -> Result<(Features, Features, Vec<String>)> {
    let (train, val, names) = eval_splits(data_dir, train_percent, subset_file, seed)?;
    eprintln!(
        "extracting features: {} train images, {} val images",
        train.len(),
        val.len()
    );
    let ftrain = features(net, train, size, workers, device)?;
    let fval = features(net, val, size, workers, device)?;
    Ok((ftrain, fval, names))
}

/// Linear probe on frozen, standardised features, writing `linear_eval.json` into `out_dir` if given.
pub fn linear_eval(
    train: &Features,
    val: &Features,
    classes: usize,
    cfg: &LinearProbeConfig,
    out_dir: Option<&Path>,
) -> Result<ProbeResult> {
    let (train, val) = standardize(train, val)?;
    let (train, val) = (&train, &val);
    let r = linear_probe(train, val, classes, cfg)?;
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let p = dir.join("linear_eval.json");
        let v = json!({"top1": r.top1, "top5": r.top5, "train_top1": r.train_top1, "final_loss": r.final_loss, "config": cfg, "train_samples": train.len(), "val_samples": val.len()});
        vicreg_core::io::write_atomic(&p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(r)
}

/// Weighted k-NN top-1 for each k, writing `knn_eval.json` into `out_dir` if given.
pub fn knn_eval(
    train: &Features,
    val: &Features,
    classes: usize,
    cfg: &KnnConfig,
    out_dir: Option<&Path>,
) -> Result<Vec<(usize, f64)>> {
    let r = knn_classify(train, val, classes, cfg)?;
    let out: Vec<(usize, f64)> = r.iter().map(|x| (x.k, x.top1)).collect();
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let v = json!({"knn": out.iter().map(|(k, t)| json!({"k": k, "top1": t})).collect::<Vec<_>>(), "temperature": cfg.temperature});
        vicreg_core::io::write_atomic(
            &dir.join("knn_eval.json"),
            serde_json::to_string_pretty(&v)?.as_bytes(),
        )?;
    }
    Ok(out)
}

/// Where evaluation results go by default: next to the pretrained weights.
pub fn default_out_dir(pretrained: Option<&Path>) -> Option<PathBuf> {
    pretrained.map(|p| {
        if p.is_dir() {
            p.to_path_buf()
        } else {
            p.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
    })
}

/// The paper's semi-supervised protocol: backbone and linear head fine-tuned
/// together on the labelled subset (random resized crops + flips), evaluated
/// on `val` after every epoch; per-epoch top-1/top-5 go to
/// `finetune_eval.jsonl` in `out_dir`.
#[allow(clippy::too_many_arguments)]
pub fn finetune_eval(
    arch: &str,
    pretrained: Option<&Path>,
    data_dir: &Path,
    size: u32,
    train_percent: f64,
    subset_file: Option<&Path>,
    cfg: &FinetuneConfig,
    batch_size: usize,
    workers: usize,
    device: &Device,
    out_dir: Option<&Path>,
) -> Result<EpochAccuracy> {
    let (net, store) = backbone_with_store(arch, pretrained, cfg.seed, device)?;
    let train = splits::open_split(data_dir, "train", false)?;
    let classes = train.num_classes();
    let names = train.class_names().map(<[String]>::to_vec);
    let train = splits::labelled_subset(train, train_percent, subset_file, cfg.seed)?;
    let tcfg = if size == 224 {
        LinearTrainTransformConfig::default()
    } else {
        LinearTrainTransformConfig::small_images(size)
    };
    let ds = Arc::new(LabelledImageDataset::new(
        train,
        LinearTrainTransform::new(tcfg)?,
    ));
    let dev = device.clone();
    let loader = Loader::new(
        ds,
        LoaderConfig {
            batch_size,
            num_workers: workers,
            seed: cfg.seed,
            drop_last: false,
            // The probe sees every training image or fails naming the bad one.
            policy: datasets::image::BadSamplePolicy::Strict,
            ..LoaderConfig::default()
        },
        move |items| collate_labelled(items, &dev),
    )?;
    let steps = loader.steps_per_epoch();
    let mut train_batches =
        |epoch: usize| -> vicreg_core::Result<LabelledBatches<'static, Tensor>> {
            Ok(Box::new(
                loader
                    .iter_epoch(epoch as u64, 0)
                    .map(datasets::loader::to_labelled),
            ))
        };
    let val_dir = data_dir.to_path_buf();
    let vdev = device.clone();
    let mut val_batches = || -> vicreg_core::Result<LabelledBatches<'static, Tensor>> {
        let val = splits::open_split(&val_dir, "val", false)
            .and_then(|v| splits::onto_train_classes(v, names.as_deref(), classes))
            .map_err(|e| vicreg_core::Error::invalid(format!("{e:#}")))?;
        let it = splits::eval_batches(val, size, 128, workers, &vdev)
            .map_err(|e| vicreg_core::Error::invalid(format!("{e:#}")))?;
        Ok(Box::new(it))
    };
    let log = match out_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            Some(d.join("finetune_eval.jsonl"))
        }
        None => None,
    };
    let mut on_epoch = |a: &EpochAccuracy| -> vicreg_core::Result<()> {
        eprintln!(
            "epoch {}: train loss {:.4}, val top-1 {:.2}%, top-5 {:.2}%",
            a.epoch + 1,
            a.train_loss,
            a.top1,
            a.top5
        );
        if let Some(p) = &log {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| vicreg_core::Error::io(p, e))?;
            let line = json!({"epoch": a.epoch, "train_loss": a.train_loss, "top1": a.top1, "top5": a.top5, "train_percent": train_percent});
            writeln!(f, "{line}").map_err(|e| vicreg_core::Error::io(p, e))?;
        }
        Ok(())
    };
    Ok(finetune(
        &net,
        store.trainable_vars(),
        classes,
        steps,
        &mut train_batches,
        &mut val_batches,
        cfg,
        &mut on_epoch,
    )?)
}

/// Draws the t-SNE map of the validation representations `val` coloured by
/// class (`classes`: the names [`split_features`] returned), and the collapse
/// pictures, into `dir` (`val-map.svg`, `val-std.svg`, `val-correlation.svg`);
/// prints where and the map's 2-D 5-NN accuracy.
pub fn val_pictures(dir: &Path, val: &Features, classes: &[String]) -> Result<()> {
    if val.len() < 4 {
        return Ok(());
    }
    let pics = vicreg_core::insight::draw_pictures(
        dir,
        "val",
        &val.x,
        &val.labels,
        classes,
        &vicreg_core::insight::TsneConfig::default(),
    )?;
    eprintln!(
        "map of {} val representations: {} (2-D 5-NN accuracy {:.1}%), {}, {}",
        pics.points,
        pics.map.display(),
        100.0 * pics.knn_2d,
        pics.std_histogram.display(),
        pics.correlation.display()
    );
    Ok(())
}

/// Writes `<dir>/knn_gallery.html`: for `n` val images drawn with `seed`, the
/// 5 nearest training images by cosine similarity of the representations
/// (`train` / `val` as [`split_features`] made them from `splits`), the ones
/// of the query's class marked. Returns its path.
pub fn knn_gallery(
    dir: &Path,
    train: &Features,
    val: &Features,
    splits: (splits::Subset, splits::OnTrainClasses),
    class_names: &[String],
    n: usize,
    seed: u64,
) -> Result<PathBuf> {
    use datasets::media::thumbnail_uri_of;
    use vicreg_core::insight::{
        cosine_similarities, top_k, write_gallery, Hit, Item, Media, Row, Section,
    };
    const TOP: usize = 5;
    let (tsrc, vsrc) = splits;
    let mut picks = vicreg_core::SeededRng::for_name(seed, "knn-gallery").permutation(val.len());
    picks.truncate(n);
    let sims = cosine_similarities(&val.x, &picks, &train.x)?;
    let class = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let item = |src: &dyn ImageSource, i: usize, label: usize| -> Result<Item> {
        let img = src
            .load(i)
            .with_context(|| src.name(i).unwrap_or_else(|| format!("image #{i}")))?;
        let file = src
            .name(i)
            .and_then(|p| {
                Path::new(&p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| format!("#{i}"));
        Ok(Item {
            text: format!("{} ({file})", class(label)),
            media: Media::Image(thumbnail_uri_of(&img, 128)?),
        })
    };
    let mut rows = Vec::new();
    for (&v, scores) in picks.iter().zip(&sims) {
        let hits = top_k(scores, TOP, None)
            .into_iter()
            .map(|(t, score)| {
                Ok(Hit {
                    item: item(&tsrc, t, train.labels[t])?,
                    score,
                    correct: train.labels[t] == val.labels[v],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push(Row {
            query: item(&vsrc, v, val.labels[v])?,
            hits,
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("knn_gallery.html");
    write_gallery(
        &path,
        "imagenet: nearest training images of val images",
        &format!(
            "{} training and {} val images; the {TOP} nearest training images by cosine similarity of the representations, same class in green.",
            train.len(),
            val.len()
        ),
        &[Section {
            title: "val image -> nearest training images".into(),
            rows,
        }],
    )?;
    Ok(path)
}

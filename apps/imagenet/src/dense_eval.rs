//! `imagenet dense-eval`: a linear segmentation probe on the frozen final
//! feature map, on built-in scenes of several objects with pixel masks
//! (`datasets::synth_scenes`): each feature-map cell is labelled with the
//! majority class of its pixels (background or one of the shapes), a linear
//! classifier is trained on the training scenes' cells (standardised
//! features, held-out weight decay as `linear-eval`) and scored on the val
//! scenes' cells by cell accuracy and mean IoU, beside the same probe on a
//! random-init backbone and the all-background guess. What a local criterion
//! (VICRegL) should improve over a global one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use datasets::augment::{to_normalized_chw, Normalization};
use datasets::synth_scenes::{cell_labels, render_scene, MAX_OBJECTS, MAX_SCENE_SIZE};
use encoders::ImageEncoder;
use serde_json::json;
use vicreg_core::eval::{
    dense_probe, mean_iou, select_weight_decay, standardize, with_min_steps, DenseProbeResult,
    Features, LinearProbeConfig, VAL_FRAC, WD_GRID,
};
use vicreg_core::model::DenseEncoder;
use vicreg_core::parse_device;

use crate::config::limits;
use crate::evaluate::{backbone, default_out_dir, resolve_arch};

/// Flags of `dense-eval`.
#[derive(clap::Args, Debug)]
pub struct DenseEvalArgs {
    /// Backbone weights: a run directory, its <arch>-encoder.safetensors, or an official .pth. Omit for random init alone.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Backbone architecture (default: the pretraining run's, else resnet50).
    #[arg(long)]
    pub arch: Option<String>,
    /// Side of the scenes in pixels (the final feature map is about side / 32 cells each way). Range 32..=1024.
    #[arg(long, value_parser = limits::int::<u32>(32..=MAX_SCENE_SIZE as u64), default_value_t = 128)]
    pub scene_size: u32,
    /// Training scenes. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::PER_CLASS), default_value_t = 600)]
    pub train_scenes: usize,
    /// Val scenes. Range 1..=100000.
    #[arg(long, value_parser = limits::int::<usize>(limits::PER_CLASS), default_value_t = 200)]
    pub val_scenes: usize,
    /// Shape classes (of the 10 built-in ones; plus background). Range 1..=10.
    #[arg(long, value_parser = limits::int::<usize>(1..=10), default_value_t = 10)]
    pub classes: usize,
    /// Most objects per scene. Range 1..=16.
    #[arg(long, value_parser = limits::int::<usize>(1..=MAX_OBJECTS as u64), default_value_t = 3)]
    pub max_objects: usize,
    /// Seed of the scenes and of the random-init baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also probe a randomly initialised backbone (on by default with --pretrained).
    #[arg(long)]
    pub baselines: Option<bool>,
    /// Where dense_eval.json goes (default: the --pretrained run directory).
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Cells of `n` scenes starting at `first`: features `(cells, dim)` of the
/// frozen backbone (eval mode) and each cell's majority class.
fn scene_cells(
    net: &ImageEncoder,
    a: &DenseEvalArgs,
    first: u64,
    n: usize,
    device: &Device,
) -> Result<Features> {
    let norm = Normalization::imagenet();
    let mut xs = Vec::new();
    let mut labels = Vec::new();
    for chunk_start in (0..n).step_by(64) {
        let count = 64.min(n - chunk_start);
        let scenes: Vec<_> = (0..count)
            .map(|i| {
                render_scene(
                    a.seed,
                    first + (chunk_start + i) as u64,
                    a.scene_size,
                    a.classes,
                    a.max_objects,
                )
            })
            .collect::<datasets::Result<_>>()?;
        let mut data = Vec::with_capacity(count * 3 * (a.scene_size * a.scene_size) as usize);
        for s in &scenes {
            data.extend_from_slice(&to_normalized_chw(&s.image, &norm, 3).data);
        }
        let side = a.scene_size as usize;
        let batch = Tensor::from_vec(data, (count, 3, side, side), device)?;
        let (maps, grid, _) = net.forward_maps(&batch, false)?;
        let (b, cells, c) = maps.dims3()?;
        xs.push(maps.detach().reshape((b * cells, c))?);
        for s in &scenes {
            labels.extend(cell_labels(&s.mask, a.scene_size, grid));
        }
    }
    Ok(Features::new(Tensor::cat(&xs, 0)?, labels)?)
}

/// The probe of `net` on the train / val scenes, and the val cells' labels.
fn probe(
    net: &ImageEncoder,
    a: &DenseEvalArgs,
    device: &Device,
) -> Result<(DenseProbeResult, Vec<usize>)> {
    let train = scene_cells(net, a, 0, a.train_scenes, device)?;
    let val = scene_cells(net, a, 1_000_000, a.val_scenes, device)?;
    let (train, val) = standardize(&train, &val)?;
    let classes = a.classes + 1;
    let cfg = with_min_steps(&LinearProbeConfig::default(), train.len());
    // The weight decay chosen on held-out training cells, as linear-eval does.
    let sel = select_weight_decay(&train, classes, &cfg, &WD_GRID, VAL_FRAC)?;
    let cfg = LinearProbeConfig {
        weight_decay: sel.chosen,
        ..cfg
    };
    Ok((dense_probe(&train, &val, classes, &cfg)?, val.labels))
}

/// `dense-eval`.
pub fn run(a: &DenseEvalArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let arch = resolve_arch(a.arch.clone(), a.pretrained.as_deref());
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut add = |name: String, r: &DenseProbeResult| {
        rows.push(format!(
            "| {name} | {:.2}% | {:.2}% | {:.2}% |",
            r.cell_accuracy, r.miou, r.train_accuracy
        ));
        json_rows.push(json!({
            "encoder": name,
            "cell_accuracy": r.cell_accuracy,
            "miou": r.miou,
            "train_cell_accuracy": r.train_accuracy,
        }));
    };
    eprintln!(
        "dense probe: {} train / {} val scenes of {} px, {} shapes + background",
        a.train_scenes, a.val_scenes, a.scene_size, a.classes
    );
    if let Some(p) = &a.pretrained {
        let net = backbone(&arch, Some(p), a.seed, &device)?;
        add(format!("pretrained {arch}"), &probe(&net, a, &device)?.0);
    }
    if a.pretrained.is_none() || a.baselines.unwrap_or(true) {
        let net = backbone(&arch, None, a.seed, &device)?;
        let (random, labels) = probe(&net, a, &device)?;
        add(format!("random init {arch}"), &random);
        // The all-background guess on the same val cells.
        let guess = vec![0; labels.len()];
        let (miou, _) = mean_iou(&guess, &labels, a.classes + 1);
        let acc =
            100.0 * labels.iter().filter(|&&l| l == 0).count() as f64 / labels.len().max(1) as f64;
        rows.push(format!("| all background | {acc:.2}% | {miou:.2}% | |"));
        json_rows.push(json!({"encoder": "all background", "cell_accuracy": acc, "miou": miou}));
    }
    println!("| encoder | cell accuracy | mIoU | train cell accuracy |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    let out = a
        .exp_dir
        .clone()
        .or_else(|| default_out_dir(a.pretrained.as_deref()));
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("dense_eval.json");
        let body = json!({
            "scene_size": a.scene_size,
            "train_scenes": a.train_scenes,
            "val_scenes": a.val_scenes,
            "classes": a.classes,
            "max_objects": a.max_objects,
            "seed": a.seed,
            "rows": json_rows,
        });
        vicreg_core::io::write_atomic(&path, serde_json::to_string_pretty(&body)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("results: {}", path.display());
    }
    Ok(())
}

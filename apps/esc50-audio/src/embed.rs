//! `esc50-audio embed`: the representations of every clip of a data set
//! (ESC-50 layout) from a run's encoders, for NumPy and other tools, with
//! the t-SNE map of the classes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use datasets::audio::{EvalView, ESC50_FOLDS};
use vicreg_core::insight::{draw_pictures, export_embeddings, TsneConfig};

use crate::config::{parse_device, PretrainConfig};
use crate::data::{self, EvalPlan};
use crate::model::{BranchSel, Encoders};

/// Flags of `embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// A pretraining run directory (its config.toml and encoders).
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// Data directory (ESC-50 layout; default: the run's).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output path STEM: writes STEM.npy (NumPy float32, one row per clip), STEM.safetensors, STEM.csv (index,name,label) and, with --map, STEM-map.svg, STEM-std.svg, STEM-correlation.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Representation: wave, spec or both (concatenated).
    #[arg(long, value_enum, default_value = "wave")]
    pub branch: BranchSel,
    /// Folds to embed (comma-separated; default: all five).
    #[arg(long, value_delimiter = ',', value_parser = crate::config::limits::int::<u8>(crate::config::limits::FOLD))]
    pub folds: Vec<u8>,
    /// What the encoders see of a clip: full, windows or center (default: the run's eval-view).
    #[arg(long)]
    pub view: Option<EvalView>,
    /// Also draw the t-SNE map coloured by class and the collapse pictures (true|false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub map: bool,
    /// Clips per batch. Range 1..=1048576.
    #[arg(long, value_parser = crate::config::limits::int::<usize>(crate::config::limits::BATCH_SIZE), default_value_t = 32)]
    pub batch_size: usize,
    /// Loader worker threads. Range 0..=256.
    #[arg(long, value_parser = crate::config::limits::int::<usize>(crate::config::limits::NUM_WORKERS), default_value_t = 2)]
    pub num_workers: usize,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `embed`; returns the files written and, with a map, its 2-D 5-NN accuracy.
pub fn run(a: &EmbedArgs) -> Result<(Vec<PathBuf>, Option<f64>)> {
    let cfg = PretrainConfig::of_run(&a.exp_dir)?;
    let Some(data_dir) = a.data_dir.clone().or_else(|| cfg.data.data_dir.clone()) else {
        bail!("{}: its config has no data-dir; pass --data-dir", a.exp_dir.display());
    };
    let device = parse_device(&a.device)?;
    let index = data::open_index(&data_dir)?;
    let folds: Vec<u8> = if a.folds.is_empty() {
        (1..=ESC50_FOLDS).collect()
    } else {
        a.folds.clone()
    };
    let plan = EvalPlan::new(&cfg, &index, a.view.unwrap_or(cfg.eval_view))?;
    let enc = Encoders::load(&a.exp_dir, &cfg, a.branch, &device)?;
    let batches = data::eval_batches(
        index.clone(),
        &folds,
        &plan,
        a.batch_size,
        a.num_workers,
        &device,
    )?;
    let feats = enc.select(&enc.features(batches)?, a.branch)?;
    let names = data::clip_names(&index, &folds)?;
    if names.len() != feats.len() {
        bail!(
            "{}: {} clips listed but {} embedded",
            data_dir.display(),
            names.len(),
            feats.len()
        );
    }
    let classes = index.classes().to_vec();
    let mut files =
        export_embeddings(&a.out, &feats.x, &names, Some((&feats.labels, &classes)))?;
    let mut knn_2d = None;
    if a.map && feats.len() >= 4 {
        let dir = a.out.parent().filter(|p| !p.as_os_str().is_empty());
        let prefix = a
            .out
            .file_name()
            .map_or("embeddings".into(), |n| n.to_string_lossy().into_owned());
        let pics = draw_pictures(
            dir.unwrap_or(Path::new(".")),
            &prefix,
            &feats.x,
            &feats.labels,
            &classes,
            &TsneConfig::default(),
        )?;
        knn_2d = Some(pics.knn_2d);
        files.extend([pics.map, pics.std_histogram, pics.correlation]);
    }
    Ok((files, knn_2d))
}

//! `coco-retrieval embed`: the test set's image and caption embeddings (the
//! vectors retrieval ranks by: expander outputs, L2-normalised) for NumPy and
//! other tools, with a t-SNE map of both modalities.

use std::path::PathBuf;

use anyhow::Result;
use candle_core::Tensor;
use vicreg_core::insight::{export_embeddings, TsneConfig};

use crate::config::parse_device;
use crate::{evaluate, model};

/// Flags of `embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// The pretraining run directory.
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// Output path STEM: writes STEM-images.{npy,safetensors,csv} (one row per test image; name = file) and STEM-captions.{npy,safetensors,csv} (one row per caption; name = the caption, label = its image's file) and, with --map, STEM-map.svg (images and captions on one t-SNE map, coloured by modality), STEM-std.svg, STEM-correlation.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw the map and the collapse pictures (true|false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub map: bool,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `embed`; returns the files written.
pub fn run(a: &EmbedArgs) -> Result<Vec<PathBuf>> {
    let device = parse_device(&a.device)?;
    let run = model::load_run(&a.exp_dir, true, &device)?;
    let (index, _) = evaluate::run_index(&run, &a.exp_dir, run.cfg.data.num_workers, &device)?;
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", a.out.display()));
    let meta = &index.meta;
    let image_names: Vec<String> = meta
        .images
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut files = export_embeddings(&with("-images"), &index.images, &image_names, None)?;
    let owners: Vec<usize> = meta.caption_image.clone();
    files.extend(export_embeddings(
        &with("-captions"),
        &index.captions,
        &meta.captions,
        Some((&owners, &image_names)),
    )?);
    let (ni, nc) = (meta.images.len(), meta.captions.len());
    if a.map && ni + nc >= 4 {
        let both = Tensor::cat(&[&index.images, &index.captions], 0)?;
        let modality: Vec<usize> = (0..ni + nc).map(|i| usize::from(i >= ni)).collect();
        let pics = vicreg_core::insight::draw_pictures_for(
            &a.out,
            &both,
            &modality,
            &["image".to_string(), "caption".to_string()],
            &TsneConfig::default(),
        )?;
        files.extend([pics.map, pics.std_histogram, pics.correlation]);
    }
    Ok(files)
}

//! `coco-retrieval embed`: the test set's image and caption embeddings (the
//! vectors retrieval ranks by: expander outputs, L2-normalised) for NumPy and
//! other tools, with a t-SNE map of both modalities.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::Tensor;
use vicreg_core::insight::{export_embeddings, Pictures, TsneConfig};

use crate::evaluate::RetrievalIndex;
use crate::{evaluate, model};
use vicreg_core::parse_device;

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
    if a.map && meta.images.len() + meta.captions.len() >= 4 {
        let pics = modality_map(&index, &a.out)?;
        files.extend([pics.map, pics.std_histogram, pics.correlation]);
    }
    Ok(files)
}

/// The test images and captions on one t-SNE map, coloured by modality, and
/// the collapse pictures of both together, as `<stem>-map.svg`,
/// `<stem>-std.svg`, `<stem>-correlation.svg`.
pub fn modality_map(index: &RetrievalIndex, stem: &Path) -> Result<Pictures> {
    let ni = index.meta.images.len();
    let nc = index.meta.captions.len();
    let both = Tensor::cat(&[&index.images, &index.captions], 0)?;
    let modality: Vec<usize> = (0..ni + nc).map(|i| usize::from(i >= ni)).collect();
    Ok(vicreg_core::insight::draw_pictures_for(
        stem,
        &both,
        &modality,
        &["image".to_string(), "caption".to_string()],
        &TsneConfig::default(),
    )?)
}

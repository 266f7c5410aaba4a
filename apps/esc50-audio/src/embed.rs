//! `esc50-audio embed`: the representations of every clip of a data set
//! (ESC-50 layout) from a run's encoders, for NumPy and other tools, with
//! the t-SNE map of the classes.

use std::path::{Path, PathBuf};
use vicreg_core::recipe::AppConfig;

use anyhow::{bail, Result};
use datasets::audio::load_wav;
use datasets::audio::{clip_names, eval_batches, open_index, EvalView, ESC50_FOLDS};
use datasets::media::wav_uri;
use vicreg_core::eval::Features;
use vicreg_core::insight::{
    cosine_similarities, export_embeddings, top_k, write_gallery, Hit, Item, Media, Row, Section,
    TsneConfig,
};
use vicreg_core::SeededRng;

use crate::config::{parse_device, PretrainConfig};
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
    /// Representation: wave, spec or both (concatenated). Default: wave, or spec for a spec-spec run.
    #[arg(long, value_enum)]
    pub branch: Option<BranchSel>,
    /// Folds to embed (comma-separated; default: all five).
    #[arg(long, value_delimiter = ',', value_parser = crate::config::limits::int::<u8>(crate::config::limits::FOLD))]
    pub folds: Vec<u8>,
    /// What the encoders see of a clip: full, windows or center (default: the run's eval-view).
    #[arg(long)]
    pub view: Option<EvalView>,
    /// Also draw the t-SNE map coloured by class and the collapse pictures (true|false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub map: bool,
    /// Also write STEM-gallery.html: for this many clips (`--gallery` alone: 12) the 5 nearest other clips, with audio players, same class marked (0: no page). Range 0..=1000.
    #[arg(long, value_parser = crate::config::limits::int::<usize>(0..=1000), default_value_t = 0, num_args = 0..=1, default_missing_value = "12")]
    pub gallery: usize,
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
        bail!(
            "{}: its config has no data-dir; pass --data-dir",
            a.exp_dir.display()
        );
    };
    let device = parse_device(&a.device)?;
    let index = open_index(&data_dir)?;
    let folds: Vec<u8> = if a.folds.is_empty() {
        (1..=ESC50_FOLDS).collect()
    } else {
        a.folds.clone()
    };
    let plan = cfg
        .audio
        .eval_plan(&index, a.view.unwrap_or(cfg.audio.eval_view))?;
    let branch = a.branch.unwrap_or(BranchSel::default_for(cfg.pairing));
    let enc = Encoders::load(&a.exp_dir, &cfg, branch, &device)?;
    let batches = eval_batches(
        index.clone(),
        &folds,
        &plan,
        a.batch_size,
        a.num_workers,
        &device,
    )?;
    let feats = enc.select(&enc.features(batches)?, branch)?;
    let names = clip_names(&index, &folds)?;
    if names.len() != feats.len() {
        bail!(
            "{}: {} clips listed but {} embedded",
            data_dir.display(),
            names.len(),
            feats.len()
        );
    }
    let classes = index.classes().to_vec();
    let mut files = export_embeddings(&a.out, &feats.x, &names, Some((&feats.labels, &classes)))?;
    let mut knn_2d = None;
    if a.map && feats.len() >= 4 {
        let pics = vicreg_core::insight::draw_pictures_for(
            &a.out,
            &feats.x,
            &feats.labels,
            &classes,
            &TsneConfig::default(),
        )?;
        knn_2d = Some(pics.knn_2d);
        files.extend([pics.map, pics.std_histogram, pics.correlation]);
    }
    if a.gallery > 0 {
        let paths: Vec<PathBuf> = index
            .select_folds(&folds)?
            .into_iter()
            .map(|i| index.audio_path(&index.clips()[i]))
            .collect();
        let page = PathBuf::from(format!("{}-gallery.html", a.out.display()));
        gallery(&page, &feats, &paths, &classes, a.gallery, cfg.train.seed)?;
        files.push(page);
    }
    Ok((files, knn_2d))
}

/// Writes the nearest-clips page: for `n` clips drawn with `seed`, the 5
/// nearest other clips by cosine similarity, each with an audio player (the
/// file as decoded, mono, at 16 kHz), same class marked.
fn gallery(
    page: &Path,
    feats: &Features,
    paths: &[PathBuf],
    classes: &[String],
    n: usize,
    seed: u64,
) -> Result<()> {
    const TOP: usize = 5;
    const RATE: u32 = 16_000;
    let item = |i: usize| -> Result<Item> {
        let wave = load_wav(&paths[i], RATE)?;
        let file = paths[i].file_name().map_or_else(
            || paths[i].display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        Ok(Item {
            text: format!(
                "{} ({file})",
                classes.get(feats.labels[i]).map_or("?", String::as_str)
            ),
            media: Media::Audio(wav_uri(&wave, RATE)?),
        })
    };
    let mut picks = SeededRng::for_name(seed, "clip-gallery").permutation(feats.len());
    picks.truncate(n);
    let sims = cosine_similarities(&feats.x, &picks, &feats.x)?;
    let mut rows = Vec::new();
    for (&q, scores) in picks.iter().zip(&sims) {
        let hits = top_k(scores, TOP, Some(q))
            .into_iter()
            .map(|(j, score)| {
                Ok(Hit {
                    item: item(j)?,
                    score,
                    correct: feats.labels[j] == feats.labels[q],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push(Row {
            query: item(q)?,
            hits,
        });
    }
    write_gallery(
        page,
        "esc50-audio: nearest clips",
        &format!(
            "{} clips; the {TOP} nearest other clips by cosine similarity of the representations, same class in green.",
            feats.len()
        ),
        &[Section {
            title: "clip -> nearest clips".into(),
            rows,
        }],
    )?;
    Ok(())
}

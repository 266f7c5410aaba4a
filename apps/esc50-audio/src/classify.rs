//! `esc50-audio classify`: top-5 classes of wav files with a run directory's
//! encoders and saved linear head. Files of any rate and channel count are
//! downmixed to mono, resampled to the run's rate and shown to the encoders
//! the way the head's features were made (its `view`: the whole file, the mean
//! over windows that hold sound, or one centred crop).

use std::path::{Path, PathBuf};
use vicreg_core::recipe::AppConfig;

use anyhow::{Context, Result};
use candle_core::Device;
use datasets::audio::load_wav;
use serde::Serialize;

use crate::config::{parse_device, PretrainConfig};
use crate::head;
use crate::model::{BranchSel, Encoders};

/// The classes of one file, most probable first.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    /// The file.
    pub file: PathBuf,
    /// `(class name, probability in [0, 1])`, at most 5.
    pub top: Vec<(String, f64)>,
}

/// Classifies `files` with the encoders and head of run directory `exp`.
pub fn run(
    exp: &Path,
    files: &[PathBuf],
    branch: Option<BranchSel>,
    device: &str,
) -> Result<Vec<Prediction>> {
    if files.is_empty() {
        anyhow::bail!("classify needs at least one wav file");
    }
    let device: Device = parse_device(device)?;
    let cfg = PretrainConfig::of_run(exp)?;
    let (head, meta) = head::load(exp, branch)?;
    let enc = Encoders::load(exp, &cfg, meta.branch, &device)?;
    let plan = cfg.audio.file_plan(meta.view);
    let mut out = Vec::new();
    for f in files {
        let wave = load_wav(f, cfg.audio.sample_rate)
            .with_context(|| format!("cannot classify {}", f.display()))?;
        let x = plan.input_of(&wave, &device)?;
        let p: Vec<f32> = head
            .probabilities(&enc.forward_eval(&x)?)?
            .squeeze(0)?
            .to_vec1()?;
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        let top = order
            .iter()
            .take(5)
            .map(|&c| (meta.classes[c].clone(), p[c] as f64))
            .collect();
        out.push(Prediction {
            file: f.clone(),
            top,
        });
    }
    Ok(out)
}

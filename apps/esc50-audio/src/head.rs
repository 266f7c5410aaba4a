//! The saved linear classifier that `classify` uses, one per representation:
//! `classifier-<branch>.safetensors`, a [`LinearHead`] (per-dimension
//! standardisation of frozen features with the training set's mean and std,
//! then a linear layer; tensors `mean`, `std`, `weight` `(classes, dim)`,
//! `bias`), with `classifier-<branch>.json` (branch, class names, the folds
//! it was trained on, its view).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vicreg_core::eval::LinearHead;

use crate::model::BranchSel;

/// Weights file of the head reading `branch`.
pub fn head_file(branch: BranchSel) -> String {
    format!("classifier-{}.safetensors", branch.name())
}

/// Description file of the head reading `branch`.
pub fn head_meta(branch: BranchSel) -> String {
    format!("classifier-{}.json", branch.name())
}

/// What the head was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadMeta {
    /// Which representation it reads.
    pub branch: BranchSel,
    /// Class names, indexed by target.
    pub classes: Vec<String>,
    /// Folds of its training clips.
    pub train_folds: Vec<u8>,
    /// Top-1 on its training features (%).
    pub train_top1: f64,
    /// The evaluation view its features came from (`classify` uses the same);
    /// heads saved before views existed were trained on centred crops.
    #[serde(default = "center_view")]
    pub view: datasets::audio::EvalView,
}

fn center_view() -> datasets::audio::EvalView {
    datasets::audio::EvalView::Center
}

/// Writes `head` as `classifier-<branch>.safetensors` and `meta` as
/// `classifier-<branch>.json` into `dir`.
pub fn save(head: &LinearHead, dir: &Path, meta: &HeadMeta) -> Result<()> {
    head.save(&dir.join(head_file(meta.branch)))?;
    Ok(vicreg_core::io::write_json(
        &dir.join(head_meta(meta.branch)),
        meta,
    )?)
}

/// Reads the head of run directory `dir` for `branch`, or (None) the
/// first one present of both, wave, spec.
pub fn load(dir: &Path, branch: Option<BranchSel>) -> Result<(LinearHead, HeadMeta)> {
    let choices = match branch {
        Some(b) => vec![b],
        None => vec![BranchSel::Both, BranchSel::Wave, BranchSel::Spec],
    };
    let Some(&b) = choices
        .iter()
        .find(|&&b| dir.join(head_file(b)).is_file() && dir.join(head_meta(b)).is_file())
    else {
        bail!(
            "{}: no {}; run `esc50-audio eval` (or `supervised`) on this run directory first \
             (for a 5-fold run, point --exp-dir at one of its fold-N directories)",
            dir.display(),
            choices
                .iter()
                .map(|&b| head_file(b))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    };
    let (file, meta_file) = (dir.join(head_file(b)), dir.join(head_meta(b)));
    let meta: HeadMeta = serde_json::from_slice(
        &std::fs::read(&meta_file).with_context(|| format!("reading {}", meta_file.display()))?,
    )
    .with_context(|| format!("{}: invalid classifier description", meta_file.display()))?;
    let head = LinearHead::load(&file).with_context(|| format!("reading {}", file.display()))?;
    if head.num_classes() != meta.classes.len() {
        bail!(
            "{}: {} classes in the weights but {} in {}",
            file.display(),
            head.num_classes(),
            meta.classes.len(),
            meta_file.display()
        );
    }
    Ok((head, meta))
}

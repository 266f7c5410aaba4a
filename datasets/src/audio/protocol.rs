//! The evaluation protocols of a set in the ESC-50 layout (`meta/esc50.csv`
//! plus `audio/*.wav`, five folds): opening the set with a hint on its
//! layout, the leak-free fold plans (which folds each stage of a run may
//! read), and the clip lists written next to results so that the separation
//! of training and test clips can be audited.
//!
//! ```
//! use datasets::audio::protocol::{fold_plan, Protocol};
//!
//! // 5-fold cross-validation: five runs, each holding one fold out.
//! let runs = fold_plan(Protocol::Folds)?;
//! assert_eq!(runs.len(), 5);
//! assert!(runs.iter().all(|r| !r.train_folds.contains(&r.test_fold)));
//! // The 1600/400 split: folds 1-4 against fold 5.
//! assert_eq!(fold_plan(Protocol::Split)?[0].train_folds, vec![1, 2, 3, 4]);
//! # Ok::<(), datasets::Error>(())
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::audio::esc50::{train_fold_list, Esc50Index, ESC50_FOLDS};
use crate::{Error, Result};

/// Opens `<dir>/meta/esc50.csv`; a missing directory or index is an
/// [`Error::Layout`] that spells out the expected layout.
pub fn open_index(dir: &Path) -> Result<Arc<Esc50Index>> {
    if !dir.is_dir() {
        return Err(Error::Layout(format!(
            "data directory {} does not exist or is not a directory",
            dir.display()
        )));
    }
    let csv = dir.join("meta").join("esc50.csv");
    if !csv.is_file() {
        return Err(Error::Layout(format!(
            "{}: missing; expected the ESC-50 layout (meta/esc50.csv with columns \
             filename,fold,target,category,esc10,src_file,take and audio/*.wav)",
            csv.display()
        )));
    }
    Ok(Arc::new(Esc50Index::load(dir)?))
}

/// The folds one evaluation run may use: the encoder is pretrained on
/// `train_folds` only, the probe is trained on `train_folds` and tested on
/// `test_fold`, which nothing else ever reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FoldRun {
    /// The held-out fold (1..=5).
    pub test_fold: u8,
    /// The other four folds.
    pub train_folds: Vec<u8>,
}

impl FoldRun {
    /// The run that holds out `test_fold` (outside 1..=5: [`Error::Config`]).
    pub fn holding_out(test_fold: u8) -> Result<Self> {
        Ok(Self {
            test_fold,
            train_folds: train_fold_list(test_fold)?,
        })
    }
}

/// The evaluation protocol (a command-line value with the `cli` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// 5-fold cross-validation: five runs, each holding out one fold.
    Folds,
    /// One split: folds 1-4 (1600 clips) vs fold 5 (400 clips).
    Split,
}

impl Protocol {
    /// The name used in file names: `folds` or `split`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Folds => "folds",
            Protocol::Split => "split",
        }
    }
}

/// The runs of a protocol, in order (folds: test folds 1..=5; split: fold 5).
pub fn fold_plan(protocol: Protocol) -> Result<Vec<FoldRun>> {
    match protocol {
        Protocol::Folds => (1..=ESC50_FOLDS).map(FoldRun::holding_out).collect(),
        Protocol::Split => Ok(vec![FoldRun::holding_out(ESC50_FOLDS)?]),
    }
}

/// The file names of the clips of `folds`, in index order.
pub fn clip_names(index: &Esc50Index, folds: &[u8]) -> Result<Vec<String>> {
    Ok(index
        .select_folds(folds)?
        .into_iter()
        .map(|i| index.clips()[i].filename.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_keeps_its_test_fold_out_of_training() {
        for p in [Protocol::Folds, Protocol::Split] {
            for run in fold_plan(p).unwrap() {
                assert!(!run.train_folds.contains(&run.test_fold));
                assert_eq!(run.train_folds.len(), 4);
            }
        }
        let folds: Vec<u8> = fold_plan(Protocol::Folds)
            .unwrap()
            .iter()
            .map(|r| r.test_fold)
            .collect();
        assert_eq!(folds, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            fold_plan(Protocol::Split).unwrap(),
            vec![FoldRun {
                test_fold: 5,
                train_folds: vec![1, 2, 3, 4]
            }]
        );
        assert_eq!(
            (Protocol::Folds.name(), Protocol::Split.name()),
            ("folds", "split")
        );
    }

    #[test]
    fn a_missing_index_names_the_expected_layout() {
        let dir = std::env::temp_dir().join(format!("esc50-protocol-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = open_index(&dir).unwrap_err().to_string();
        assert!(
            e.contains("meta/esc50.csv") || e.contains("esc50.csv"),
            "{e}"
        );
        assert!(e.contains("audio/*.wav"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
        let e = open_index(&dir).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}

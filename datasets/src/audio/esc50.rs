//! The ESC-50 index: `meta/esc50.csv` plus `audio/*.wav`.
//!
//! CSV header (exactly these columns, in this order):
//! `filename,fold,target,category,esc10,src_file,take`. `fold` is 1..=5, `target`
//! the class index (0-based, contiguous), `category` its name, `esc10` `True`/`False`.
//!
//! The CSV is read up to [`MAX_ESC50_CSV_BYTES`], and the targets are checked
//! to be dense (`0..number of distinct targets`) before any table is sized by
//! them, so a target of 4294967295 is an error naming the line, not a 100 GB
//! allocation.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Expected CSV columns.
pub const ESC50_HEADER: [&str; 7] = [
    "filename", "fold", "target", "category", "esc10", "src_file", "take",
];

/// The largest `meta/esc50.csv` read, in bytes (64 MiB; ESC-50's is 0.1 MB).
pub const MAX_ESC50_CSV_BYTES: u64 = 64 << 20;

/// Number of cross-validation folds in ESC-50.
pub const ESC50_FOLDS: u8 = 5;

/// One row of `meta/esc50.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Esc50Clip {
    /// File name inside `audio/`.
    pub filename: String,
    /// Cross-validation fold, 1..=5.
    pub fold: u8,
    /// Class index (0-based).
    pub target: u32,
    /// Class name.
    pub category: String,
    /// Whether the clip belongs to the ESC-10 subset.
    pub esc10: bool,
    /// Freesound source id.
    pub src_file: String,
    /// Take letter of the source.
    pub take: String,
}

/// The parsed ESC-50 metadata of a dataset root.
#[derive(Clone, Debug)]
pub struct Esc50Index {
    root: PathBuf,
    clips: Vec<Esc50Clip>,
    classes: Vec<String>,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

impl Esc50Index {
    /// Reads `root/meta/esc50.csv` and checks that every listed file exists in `root/audio/`.
    ///
    /// Errors: a malformed line (wrong column count, non-numeric fold/target, fold outside
    /// 1..=5, a target with two category names) is [`Error::BadFile`] naming the CSV and the
    /// line number; a missing wav is [`Error::Layout`] naming the file; no classes or a gap in
    /// the target numbering is [`Error::BadFile`].
    pub fn load(root: &Path) -> Result<Self> {
        let csv_path = root.join("meta").join("esc50.csv");
        let mut text = Vec::new();
        std::fs::File::open(&csv_path)
            .and_then(|f| f.take(MAX_ESC50_CSV_BYTES + 1).read_to_end(&mut text))
            .map_err(|e| Error::io(&csv_path, e))?;
        if text.len() as u64 > MAX_ESC50_CSV_BYTES {
            return Err(Error::bad_file(
                &csv_path,
                format!("larger than {MAX_ESC50_CSV_BYTES} bytes: not an ESC-50 index"),
            ));
        }
        let clips = Self::parse_csv(&csv_path, &text)?;
        let classes = Self::class_names(&csv_path, &clips)?;
        let audio = root.join("audio");
        for c in &clips {
            if c.filename.contains(['/', '\\']) {
                return Err(Error::bad_file(
                    &csv_path,
                    format!(
                        "filename {:?}: must be a plain file name inside audio/ (no path separators)",
                        c.filename
                    ),
                ));
            }
            let p = crate::safe_path::join_under(&audio, &c.filename)
                .map_err(|m| Error::bad_file(&csv_path, format!("clip {m}")))?;
            if !p.is_file() {
                return Err(Error::Layout(format!(
                    "{}: listed in {} but missing",
                    p.display(),
                    csv_path.display()
                )));
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            clips,
            classes,
        })
    }

    /// Parses the CSV bytes (`path` is only used in error messages).
    pub fn parse_csv(path: &Path, bytes: &[u8]) -> Result<Vec<Esc50Clip>> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let header = rdr
            .headers()
            .map_err(|e| Error::bad_file(path, format!("line 1: unreadable header: {e}")))?
            .clone();
        let got: Vec<&str> = header.iter().map(str::trim).collect();
        if got != ESC50_HEADER {
            return Err(Error::bad_file(
                path,
                format!("line 1: header is {:?}, expected {:?}", got, ESC50_HEADER),
            ));
        }
        let mut clips = Vec::new();
        let mut names: BTreeMap<u32, (String, u64)> = BTreeMap::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let what = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("{len} fields, expected {expected_len}")
                    }
                    _ => e.to_string(),
                };
                Error::bad_file(path, format!("line {line}: malformed CSV record: {what}"))
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let bad = |msg: String| Error::bad_file(path, format!("line {line}: {msg}"));
            let field = |i: usize| rec.get(i).unwrap_or("").trim();
            let filename = field(0).to_string();
            if filename.is_empty() {
                return Err(bad("empty filename".into()));
            }
            let fold: u8 = field(1)
                .parse()
                .map_err(|_| bad(format!("fold {:?} is not an integer", field(1))))?;
            if !(1..=ESC50_FOLDS).contains(&fold) {
                return Err(bad(format!("fold {fold} outside 1..={ESC50_FOLDS}")));
            }
            let target: u32 = field(2).parse().map_err(|_| {
                bad(format!(
                    "target {:?} is not a non-negative integer",
                    field(2)
                ))
            })?;
            let category = field(3).to_string();
            if category.is_empty() {
                return Err(bad("empty category".into()));
            }
            let esc10 = parse_bool(field(4))
                .ok_or_else(|| bad(format!("esc10 {:?} is not True/False", field(4))))?;
            match names.get(&target) {
                Some((name, first_line)) if *name != category => {
                    return Err(bad(format!(
                        "target {target} is named {category:?} here but {name:?} on line {first_line}"
                    )));
                }
                Some(_) => {}
                None => {
                    names.insert(target, (category.clone(), line));
                }
            }
            clips.push(Esc50Clip {
                filename,
                fold,
                target,
                category,
                esc10,
                src_file: field(5).to_string(),
                take: field(6).to_string(),
            });
        }
        if clips.is_empty() {
            return Err(Error::bad_file(path, "no clips listed"));
        }
        Ok(clips)
    }

    /// Class names indexed by target. The targets must be exactly
    /// `0..k` for the `k` distinct targets; the check runs on the distinct
    /// targets themselves, so nothing is sized by a target's value.
    fn class_names(path: &Path, clips: &[Esc50Clip]) -> Result<Vec<String>> {
        let mut names: BTreeMap<u32, &str> = BTreeMap::new();
        for c in clips {
            names.entry(c.target).or_insert(&c.category);
        }
        let k = names.len();
        for (expected, (&target, _)) in names.iter().enumerate() {
            if target as usize != expected {
                let largest = names.keys().next_back().copied().unwrap_or(target);
                return Err(Error::bad_file(
                    path,
                    format!(
                        "no clip has target {expected}: the {k} distinct targets must be 0..{k} \
                         (the largest is {largest})"
                    ),
                ));
            }
        }
        Ok(names.into_values().map(str::to_string).collect())
    }

    /// The dataset root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All clips in CSV order.
    pub fn clips(&self) -> &[Esc50Clip] {
        &self.clips
    }

    /// Class names indexed by target.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Path of a clip's wav file.
    pub fn audio_path(&self, clip: &Esc50Clip) -> PathBuf {
        self.root.join("audio").join(&clip.filename)
    }

    /// Indices (into [`clips`](Self::clips)) of the clips whose fold is in `folds`.
    /// A fold outside 1..=5 is an [`Error::Config`].
    pub fn select_folds(&self, folds: &[u8]) -> Result<Vec<usize>> {
        if let Some(f) = folds.iter().find(|f| !(1..=ESC50_FOLDS).contains(f)) {
            return Err(Error::Config(format!("fold {f} outside 1..={ESC50_FOLDS}")));
        }
        Ok((0..self.clips.len())
            .filter(|&i| folds.contains(&self.clips[i].fold))
            .collect())
    }

    /// Indices of the training clips when `test_fold` is held out (the other four folds).
    pub fn train_folds(&self, test_fold: u8) -> Result<Vec<usize>> {
        self.select_folds(&train_fold_list(test_fold)?)
    }

    /// Indices of the clips of `test_fold`.
    pub fn test_fold(&self, test_fold: u8) -> Result<Vec<usize>> {
        self.select_folds(&[test_fold])
    }
}

/// The four training folds when `test_fold` is held out.
pub fn train_fold_list(test_fold: u8) -> Result<Vec<u8>> {
    if !(1..=ESC50_FOLDS).contains(&test_fold) {
        return Err(Error::Config(format!(
            "test fold {test_fold} outside 1..={ESC50_FOLDS}"
        )));
    }
    Ok((1..=ESC50_FOLDS).filter(|&f| f != test_fold).collect())
}

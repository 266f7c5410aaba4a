//! COCO 2017 captions: `annotations/captions_{train,val}2017.json` (`images[]` with
//! `id`/`file_name`, `annotations[]` with `image_id`/`caption`) and the image folders
//! `train2017/`, `val2017/`, indexed as one entry per image with all of its captions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// One image and all of its captions (COCO has 5, a few images 6 or 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CocoImageEntry {
    /// COCO image id.
    pub image_id: u64,
    /// Path of the image file.
    pub path: PathBuf,
    /// Captions, in annotation order, whitespace-trimmed.
    pub captions: Vec<String>,
}

/// The COCO 2017 splits that ship with caption annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coco2017Split {
    /// `captions_train2017.json` + `train2017/` (118,287 images).
    Train,
    /// `captions_val2017.json` + `val2017/` (5,000 images).
    Val,
}

impl Coco2017Split {
    /// `"train"` or `"val"`.
    pub fn name(self) -> &'static str {
        match self {
            Coco2017Split::Train => "train",
            Coco2017Split::Val => "val",
        }
    }
}

/// An ordered list of captioned images (sorted by image id, or in split-file order).
#[derive(Clone, Debug)]
pub struct CocoCaptions {
    entries: Vec<CocoImageEntry>,
    source: PathBuf,
}

#[derive(Deserialize)]
struct RawImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct RawAnnotation {
    #[serde(default)]
    id: Option<u64>,
    image_id: u64,
    caption: String,
}

#[derive(Deserialize)]
struct RawCaptions {
    images: Vec<RawImage>,
    annotations: Vec<RawAnnotation>,
}

/// Reads and parses a JSON file; a syntax or schema error names the file with serde's
/// line and column.
/// The largest annotation JSON read, in bytes (2 GiB; COCO's captions_train2017.json
/// is 92 MB, Karpathy's dataset_coco.json 150 MB).
pub const MAX_JSON_BYTES: u64 = 2 << 30;

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_JSON_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(Error::bad_file(
            path,
            format!("larger than {MAX_JSON_BYTES} bytes: not read as annotations"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, format!("malformed JSON: {e}")))
}

impl CocoCaptions {
    /// Loads `root/annotations/captions_{split}2017.json` with images in `root/{split}2017/`.
    pub fn load_2017(root: &Path, split: Coco2017Split) -> Result<Self> {
        let json = root
            .join("annotations")
            .join(format!("captions_{}2017.json", split.name()));
        Self::load_annotations(&json, &root.join(format!("{}2017", split.name())))
    }

    /// Loads a COCO captions JSON whose `file_name`s live in `image_dir`.
    ///
    /// Errors ([`Error::BadFile`] naming the JSON unless stated): malformed JSON (with line
    /// and column), a duplicate image id, an annotation whose `image_id` is not in
    /// `images[]`; a listed image whose file is missing is [`Error::Layout`] naming the
    /// image file and the JSON. Images without any caption are left out.
    pub fn load_annotations(json: &Path, image_dir: &Path) -> Result<Self> {
        let raw: RawCaptions = read_json(json)?;
        let mut by_id: HashMap<u64, usize> = HashMap::with_capacity(raw.images.len());
        let mut entries = Vec::with_capacity(raw.images.len());
        for im in raw.images {
            if by_id.insert(im.id, entries.len()).is_some() {
                return Err(Error::bad_file(
                    json,
                    format!("image id {} is listed twice in images[]", im.id),
                ));
            }
            let path = crate::safe_path::join_under(image_dir, &im.file_name).map_err(|m| {
                Error::bad_file(json, format!("images[] entry of image id {}: {m}", im.id))
            })?;
            entries.push(CocoImageEntry {
                image_id: im.id,
                path,
                captions: Vec::new(),
            });
        }
        for (k, a) in raw.annotations.into_iter().enumerate() {
            let &i = by_id.get(&a.image_id).ok_or_else(|| {
                let id =
                    a.id.map(|v| format!("id {v}"))
                        .unwrap_or_else(|| format!("#{k}"));
                Error::bad_file(
                    json,
                    format!(
                        "annotation {id} refers to image_id {} which is not in images[]",
                        a.image_id
                    ),
                )
            })?;
            entries[i].captions.push(a.caption.trim().to_string());
        }
        entries.retain(|e| !e.captions.is_empty());
        entries.sort_by_key(|e| e.image_id);
        let out = Self {
            entries,
            source: json.to_path_buf(),
        };
        out.check_files()?;
        Ok(out)
    }

    /// Builds from entries (e.g. the Karpathy split); `source` names the file they came from.
    pub(crate) fn from_entries(entries: Vec<CocoImageEntry>, source: PathBuf) -> Self {
        Self { entries, source }
    }

    /// Checks that every image file exists.
    pub(crate) fn check_files(&self) -> Result<()> {
        for e in &self.entries {
            if !e.path.is_file() {
                return Err(Error::Layout(format!(
                    "{}: image {} has captions in {} but its file is missing",
                    e.path.display(),
                    e.image_id,
                    self.source.display()
                )));
            }
        }
        if self.entries.is_empty() {
            return Err(Error::Layout(format!(
                "{}: no captioned images",
                self.source.display()
            )));
        }
        Ok(())
    }

    /// The images, each with all its captions.
    pub fn entries(&self) -> &[CocoImageEntry] {
        &self.entries
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of captions.
    pub fn num_captions(&self) -> usize {
        self.entries.iter().map(|e| e.captions.len()).sum()
    }

    /// The annotation or split file this index was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// All captions flattened, with the image index (into [`entries`](Self::entries)) of
    /// each: the text side of a retrieval evaluation and its ground truth.
    pub fn flat_captions(&self) -> (Vec<&str>, Vec<usize>) {
        let mut texts = Vec::with_capacity(self.num_captions());
        let mut owner = Vec::with_capacity(self.num_captions());
        for (i, e) in self.entries.iter().enumerate() {
            for c in &e.captions {
                texts.push(c.as_str());
                owner.push(i);
            }
        }
        (texts, owner)
    }
}

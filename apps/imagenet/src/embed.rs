//! `imagenet embed`: representations of every image under a folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use datasets::image::{load_rgb, ImageSource};
use image::RgbImage;

use crate::evaluate;

/// The image files under a folder (recursively), sorted by path.
struct FileList(Vec<PathBuf>);

impl ImageSource for FileList {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn num_classes(&self) -> usize {
        1
    }
    fn label(&self, _index: usize) -> usize {
        0
    }
    fn load(&self, index: usize) -> datasets::Result<RgbImage> {
        load_rgb(&self.0[index])
    }
    fn name(&self, index: usize) -> Option<String> {
        self.0.get(index).map(|p| p.display().to_string())
    }
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
        matches!(
            x.to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png" | "bmp" | "webp"
        )
    })
}

/// The image files under `dir`, following symbolic links, sorted by path.
/// A link back to one of its own ancestors (a loop) is skipped with a warning;
/// a file reachable through several links or paths is listed once (under the
/// first path in sorted walk order). Any other unreadable entry is an error
/// naming it.
pub fn collect_images(dir: &Path) -> Result<Vec<PathBuf>> {
    // canonical path -> (listed path, whether it is a link)
    let mut seen: HashMap<PathBuf, (PathBuf, bool)> = HashMap::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                if let Some(ancestor) = e.loop_ancestor() {
                    eprintln!(
                        "warning: {}: symbolic link loop back to {}; not followed",
                        e.path().unwrap_or(dir).display(),
                        ancestor.display()
                    );
                    continue;
                }
                let at = e.path().unwrap_or(dir).display().to_string();
                return Err(anyhow::Error::new(e).context(format!("reading {at}")));
            }
        };
        if entry.file_type().is_dir() || !is_image(entry.path()) {
            continue;
        }
        let real = std::fs::canonicalize(entry.path())
            .with_context(|| format!("resolving {}", entry.path().display()))?;
        let link = entry.path_is_symlink();
        match seen.get(&real) {
            // Keep the path that is not a link when there is one.
            Some(&(_, false)) => {}
            Some(&(_, true)) if link => {}
            _ => {
                seen.insert(real, (entry.into_path(), link));
            }
        }
    }
    let mut out: Vec<PathBuf> = seen.into_values().map(|(p, _)| p).collect();
    out.sort();
    Ok(out)
}

/// The class of each file: the name of its folder directly under `root`
/// (an ImageFolder), when every file sits in one and there are at least two;
/// `None` otherwise.
fn folder_labels(root: &Path, files: &[PathBuf]) -> Option<(Vec<usize>, Vec<String>)> {
    let class_of = |f: &PathBuf| -> Option<String> {
        let rel = f.strip_prefix(root).ok()?;
        let mut parts = rel.components();
        let first = parts.next()?.as_os_str().to_string_lossy().into_owned();
        parts.next().map(|_| first)
    };
    let per_file: Vec<String> = files.iter().map(class_of).collect::<Option<_>>()?;
    let mut classes = per_file.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return None;
    }
    let labels = per_file
        .iter()
        .map(|c| classes.binary_search(c).unwrap_or(0))
        .collect();
    Some((labels, classes))
}

/// What `embed` wrote.
pub struct Embedded {
    /// Images embedded.
    pub rows: usize,
    /// Representation width.
    pub dim: usize,
    /// The files written: `<stem>.npy`, `<stem>.safetensors`, `<stem>.csv`,
    /// `<stem>.safetensors.files.txt`, and with classes the map pictures.
    pub files: Vec<PathBuf>,
    /// With classes (an ImageFolder): the 2-D 5-NN accuracy of the map.
    pub knn_2d: Option<f64>,
}

/// Embeds every image under `images` and writes, for `out` = `<stem>` or
/// `<stem>.safetensors`: `<stem>.npy` (NumPy float32 `(N, D)`),
/// `<stem>.safetensors` (tensor `embeddings`), `<stem>.csv` (`index,name,label`;
/// the label is the image's folder under `images` when it is an ImageFolder),
/// `<stem>.safetensors.files.txt` (the paths, one per line, in row order) and,
/// with `map` and classes, `<stem>-map.svg`, `<stem>-std.svg`,
/// `<stem>-correlation.svg` (see `vicreg_core::insight`).
#[allow(clippy::too_many_arguments)]
pub fn run(
    images: &Path,
    arch: &str,
    pretrained: Option<&Path>,
    size: u32,
    workers: usize,
    out: &Path,
    map: bool,
    device: &Device,
) -> Result<Embedded> {
    let files = collect_images(images)?;
    if files.is_empty() {
        bail!(
            "{}: no .jpg/.jpeg/.png/.bmp/.webp images found",
            images.display()
        );
    }
    let net = evaluate::backbone(arch, pretrained, 0, device)?;
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let labels = folder_labels(images, &files);
    let feats = evaluate::features(&net, FileList(files), size, workers, device)?;
    let (rows, dim) = (feats.len(), feats.dim());
    let stem = if out.extension().is_some_and(|e| e == "safetensors") {
        out.with_extension("")
    } else {
        out.to_path_buf()
    };
    let by_label = labels.as_ref().map(|(l, c)| (l.as_slice(), c.as_slice()));
    let mut written = vicreg_core::insight::export_embeddings(&stem, &feats.x, &names, by_label)?;
    let index = PathBuf::from(format!("{}.safetensors.files.txt", stem.display()));
    vicreg_core::io::write_atomic(&index, (names.join("\n") + "\n").as_bytes())?;
    written.push(index);
    let mut knn_2d = None;
    if let (true, Some((labels, classes))) = (map && rows >= 4, &labels) {
        let pics = vicreg_core::insight::draw_pictures_for(
            &stem,
            &feats.x,
            labels,
            classes,
            &vicreg_core::insight::TsneConfig::default(),
        )?;
        knn_2d = Some(pics.knn_2d);
        written.extend([pics.map, pics.std_histogram, pics.correlation]);
    }
    Ok(Embedded {
        rows,
        dim,
        files: written,
        knn_2d,
    })
}

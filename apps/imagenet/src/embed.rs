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

/// Writes `out` (safetensors with `embeddings` (N, D) f32) and `out` + `.files.txt`
/// (the N image paths, one per line, in row order). Returns (N, D).
pub fn run(
    images: &Path,
    arch: &str,
    pretrained: Option<&Path>,
    size: u32,
    workers: usize,
    out: &Path,
    device: &Device,
) -> Result<(usize, usize)> {
    let files = collect_images(images)?;
    if files.is_empty() {
        bail!(
            "{}: no .jpg/.jpeg/.png/.bmp/.webp images found",
            images.display()
        );
    }
    let net = evaluate::backbone(arch, pretrained, 0, device)?;
    let n = files.len();
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let feats = evaluate::features(&net, FileList(files), size, workers, device)?;
    let d = feats.dim();
    let mut map = HashMap::new();
    map.insert("embeddings".to_string(), feats.x);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    vicreg_core::io::save_safetensors_atomic(&map, out)?;
    let mut index = out.as_os_str().to_owned();
    index.push(".files.txt");
    vicreg_core::io::write_atomic(Path::new(&index), (names.join("\n") + "\n").as_bytes())?;
    Ok((n, d))
}

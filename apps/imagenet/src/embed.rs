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
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in entries {
        let p = e
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if p.is_dir() {
            collect_images(&p, out)?;
        } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
            matches!(
                x.to_ascii_lowercase().as_str(),
                "jpg" | "jpeg" | "png" | "bmp" | "webp"
            )
        }) {
            out.push(p);
        }
    }
    Ok(())
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
    let mut files = Vec::new();
    collect_images(images, &mut files)?;
    files.sort();
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

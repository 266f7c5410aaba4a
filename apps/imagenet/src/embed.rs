//! `imagenet embed`: representations of every image under a folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::Device;

use crate::evaluate;
use datasets::image::files::{collect_images, folder_labels, FileList};

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

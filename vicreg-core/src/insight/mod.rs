//! Looking at what was learned: representations exported for other tools
//! ([`export_embeddings`]: `.npy` for NumPy, safetensors, a CSV of names and
//! labels), a 2-D t-SNE map coloured by class and the collapse pictures
//! (per-dimension std histogram, correlation heat map) as SVG
//! ([`draw_pictures`]), and retrieval galleries as one self-contained HTML
//! page ([`write_gallery`]).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vicreg_core::insight::{draw_pictures, export_embeddings, read_npy, TsneConfig};
//!
//! # fn main() -> vicreg_core::Result<()> {
//! let dir = std::env::temp_dir().join(format!("insight-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! // 40 representations of two classes.
//! let rows: Vec<f32> = (0..40 * 8).map(|k| ((k / 8) % 2 * 4) as f32 + (k % 7) as f32 * 0.1).collect();
//! let z = Tensor::from_vec(rows, (40, 8), &Device::Cpu)?;
//! let names: Vec<String> = (0..40).map(|i| format!("item{i}")).collect();
//! let labels: Vec<usize> = (0..40).map(|i| i % 2).collect();
//! let classes = vec!["a".to_string(), "b".to_string()];
//! export_embeddings(&dir.join("train"), &z, &names, Some((&labels, &classes)))?;
//! assert_eq!(read_npy(&dir.join("train.npy"))?.1, 40);
//! let cfg = TsneConfig { perplexity: 5.0, iterations: 300, ..TsneConfig::default() };
//! let pics = draw_pictures(&dir, "train", &z, &labels, &classes, &cfg)?;
//! assert!(pics.map.exists() && pics.knn_2d > 0.9);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

mod charts;
mod gallery;
mod npy;
mod tsne;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

pub use charts::{correlation_heatmap, scatter_map, std_histogram};
pub use gallery::{
    base64, escape_html, gallery_html, write_gallery, Hit, Item, Media, Row, Section,
};
pub use npy::{npy_bytes, read_npy, write_npy};
pub use tsne::{knn_accuracy_2d, subsample, tsne, TsneConfig};

use crate::{Error, Result};

/// Largest number of dimensions drawn in the correlation heat map.
pub const HEATMAP_DIMS: usize = 64;

/// Writes the `(n, d)` representations `features` of the items `names` as
/// `<stem>.npy` (float32, row `i` = item `i`), `<stem>.safetensors` (tensor
/// `embeddings`) and `<stem>.csv` (`index,name,label`; label empty when
/// `labels` is `None`, else `class_names[labels[i]]`). Returns the paths.
pub fn export_embeddings(
    stem: &Path,
    features: &Tensor,
    names: &[String],
    labels: Option<(&[usize], &[String])>,
) -> Result<Vec<PathBuf>> {
    let (n, d) = features.dims2()?;
    if names.len() != n || labels.is_some_and(|(l, _)| l.len() != n) {
        return Err(Error::invalid(format!(
            "export: {n} rows but {} names / {} labels",
            names.len(),
            labels.map_or(n, |(l, _)| l.len())
        )));
    }
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let with = |ext: &str| {
        let mut s = stem.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let f32s = features.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let data: Vec<f32> = f32s.flatten_all()?.to_vec1()?;
    let npy = with(".npy");
    write_npy(&npy, &data, n, d)?;
    let st = with(".safetensors");
    crate::io::save_safetensors_atomic(&HashMap::from([("embeddings".to_string(), f32s)]), &st)?;
    let mut csv = String::from("index,name,label\n");
    for (i, name) in names.iter().enumerate() {
        let label = labels
            .and_then(|(l, c)| c.get(l[i]).cloned().or_else(|| Some(l[i].to_string())))
            .unwrap_or_default();
        csv.push_str(&format!("{i},{},{}\n", csv_field(name), csv_field(&label)));
    }
    let csv_path = with(".csv");
    crate::io::write_atomic(&csv_path, csv.as_bytes())?;
    Ok(vec![npy, st, csv_path])
}

/// `s` as one CSV field (quoted when it holds a comma, quote or line break).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The pictures [`draw_pictures`] wrote and how well the map separates the classes.
#[derive(Clone, Debug)]
pub struct Pictures {
    /// `<prefix>-map.svg`: the t-SNE map coloured by class.
    pub map: PathBuf,
    /// `<prefix>-std.svg`: the histogram of per-dimension standard deviations.
    pub std_histogram: PathBuf,
    /// `<prefix>-correlation.svg`: the correlation matrix of the first
    /// [`HEATMAP_DIMS`] dimensions.
    pub correlation: PathBuf,
    /// Leave-one-out 5-NN accuracy of the classes on the 2-D map (chance is
    /// about the largest class's share).
    pub knn_2d: f64,
    /// Points on the map (a seeded subsample when there were more than
    /// `max_points`).
    pub points: usize,
}

/// Draws the map and the collapse pictures of the `(n, d)` representations
/// `features` with classes `labels` (indices into `class_names`) into `dir`,
/// files named `<prefix>-map.svg`, `<prefix>-std.svg`, `<prefix>-correlation.svg`.
pub fn draw_pictures(
    dir: &Path,
    prefix: &str,
    features: &Tensor,
    labels: &[usize],
    class_names: &[String],
    cfg: &TsneConfig,
) -> Result<Pictures> {
    let (n, d) = features.dims2()?;
    if labels.len() != n {
        return Err(Error::invalid(format!(
            "pictures: {n} rows but {} labels",
            labels.len()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let x = features.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let idx = subsample(n, cfg.max_points, cfg.seed);
    let picked = Tensor::from_vec(
        idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        idx.len(),
        &Device::Cpu,
    )?;
    let sub = x.index_select(&picked, 0)?;
    let sub_labels: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
    let xy = tsne(&sub, cfg)?;
    let knn_2d = knn_accuracy_2d(&xy, &sub_labels, 5);
    let map = dir.join(format!("{prefix}-map.svg"));
    scatter_map(
        &map,
        &format!(
            "t-SNE of {} representations ({d}-d), 2-D 5-NN accuracy {:.1}%",
            idx.len(),
            100.0 * knn_2d
        ),
        &xy,
        &sub_labels,
        class_names,
    )?;
    // Per-dimension statistics over all rows.
    let mean = x.mean_keepdim(0)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.sum_keepdim(0)? / (n.max(2) - 1) as f64;
    let std = var?.sqrt()?;
    let stds: Vec<f32> = std.flatten_all()?.to_vec1()?;
    let std_histogram = dir.join(format!("{prefix}-std.svg"));
    let below = stds.iter().filter(|&&s| s < 0.1).count();
    charts::std_histogram(
        &std_histogram,
        &format!(
            "std of each of the {d} dimensions (mean {:.3}; {below} below 0.1)",
            stds.iter().sum::<f32>() / d as f32
        ),
        &stds,
    )?;
    let k = d.min(HEATMAP_DIMS);
    let z = centred
        .narrow(1, 0, k)?
        .broadcast_div(&(std.narrow(1, 0, k)? + 1e-6)?)?;
    let corr: Vec<f32> = (z.t()?.matmul(&z)? / (n.max(2) - 1) as f64)?
        .flatten_all()?
        .to_vec1()?;
    let correlation = dir.join(format!("{prefix}-correlation.svg"));
    charts::correlation_heatmap(
        &correlation,
        &format!("correlation of dimensions 1-{k} of {d}"),
        &corr,
        k,
    )?;
    Ok(Pictures {
        map,
        std_histogram,
        correlation,
        knn_2d,
        points: idx.len(),
    })
}

/// [`draw_pictures`] for an export `stem` (`dir/name`): the pictures go to
/// `dir` as `name-map.svg`, `name-std.svg`, `name-correlation.svg`.
pub fn draw_pictures_for(
    stem: &Path,
    features: &Tensor,
    labels: &[usize],
    class_names: &[String],
    cfg: &TsneConfig,
) -> Result<Pictures> {
    let dir = stem
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = stem
        .file_name()
        .map_or_else(|| "embeddings".into(), |n| n.to_string_lossy().into_owned());
    draw_pictures(dir, &prefix, features, labels, class_names, cfg)
}

/// Cosine similarities of the rows `picks` of `queries` (`(n, d)`) to every
/// row of `items` (`(m, d)`): `picks.len()` rows of `m` scores. Only the
/// picked rows are multiplied, so a gallery of a few queries over a large
/// set stays small.
pub fn cosine_similarities(
    queries: &Tensor,
    picks: &[usize],
    items: &Tensor,
) -> Result<Vec<Vec<f32>>> {
    let idx = Tensor::from_vec(
        picks.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        picks.len(),
        queries.device(),
    )?;
    let q = crate::eval::l2_normalize(&queries.index_select(&idx, 0)?.to_dtype(DType::F32)?)?;
    let it = crate::eval::l2_normalize(&items.to_dtype(DType::F32)?)?;
    Ok(q.matmul(&it.t()?)?.to_vec2()?)
}

/// The indices of the `k` largest `scores` (ties: lower index first),
/// leaving out `exclude` (e.g. the query itself), with their scores.
pub fn top_k(scores: &[f32], k: usize, exclude: Option<usize>) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&i| Some(i) != exclude).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, scores[i])).collect()
}

/// Reads embeddings written by [`export_embeddings`] (`<stem>.npy` and
/// `<stem>.csv`): the `(n, d)` matrix, the label index of each row and the
/// class names (sorted; rows without a label form the class `unlabelled`).
pub fn read_export(stem: &Path) -> Result<(Tensor, Vec<usize>, Vec<String>)> {
    let with = |ext: &str| {
        let mut s = stem.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (data, n, d) = read_npy(&with(".npy"))?;
    let csv_path = with(".csv");
    let text = std::fs::read_to_string(&csv_path).map_err(|e| Error::io(&csv_path, e))?;
    let rows: Vec<Vec<String>> = parse_csv(&text);
    if rows.first().map(|r| r.join(",")) != Some("index,name,label".into()) || rows.len() != n + 1 {
        return Err(Error::bad_file(
            &csv_path,
            format!("expected the header index,name,label and {n} rows (one per .npy row)"),
        ));
    }
    let label_of = |r: &Vec<String>| {
        r.get(2)
            .filter(|l| !l.is_empty())
            .cloned()
            .unwrap_or_else(|| "unlabelled".into())
    };
    let mut classes: Vec<String> = rows[1..].iter().map(label_of).collect();
    classes.sort();
    classes.dedup();
    let labels = rows[1..]
        .iter()
        .map(|r| classes.binary_search(&label_of(r)).unwrap_or(0))
        .collect();
    Ok((
        Tensor::from_vec(data, (n, d), &Device::Cpu)?,
        labels,
        classes,
    ))
}

/// The fields of each line of `text` (RFC 4180 quoting, as [`csv_field`] writes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_embeddings_read_back_with_names_and_labels() {
        let dir = std::env::temp_dir().join(format!("export-{}", std::process::id()));
        let z = Tensor::from_vec(
            (0..12).map(|v| v as f32).collect::<Vec<_>>(),
            (3, 4),
            &Device::Cpu,
        )
        .unwrap();
        let names = vec!["a,b.png".to_string(), "say \"hi\"".into(), "c".into()];
        let classes = vec!["dog".to_string(), "cat, striped".into()];
        export_embeddings(&dir.join("e"), &z, &names, Some((&[1, 0, 1], &classes))).unwrap();
        let (x, labels, names_back) = read_export(&dir.join("e")).unwrap();
        assert_eq!(x.to_vec2::<f32>().unwrap(), z.to_vec2::<f32>().unwrap());
        assert_eq!(names_back, vec!["cat, striped".to_string(), "dog".into()]);
        assert_eq!(labels, vec![0, 1, 0]);
        let csv = std::fs::read_to_string(dir.join("e.csv")).unwrap();
        assert!(csv.contains("0,\"a,b.png\",\"cat, striped\""), "{csv}");
        assert_eq!(parse_csv(&csv)[2][1], "say \"hi\"");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

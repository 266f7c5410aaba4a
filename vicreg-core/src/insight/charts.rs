//! Pictures of a representation, as SVG files: the 2-D map coloured by class
//! ([`scatter_map`]), and the paper's collapse pictures, the histogram of
//! per-dimension standard deviations ([`std_histogram`]) and the correlation
//! matrix ([`correlation_heatmap`]).

use std::path::Path;

use plotters::prelude::*;

use crate::{Error, Result};

fn chart_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bad_file(path, format!("cannot draw chart: {e}"))
}

/// Largest number of classes given their own colour and legend entry; the
/// others are drawn grey as "other".
const MAX_LEGEND: usize = 20;

/// Draws the 2-D points `xy` (`[x0, y0, x1, y1, ...]`) coloured by
/// `labels[i]` (an index into `class_names`) into an SVG file at `path`.
pub fn scatter_map(
    path: &Path,
    title: &str,
    xy: &[f32],
    labels: &[usize],
    class_names: &[String],
) -> Result<()> {
    let n = labels.len();
    if xy.len() != 2 * n || n == 0 {
        return Err(Error::invalid(format!(
            "scatter map: {} coordinates for {n} labels",
            xy.len()
        )));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in xy.chunks_exact(2) {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    if !(x0.is_finite() && x1.is_finite() && y0.is_finite() && y1.is_finite()) {
        return Err(chart_err(path, "non-finite coordinates"));
    }
    let pad = |lo: f32, hi: f32| 0.05 * (hi - lo).max(1e-3);
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let root = SVGBackend::new(path, (820, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
        .map_err(|e| chart_err(path, e))?;
    let classes = class_names
        .len()
        .max(labels.iter().copied().max().unwrap_or(0) + 1);
    for c in 0..classes.min(MAX_LEGEND + 1) {
        let colour = if c < MAX_LEGEND {
            Palette99::pick(c).to_rgba()
        } else {
            RGBColor(150, 150, 150).to_rgba()
        };
        let pts: Vec<(f32, f32)> = (0..n)
            .filter(|&i| labels[i].min(MAX_LEGEND) == c)
            .map(|i| (xy[2 * i], xy[2 * i + 1]))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let name = if c < MAX_LEGEND {
            class_names.get(c).cloned().unwrap_or_else(|| c.to_string())
        } else {
            "other".to_string()
        };
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| chart_err(path, e))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| chart_err(path, e))?;
    root.present().map_err(|e| chart_err(path, e))?;
    Ok(())
}

/// Histogram of per-dimension standard deviations `stds` (40 bins), with the
/// VICReg target std 1 marked: a collapsed representation piles up at 0.
pub fn std_histogram(path: &Path, title: &str, stds: &[f32]) -> Result<()> {
    if stds.is_empty() || stds.iter().any(|v| !v.is_finite()) {
        return Err(chart_err(path, "no finite standard deviations"));
    }
    let hi = stds.iter().copied().fold(1.0f32, f32::max) * 1.05;
    let bins = 40usize;
    let width = hi / bins as f32;
    let mut counts = vec![0u32; bins];
    for &s in stds {
        counts[((s / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (820, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f32..hi, 0u32..top + top / 10 + 1)
        .map_err(|e| chart_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("standard deviation of a dimension")
        .y_desc("dimensions")
        .draw()
        .map_err(|e| chart_err(path, e))?;
    chart
        .draw_series(counts.iter().enumerate().map(|(b, &c)| {
            let x = b as f32 * width;
            Rectangle::new([(x, 0), (x + width, c)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| chart_err(path, e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0), (1.0, top + top / 10 + 1)],
            RED.stroke_width(2),
        )))
        .map_err(|e| chart_err(path, e))?
        .label("target std 1")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| chart_err(path, e))?;
    root.present().map_err(|e| chart_err(path, e))?;
    Ok(())
}

/// The `(dim, dim)` correlation matrix `corr` (row-major, values in [-1, 1])
/// as a heat map: blue -1, white 0, red +1. Decorrelated features give a
/// white square with a red diagonal.
pub fn correlation_heatmap(path: &Path, title: &str, corr: &[f32], dim: usize) -> Result<()> {
    if dim == 0 || corr.len() != dim * dim {
        return Err(Error::invalid(format!(
            "heat map: {} values for a {dim} x {dim} matrix",
            corr.len()
        )));
    }
    let root = SVGBackend::new(path, (640, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0..dim, 0..dim)
        .map_err(|e| chart_err(path, e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .draw()
        .map_err(|e| chart_err(path, e))?;
    let colour = |v: f32| {
        let v = if v.is_finite() {
            v.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let fade = |c: f32| (255.0 * (1.0 - v.abs()) + c * v.abs()) as u8;
        if v >= 0.0 {
            RGBColor(fade(200.0), fade(30.0), fade(30.0))
        } else {
            RGBColor(fade(30.0), fade(60.0), fade(200.0))
        }
    };
    chart
        .draw_series((0..dim * dim).map(|k| {
            let (i, j) = (k / dim, k % dim);
            Rectangle::new(
                [(j, dim - 1 - i), (j + 1, dim - i)],
                colour(corr[k]).filled(),
            )
        }))
        .map_err(|e| chart_err(path, e))?;
    root.present().map_err(|e| chart_err(path, e))?;
    Ok(())
}

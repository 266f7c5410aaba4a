//! SVG charts of a run, drawn from its `metrics.jsonl` with plotters (SVG
//! backend, no system fonts: text is left to the SVG viewer).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use super::metrics::read_metrics;
use super::run_dir::RunDir;
use crate::{Error, Result};

/// A named series of `(x, y)` points.
pub type Series = (String, Vec<(f64, f64)>);

/// Draws the charts of the run in `run_dir` and returns the files written:
/// `plot_loss.svg` (one panel per loss term, against step), `plot_lr.svg`,
/// `plot_std.svg` (embedding std, mean and min per branch), `plot_corr.svg`
/// (average correlation coefficient per branch), and, when the run logged them,
/// `plot_rank.svg` (effective rank) and `plot_eval.svg` (per-epoch evaluation
/// results and online probe accuracy against epoch).
pub fn plot_run(run_dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = RunDir::open(run_dir)?;
    let metrics_path = dir.metrics_path();
    let records = read_metrics(&metrics_path)?;
    let steps: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("step"))
        .collect();
    if steps.is_empty() {
        return Err(Error::bad_file(&metrics_path, "no step records to plot"));
    }
    let x = |r: &Value| r.get("step").and_then(Value::as_f64);
    let series_of = |key: &str| -> Series {
        let pts = steps
            .iter()
            .filter_map(|r| Some((x(r)?, r.get(key)?.as_f64()?)))
            .collect();
        (key.to_string(), pts)
    };
    let mut out = Vec::new();

    // Loss terms, in the order of the first record.
    let mut names: Vec<String> = Vec::new();
    for r in &steps {
        if let Some(Value::Object(m)) = r.get("loss") {
            for k in m.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    let loss_series: Vec<Series> = names
        .iter()
        .map(|n| {
            let pts = steps
                .iter()
                .filter_map(|r| Some((x(r)?, r.get("loss")?.get(n)?.as_f64()?)))
                .collect();
            (n.clone(), pts)
        })
        .collect();
    let panels: Vec<(String, Vec<Series>)> = loss_series
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|s| (format!("loss: {}", s.0), vec![s]))
        .collect();
    if !panels.is_empty() {
        let path = dir.path().join("plot_loss.svg");
        panel_chart(&path, "step", &panels)?;
        out.push(path);
    }
    let charts: Vec<(&str, &str, Vec<Series>)> = vec![
        ("plot_lr.svg", "learning rate", vec![series_of("lr")]),
        (
            "plot_std.svg",
            "embedding std per dimension",
            ["std_mean_a", "std_min_a", "std_mean_b", "std_min_b"]
                .map(series_of)
                .to_vec(),
        ),
        (
            "plot_corr.svg",
            "average correlation coefficient",
            ["corr_a", "corr_b"].map(series_of).to_vec(),
        ),
        (
            "plot_rank.svg",
            "effective rank of the embeddings",
            ["effective_rank_a", "effective_rank_b"]
                .map(series_of)
                .to_vec(),
        ),
    ];
    for (file, title, series) in charts {
        let series: Vec<Series> = series.into_iter().filter(|(_, p)| !p.is_empty()).collect();
        if series.is_empty() {
            continue;
        }
        let path = dir.path().join(file);
        line_chart(&path, title, "step", &series)?;
        out.push(path);
    }

    // Per-epoch evaluation results and online probe accuracy.
    let epochs: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("epoch"))
        .collect();
    let mut eval_series: Vec<Series> = Vec::new();
    let mut push =
        |name: String, x: f64, y: f64| match eval_series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, p)) => p.push((x, y)),
            None => eval_series.push((name, vec![(x, y)])),
        };
    for r in &epochs {
        let Some(e) = r.get("epoch").and_then(Value::as_f64) else {
            continue;
        };
        if let Some(acc) = r.get("online_probe_acc").and_then(Value::as_f64) {
            push("online_probe_acc".into(), e + 1.0, acc);
        }
        if let Some(Value::Object(m)) = r.get("eval") {
            for (k, v) in m {
                if let Some(v) = v.as_f64() {
                    push(k.clone(), e + 1.0, v);
                }
            }
        }
    }
    if !eval_series.is_empty() {
        let path = dir.path().join("plot_eval.svg");
        line_chart(&path, "evaluation", "epoch", &eval_series)?;
        out.push(path);
    }
    Ok(out)
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bad_file(path, format!("cannot draw chart: {e}"))
}

/// Draws `series` as lines into an SVG file at `path`.
pub fn line_chart(path: &Path, title: &str, x_label: &str, series: &[Series]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    draw_panel(&root, path, title, x_label, series)?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// One panel per entry of `panels` (each with its own y range), in a grid of
/// up to 3 columns, in one SVG file at `path`.
pub fn panel_chart(path: &Path, x_label: &str, panels: &[(String, Vec<Series>)]) -> Result<()> {
    if panels.is_empty() {
        return Err(plot_err(path, "nothing to draw"));
    }
    let cols = panels.len().min(3);
    let rows = panels.len().div_ceil(cols);
    let root = SVGBackend::new(path, (420 * cols as u32, 300 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let areas = root.split_evenly((rows, cols));
    for ((title, series), area) in panels.iter().zip(areas.iter()) {
        draw_panel(area, path, title, x_label, series)?;
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[Series],
) -> Result<()> {
    let pts = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return Err(plot_err(path, format!("{title}: no finite points")));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = if y1 > y0 {
        0.05 * (y1 - y0)
    } else {
        0.5 * y0.abs().max(1e-3)
    };
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, (name, p)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let finite: Vec<(f64, f64)> = p
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(finite, color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(path, e))?;
    }
    Ok(())
}

//! The summary chart: linear-probe and k-NN top-1 against the varied knob.
//!
//! When exactly one key varies and all its values are numbers, the x axis is
//! that number (log2 when all are positive and span a factor of 8 or more,
//! e.g. expander widths); otherwise the runs are placed at 0, 1, 2, ... and
//! labelled by name. Same look as the run charts of `engine::plot`.

use std::path::Path;

use plotters::prelude::*;
use toml::Value;

use super::summary::{RunRecord, RunStatus};
use crate::{Error, Result};

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bad_file(path, format!("cannot draw chart: {e}"))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// The x position of each record and the axis description.
fn x_axis(varied_keys: &[String], records: &[RunRecord]) -> (Vec<f64>, String, bool) {
    if let [key] = varied_keys {
        let xs: Option<Vec<f64>> = records
            .iter()
            .map(|r| r.plan.config.get(key).and_then(number))
            .collect();
        if let Some(xs) = xs {
            let (lo, hi) = xs
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            if lo > 0.0 && hi / lo >= 8.0 {
                return (
                    xs.iter().map(|x| x.log2()).collect(),
                    format!("log2({key})"),
                    false,
                );
            }
            return (xs, key.clone(), false);
        }
    }
    let label = if varied_keys.is_empty() {
        "run".to_string()
    } else {
        format!("run ({})", varied_keys.join(", "))
    };
    ((0..records.len()).map(|i| i as f64).collect(), label, true)
}

/// Draws top-1 accuracy (linear probe and k-NN) of the finished runs against
/// the varied knob into the SVG file `path`.
pub fn accuracy_chart(
    path: &Path,
    title: &str,
    varied_keys: &[String],
    records: &[RunRecord],
) -> Result<()> {
    let (xs, x_label, categorical) = x_axis(varied_keys, records);
    let ok = |r: &RunRecord| !matches!(r.status, RunStatus::Failed(_));
    let mut series: Vec<(&str, Vec<(f64, f64)>)> =
        vec![("linear top-1 %", vec![]), ("k-NN top-1 %", vec![])];
    for (r, &x) in records.iter().zip(&xs) {
        if !ok(r) {
            continue;
        }
        if let Some(v) = r.metrics.linear_top1.filter(|v| v.is_finite()) {
            series[0].1.push((x, v));
        }
        if let Some(v) = r.metrics.knn_top1.filter(|v| v.is_finite()) {
            series[1].1.push((x, v));
        }
    }
    for s in &mut series {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return Err(plot_err(path, "no finished run with an accuracy"));
    }
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let y1 = all.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let pad = ((x1 - x0) * 0.05).max(0.5);
    x0 -= pad;
    x1 += pad;
    let names: Vec<String> = records.iter().map(|r| r.plan.name.clone()).collect();
    let width = if categorical {
        (160 * records.len() as u32).clamp(900, 2400)
    } else {
        900
    };
    let root = SVGBackend::new(path, (width, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(if categorical { 80 } else { 40 })
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..(y1 * 1.1).max(1.0))
        .map_err(|e| plot_err(path, e))?;
    let label_of = |x: &f64| -> String {
        if categorical {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                return names[i as usize].clone();
            }
            String::new()
        } else {
            format!("{x}")
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label.as_str())
        .y_desc("top-1 %")
        .x_label_formatter(&label_of);
    if categorical {
        mesh.x_labels(records.len().max(2));
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        if !categorical {
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(path, e))?;
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))
            .map_err(|e| plot_err(path, e))?
            .label(*name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

//! Several runs side by side: one panel per quantity (loss terms, embedding
//! std, correlation, per-epoch evaluation), one line per run.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::metrics::read_metrics;
use super::plot::{panel_chart, Series};
use super::run_dir::RunDir;
use crate::{Error, Result};

/// Draws `<out_dir>/compare.svg` from the `metrics.jsonl` of every run in
/// `run_dirs` (each line named by its directory's name) and returns its path.
/// Panels: every loss term and `lr`, `std_mean_a`, `corr_a` against step, and
/// every per-epoch evaluation result against epoch.
pub fn plot_comparison(run_dirs: &[PathBuf], out_dir: &Path) -> Result<PathBuf> {
    if run_dirs.len() < 2 {
        return Err(Error::invalid(
            "a comparison needs at least two run directories",
        ));
    }
    // quantity -> (x label, one series per run)
    let mut panels: Vec<(String, Vec<Series>)> = Vec::new();
    let mut add = |title: String, run: &str, pts: Vec<(f64, f64)>| {
        if pts.is_empty() {
            return;
        }
        match panels.iter_mut().find(|(t, _)| *t == title) {
            Some((_, s)) => s.push((run.to_string(), pts)),
            None => panels.push((title, vec![(run.to_string(), pts)])),
        }
    };
    for dir in run_dirs {
        let run = RunDir::open(dir)?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let records = read_metrics(&run.metrics_path())?;
        let of_type = |t: &str| -> Vec<&Value> {
            records
                .iter()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some(t))
                .collect()
        };
        let steps = of_type("step");
        let at = |r: &Value| r.get("step").and_then(Value::as_f64);
        let mut terms: Vec<String> = Vec::new();
        for r in &steps {
            if let Some(Value::Object(m)) = r.get("loss") {
                terms.extend(
                    m.keys()
                        .filter(|k| !terms.contains(k))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
        }
        for t in &terms {
            let pts = steps
                .iter()
                .filter_map(|r| Some((at(r)?, r.get("loss")?.get(t)?.as_f64()?)))
                .collect();
            add(format!("loss: {t} (step)"), &name, pts);
        }
        for key in ["lr", "std_mean_a", "corr_a"] {
            let pts = steps
                .iter()
                .filter_map(|r| Some((at(r)?, r.get(key)?.as_f64()?)))
                .collect();
            add(format!("{key} (step)"), &name, pts);
        }
        for r in of_type("epoch") {
            let Some(e) = r.get("epoch").and_then(Value::as_f64) else {
                continue;
            };
            if let Some(Value::Object(m)) = r.get("eval") {
                for (k, v) in m {
                    if let Some(v) = v.as_f64() {
                        add(format!("eval: {k} (epoch)"), &name, vec![(e + 1.0, v)]);
                    }
                }
            }
        }
    }
    // Per-epoch points arrive one at a time: merge a run's points per panel.
    for (_, series) in panels.iter_mut() {
        let mut merged: Vec<Series> = Vec::new();
        for (run, pts) in series.drain(..) {
            match merged.iter_mut().find(|(r, _)| *r == run) {
                Some((_, p)) => p.extend(pts),
                None => merged.push((run, pts)),
            }
        }
        *series = merged;
    }
    if panels.is_empty() {
        return Err(Error::invalid("the runs have no step records to compare"));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let path = out_dir.join("compare.svg");
    panel_chart(&path, "step / epoch", &panels)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_runs_share_each_panel() {
        let root = std::env::temp_dir().join(format!("compare-{}", std::process::id()));
        let runs: Vec<PathBuf> = ["lr-small", "lr-large"]
            .iter()
            .map(|n| root.join(n))
            .collect();
        for (k, dir) in runs.iter().enumerate() {
            std::fs::create_dir_all(dir).unwrap();
            let mut lines = String::new();
            for step in 1..=5 {
                lines.push_str(&format!(
                    "{{\"type\":\"step\",\"step\":{step},\"lr\":0.1,\"std_mean_a\":{},\"loss\":{{\"total\":{},\"invariance\":0.5}}}}\n",
                    0.1 * step as f64,
                    10.0 - step as f64 - k as f64
                ));
            }
            lines.push_str("{\"type\":\"epoch\",\"epoch\":0,\"eval\":{\"knn_top1\":40.0}}\n");
            std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
        }
        let out = plot_comparison(&runs, &root).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        for text in [
            "lr-small",
            "lr-large",
            "loss: total (step)",
            "eval: knn_top1 (epoch)",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(plot_comparison(&runs[..1], &root).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}

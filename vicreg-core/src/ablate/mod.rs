//! Ablation runner, generic over the app: read a grid file ([`GridFile`]),
//! run each configuration as a normal run directory `<exp-dir>/<run-name>/`
//! through a closure supplied by the app, skip runs finished by an earlier
//! invocation (resumable), and write `<exp-dir>/summary.md`, `summary.csv`
//! and `summary.svg` (top-1 accuracy against the varied knob).
//!
//! ```no_run
//! use vicreg_core::ablate::{run_ablation, GridFile, RunMetrics};
//!
//! let grid = GridFile::load("configs/ablations/coefficients.toml", &["eval"])?;
//! let summary = run_ablation(&grid, "runs/coeffs".as_ref(), "coefficients", |plan, dir| {
//!     // build the app's configuration from plan.config, pretrain into `dir`,
//!     // evaluate, and report:
//!     Ok::<_, vicreg_core::Error>(RunMetrics { linear_top1: Some(50.0), ..RunMetrics::default() })
//! })?;
//! println!("{}", summary.markdown);
//! # Ok::<(), vicreg_core::Error>(())
//! ```

mod eval_section;
mod grid;
mod plot;
mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use eval_section::EvalSection;
pub use grid::{sanitize, value_text, GridFile, RunOverride, RunPlan};
pub use plot::accuracy_chart;
pub use summary::{columns, csv, markdown, row, RunMetrics, RunRecord, RunStatus, RESULT_FILE};

use crate::{Error, Result};

/// What [`run_ablation`] produced.
#[derive(Clone, Debug)]
pub struct AblationSummary {
    /// One record per run, in grid order.
    pub records: Vec<RunRecord>,
    /// The markdown table (also in `summary.md`).
    pub markdown: String,
    /// `summary.md`, `summary.csv` and (when some run has an accuracy) `summary.svg`.
    pub files: Vec<PathBuf>,
}

impl AblationSummary {
    /// Runs that failed in this invocation.
    pub fn failed(&self) -> Vec<&RunRecord> {
        self.records
            .iter()
            .filter(|r| matches!(r.status, RunStatus::Failed(_)))
            .collect()
    }
}

/// Runs every configuration of `grid` with `run_one(plan, run_dir)`, where
/// `run_dir = exp_dir/<plan.name>`, skipping runs whose directory already
/// holds a [`RESULT_FILE`] for the same configuration (a different one is an
/// error naming the file). A run that fails is recorded as failed (its error
/// in the table and on stderr) and the next one starts; it is retried by the
/// next invocation. `run_one` should resume a run directory left by an
/// interrupted invocation. `title` heads the markdown table and the chart.
/// The closure's error type is anything displayable (e.g. `anyhow::Error`,
/// shown with its `{:#}` chain).
pub fn run_ablation<F, E>(
    grid: &GridFile,
    exp_dir: &Path,
    title: &str,
    mut run_one: F,
) -> Result<AblationSummary>
where
    F: FnMut(&RunPlan, &Path) -> std::result::Result<RunMetrics, E>,
    E: std::fmt::Display,
{
    let plans = grid.plan()?;
    std::fs::create_dir_all(exp_dir).map_err(|e| Error::io(exp_dir, e))?;
    let total = plans.len();
    let mut records = Vec::with_capacity(total);
    for (i, plan) in plans.into_iter().enumerate() {
        let dir = exp_dir.join(&plan.name);
        if let Some(metrics) = summary::read_result(&dir, &plan)? {
            eprintln!(
                "[{}/{total}] {}: finished earlier, skipped",
                i + 1,
                plan.name
            );
            records.push(RunRecord {
                plan,
                metrics,
                status: RunStatus::Skipped,
            });
            continue;
        }
        eprintln!(
            "[{}/{total}] {}: starting -> {}",
            i + 1,
            plan.name,
            dir.display()
        );
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let t = Instant::now();
        match run_one(&plan, &dir) {
            Ok(mut metrics) => {
                if metrics.seconds <= 0.0 {
                    metrics.seconds = t.elapsed().as_secs_f64();
                }
                summary::write_result(&dir, &plan, &metrics)?;
                records.push(RunRecord {
                    plan,
                    metrics,
                    status: RunStatus::Done,
                });
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("[{}/{total}] {}: FAILED: {msg}", i + 1, plan.name);
                records.push(RunRecord {
                    plan,
                    metrics: RunMetrics {
                        seconds: t.elapsed().as_secs_f64(),
                        ..RunMetrics::default()
                    },
                    status: RunStatus::Failed(msg),
                });
            }
        }
    }
    write_summary(grid, exp_dir, title, records)
}

/// Writes `summary.md`, `summary.csv` and `summary.svg` into `exp_dir` for `records`.
pub fn write_summary(
    grid: &GridFile,
    exp_dir: &Path,
    title: &str,
    records: Vec<RunRecord>,
) -> Result<AblationSummary> {
    let keys = grid.varied_keys();
    let md = markdown(title, &keys, &records);
    let mut files = Vec::new();
    let p = exp_dir.join("summary.md");
    crate::io::write_atomic(&p, md.as_bytes())?;
    files.push(p);
    let p = exp_dir.join("summary.csv");
    crate::io::write_atomic(&p, csv(&keys, &records).as_bytes())?;
    files.push(p);
    let has_acc = records.iter().any(|r| {
        !matches!(r.status, RunStatus::Failed(_))
            && (r.metrics.linear_top1.is_some() || r.metrics.knn_top1.is_some())
    });
    if has_acc {
        let p = exp_dir.join("summary.svg");
        accuracy_chart(&p, title, &keys, &records)?;
        files.push(p);
    }
    Ok(AblationSummary {
        records,
        markdown: md,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_skips_finished_and_records_failures() {
        let dir = std::env::temp_dir().join(format!("vicreg-ablate-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let grid =
            GridFile::parse("[base]\nx = 1\n[grid]\nw = [8, 64, 512]\n", "g.toml", &[]).unwrap();
        let mut calls = Vec::new();
        let s = run_ablation(&grid, &dir, "t", |plan, d| {
            calls.push(plan.name.clone());
            assert!(d.is_dir());
            let w = plan.config["w"].as_integer().unwrap();
            if w == 64 {
                return Err(Error::config("boom"));
            }
            Ok(RunMetrics {
                linear_top1: Some(w as f64 / 10.0),
                seconds: 1.0,
                ..RunMetrics::default()
            })
        })
        .unwrap();
        assert_eq!(calls, ["w=8", "w=64", "w=512"]);
        assert_eq!(s.failed().len(), 1);
        assert!(dir.join("summary.svg").is_file());
        assert!(dir.join("w=8").join(RESULT_FILE).is_file());
        // Second call: only the failed run is retried.
        let mut again = Vec::new();
        let s = run_ablation(&grid, &dir, "t", |plan, _| {
            again.push(plan.name.clone());
            Ok::<_, Error>(RunMetrics::default())
        })
        .unwrap();
        assert_eq!(again, ["w=64"]);
        assert_eq!(s.records[0].status, RunStatus::Skipped);
        assert_eq!(s.records[0].metrics.linear_top1, Some(0.8));
        // A changed base makes the stored results stale: error naming the file.
        let changed = GridFile::parse("[base]\nx = 2\n[grid]\nw = [8]\n", "g.toml", &[]).unwrap();
        let e = run_ablation(&changed, &dir, "t", |_, _| {
            Ok::<_, Error>(RunMetrics::default())
        })
        .unwrap_err();
        assert!(e.to_string().contains(RESULT_FILE), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn categorical_knobs_are_charted_by_run_name() {
        let dir = std::env::temp_dir().join(format!("vicreg-ablate-cat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let grid = GridFile::parse(
            "[grid]\nloss = [\"vicreg\", \"simclr\"]\nmlp = [\"8-8\", \"16-16\"]\n",
            "g.toml",
            &[],
        )
        .unwrap();
        let s = run_ablation(&grid, &dir, "losses", |plan, _| {
            Ok::<_, Error>(RunMetrics {
                linear_top1: Some(plan.name.len() as f64),
                knn_top1: Some(1.0),
                ..RunMetrics::default()
            })
        })
        .unwrap();
        assert_eq!(s.records.len(), 4);
        let svg = std::fs::read_to_string(dir.join("summary.svg")).unwrap();
        assert!(
            svg.contains("loss=simclr_mlp=16-16"),
            "run names label the x axis"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

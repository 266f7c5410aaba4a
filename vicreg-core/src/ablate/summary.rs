//! What one ablation run reports, its record on disk (for resuming), and the
//! summary table (markdown + CSV) over all runs.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::grid::{value_text, RunPlan};
use crate::{Error, Result};

/// File, in each run directory, holding the run's [`RunMetrics`] and configuration
/// once the run (pretraining and evaluation) has finished.
pub const RESULT_FILE: &str = "ablate_result.json";

/// Metrics of one finished run. Accuracies in percent; correlations are the
/// mean absolute off-diagonal correlation coefficient
/// ([`average_abs_correlation`](crate::diagnostics::average_abs_correlation)).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Linear-probe top-1 on the validation split, %.
    pub linear_top1: Option<f64>,
    /// k-NN top-1 on the validation split, %.
    pub knn_top1: Option<f64>,
    /// Mean loss terms of the last pretraining epoch (total last).
    pub loss_terms: Vec<(String, f64)>,
    /// Average |correlation| of the representations (encoder outputs, validation split).
    pub corr_repr: Option<f64>,
    /// Average |correlation| of the embeddings (expander outputs, validation split).
    pub corr_emb: Option<f64>,
    /// Mean per-dimension std of the embeddings (~0: collapsed).
    pub std_emb: Option<f64>,
    /// Wall-clock seconds of the run (pretraining + evaluation).
    pub seconds: f64,
    /// Further named values the app reports (become extra columns).
    pub extra: Vec<(String, f64)>,
}

/// What [`RESULT_FILE`] holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ResultRecord {
    /// The run's configuration table, as TOML text.
    pub config: String,
    /// Its metrics.
    pub metrics: RunMetrics,
}

/// How a run of the grid ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Trained and evaluated in this invocation.
    Done,
    /// Finished in an earlier invocation (its result was read back).
    Skipped,
    /// Failed with this message (nothing recorded; retried next time).
    Failed(String),
}

/// One row of the summary.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The run.
    pub plan: RunPlan,
    /// Its metrics (default when failed).
    pub metrics: RunMetrics,
    /// How it ended.
    pub status: RunStatus,
}

/// The summary's columns: run, the varied keys, status, accuracies, final loss
/// terms (`loss:<term>`), correlations, embedding std, time, extra values.
pub fn columns(varied_keys: &[String], records: &[RunRecord]) -> Vec<String> {
    let mut cols = vec!["run".to_string()];
    cols.extend(varied_keys.iter().cloned());
    cols.extend(
        ["status", "linear top-1 %", "k-NN top-1 %"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut terms: Vec<String> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    for r in records {
        for (n, _) in &r.metrics.loss_terms {
            if !terms.contains(n) {
                terms.push(n.clone());
            }
        }
        for (n, _) in &r.metrics.extra {
            if !extra.contains(n) {
                extra.push(n.clone());
            }
        }
    }
    // total last among the loss terms
    terms.sort_by_key(|t| t == "total");
    cols.extend(terms.iter().map(|t| format!("loss:{t}")));
    cols.extend(
        ["corr repr", "corr emb", "emb std", "time s"]
            .iter()
            .map(|s| s.to_string()),
    );
    cols.extend(extra);
    cols
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        Some(x) => format!("{x}"),
        None => String::new(),
    }
}

/// The cells of one record, in [`columns`] order.
pub fn row(cols: &[String], varied_keys: &[String], r: &RunRecord) -> Vec<String> {
    let m = &r.metrics;
    cols.iter()
        .map(|c| {
            if c == "run" {
                return r.plan.name.clone();
            }
            if varied_keys.contains(c) {
                return r
                    .plan
                    .config
                    .get(c)
                    .map(value_text)
                    .unwrap_or_else(|| "(base)".into());
            }
            if let Some(t) = c.strip_prefix("loss:") {
                return fmt(m.loss_terms.iter().find(|(n, _)| n == t).map(|x| x.1), 4);
            }
            match c.as_str() {
                "status" => match &r.status {
                    RunStatus::Done => "done".into(),
                    RunStatus::Skipped => "done (earlier)".into(),
                    RunStatus::Failed(msg) => format!("failed: {msg}"),
                },
                "linear top-1 %" => fmt(m.linear_top1, 1),
                "k-NN top-1 %" => fmt(m.knn_top1, 1),
                "corr repr" => fmt(m.corr_repr, 3),
                "corr emb" => fmt(m.corr_emb, 3),
                "emb std" => fmt(m.std_emb, 4),
                "time s" => format!("{:.0}", m.seconds),
                other => match m.extra.iter().find(|(n, _)| n == other).map(|x| x.1) {
                    Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
                    v => fmt(v, 4),
                },
            }
        })
        .collect()
}

/// The summary as a markdown table (`title` as a heading line above it).
pub fn markdown(title: &str, varied_keys: &[String], records: &[RunRecord]) -> String {
    let cols = columns(varied_keys, records);
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("## {title}\n\n");
    out += &format!(
        "| {} |\n",
        cols.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
    );
    out += &format!("|{}\n", "---|".repeat(cols.len()));
    for r in records {
        let cells = row(&cols, varied_keys, r);
        out += &format!(
            "| {} |\n",
            cells.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out += "\ncorr repr / corr emb: mean |off-diagonal correlation| of the validation representations / embeddings (paper Figs. 4-5); emb std: mean per-dimension std of the embeddings (~0 = collapse); loss terms: mean over the last pretraining epoch.\n";
    out
}

/// The summary as CSV (RFC 4180 quoting).
pub fn csv(varied_keys: &[String], records: &[RunRecord]) -> String {
    let cols = columns(varied_keys, records);
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(",") + "\n";
    for r in records {
        out += &(row(&cols, varied_keys, r)
            .iter()
            .map(|c| q(c))
            .collect::<Vec<_>>()
            .join(",")
            + "\n");
    }
    out
}

/// Writes `dir/RESULT_FILE` for a finished run.
pub(crate) fn write_result(dir: &Path, plan: &RunPlan, metrics: &RunMetrics) -> Result<()> {
    let rec = ResultRecord {
        config: config_text(plan)?,
        metrics: metrics.clone(),
    };
    let text = serde_json::to_string_pretty(&rec)
        .map_err(|e| Error::invalid(format!("cannot serialize the run result: {e}")))?;
    crate::io::write_atomic(&dir.join(RESULT_FILE), text.as_bytes())
}

/// Reads `dir/RESULT_FILE` if present; errors (naming the file) when it was
/// written for another configuration than `plan`'s.
pub(crate) fn read_result(dir: &Path, plan: &RunPlan) -> Result<Option<RunMetrics>> {
    let p = dir.join(RESULT_FILE);
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let rec: ResultRecord = serde_json::from_str(&text)
        .map_err(|e| Error::bad_file(&p, format!("not an ablation result: {e}")))?;
    let old: toml::Table = toml::from_str(&rec.config)
        .map_err(|e| Error::bad_file(&p, format!("bad stored configuration: {e}")))?;
    if old != plan.config {
        return Err(Error::bad_file(
            &p,
            format!(
                "run `{}` finished earlier with another configuration; delete {} (or use another --exp-dir) to rerun it",
                plan.name,
                dir.display()
            ),
        ));
    }
    Ok(Some(rec.metrics))
}

fn config_text(plan: &RunPlan) -> Result<String> {
    toml::to_string(&Value::Table(plan.config.clone()))
        .map_err(|e| Error::invalid(format!("run `{}`: cannot write its config: {e}", plan.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Table;

    fn rec(name: &str, lin: f64) -> RunRecord {
        let mut config = Table::new();
        config.insert("cov-coeff".into(), Value::Float(1.0));
        RunRecord {
            plan: RunPlan {
                name: name.into(),
                config,
                varied: vec![("cov-coeff".into(), Value::Float(1.0))],
            },
            metrics: RunMetrics {
                linear_top1: Some(lin),
                knn_top1: Some(20.0),
                loss_terms: vec![("total".into(), 3.0), ("invariance".into(), 0.5)],
                corr_repr: Some(0.1),
                corr_emb: Some(0.2),
                std_emb: Some(0.9),
                seconds: 12.0,
                extra: vec![],
            },
            status: RunStatus::Done,
        }
    }

    #[test]
    fn table_columns_and_rows() {
        let keys = vec!["cov-coeff".to_string()];
        let rs = vec![rec("a", 30.0), rec("b,c", 40.0)];
        let cols = columns(&keys, &rs);
        assert_eq!(cols[0], "run");
        assert_eq!(cols[1], "cov-coeff");
        let li = cols.iter().position(|c| c == "loss:invariance").unwrap();
        let lt = cols.iter().position(|c| c == "loss:total").unwrap();
        assert!(li < lt, "total is the last loss column");
        let md = markdown("t", &keys, &rs);
        assert!(md.contains("| a | 1 | done | 30.0 | 20.0 |"), "{md}");
        let c = csv(&keys, &rs);
        assert_eq!(c.lines().count(), 3);
        assert!(c.contains("\"b,c\",1,done,40.0"), "{c}");
    }
}

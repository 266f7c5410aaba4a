//! `metrics.jsonl`: one JSON object per line.
//!
//! Step records (`"type": "step"`) carry `epoch`, `step` (optimizer steps
//! completed, 1-based), `batch_in_epoch`, `lr`, `loss` (an object with every
//! loss term and `total`), `std_mean_a`/`std_min_a`/`std_mean_b`/`std_min_b`
//! (per-dimension embedding std), `corr_a`/`corr_b` (average correlation
//! coefficient of the embeddings), `effective_rank_a`/`effective_rank_b`
//! (only every `rank_every` steps), `grad_norm`, `pairs_per_s`,
//! `data_wait_frac` (share of the wall time since the previous step record
//! spent waiting for the batch source: near 0 when the model sets the pace,
//! near 1 when the loader does), `elapsed_s` and, with the online probe,
//! `online_probe_acc`. Epoch records
//! (`"type": "epoch"`) carry the epoch's mean loss terms, throughput, the
//! online probe's accuracy and any evaluation results under `eval`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Running sums over the steps of one epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochAccum {
    /// Optimizer steps done in this epoch.
    pub steps: u64,
    /// Sum over those steps of each loss term, in the loss's order.
    pub loss_sums: Vec<(String, f64)>,
    /// Pairs processed (all ranks).
    pub pairs: u64,
    /// Online probe: correct predictions (all ranks).
    pub probe_correct: u64,
    /// Online probe: predictions (all ranks).
    pub probe_total: u64,
    /// Seconds spent in this epoch (all sessions).
    pub seconds: f64,
}

impl EpochAccum {
    /// Adds one step's loss terms.
    pub fn add_losses(&mut self, scalars: &[(String, f64)]) {
        if self.loss_sums.is_empty() {
            self.loss_sums = scalars.iter().map(|(n, _)| (n.clone(), 0.0)).collect();
        }
        for ((_, sum), (_, v)) in self.loss_sums.iter_mut().zip(scalars) {
            *sum += v;
        }
        self.steps += 1;
    }

    /// Mean of each loss term over the epoch's steps.
    pub fn mean_losses(&self) -> Vec<(String, f64)> {
        let n = self.steps.max(1) as f64;
        self.loss_sums
            .iter()
            .map(|(k, v)| (k.clone(), v / n))
            .collect()
    }

    /// Online probe accuracy over the epoch (`None` without a probe or predictions).
    pub fn probe_accuracy(&self) -> Option<f64> {
        (self.probe_total > 0).then(|| self.probe_correct as f64 / self.probe_total as f64)
    }
}

/// A JSON object of named numbers, in insertion order.
pub fn scalars_object(values: &[(String, f64)]) -> Value {
    let mut m = Map::new();
    for (k, v) in values {
        m.insert(k.clone(), json_number(*v));
    }
    Value::Object(m)
}

/// A finite number as JSON, or `null` (JSON has no NaN).
pub fn json_number(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Appends records to `metrics.jsonl`, one `write` per line so that a kill
/// leaves at most one partial last line.
pub struct MetricsWriter {
    file: File,
    path: PathBuf,
}

impl MetricsWriter {
    /// Opens (creating if needed) `path` for appending.
    pub fn append(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Writes one record.
    pub fn write(&mut self, record: &Value) -> Result<()> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| Error::invalid(format!("metrics record: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads every record of a `metrics.jsonl`. A partial last line (a run killed
/// while writing) is skipped; any other line that is not a JSON object is an
/// error naming the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let lines: Vec<&str> = text.lines().collect();
    let complete = text.ends_with('\n');
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => out.push(v),
            _ if i + 1 == lines.len() && !complete => {}
            Ok(_) => {
                return Err(Error::bad_file(
                    path,
                    format!("line {}: not a JSON object", i + 1),
                ))
            }
            Err(e) => return Err(Error::bad_file(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}

/// Keeps only the records with `step <= last_step` (the state of a checkpoint
/// being resumed), dropping what a killed run logged after it. Atomic rewrite.
pub fn truncate_metrics(path: &Path, last_step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let records = read_metrics(path)?;
    let mut text = String::new();
    for r in records {
        let step = r.get("step").and_then(Value::as_u64).unwrap_or(0);
        if step <= last_step {
            text += &serde_json::to_string(&r)
                .map_err(|e| Error::invalid(format!("metrics record: {e}")))?;
            text.push('\n');
        }
    }
    crate::io::write_atomic(path, text.as_bytes())
}

/// The mean loss terms (`name`, value) of the last `epoch` record of a run's
/// `metrics.jsonl` (empty when it has none).
pub fn last_epoch_losses(path: &Path) -> Result<Vec<(String, f64)>> {
    let recs = read_metrics(path)?;
    let last = recs
        .iter()
        .rev()
        .find(|r| r.get("type").and_then(Value::as_str) == Some("epoch"));
    Ok(match last.and_then(|r| r.get("loss")) {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_epoch_losses_read_the_last_epoch_record() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        let path = dir.join("metrics.jsonl");
        let lines = [
            r#"{"type":"epoch","epoch":0,"loss":{"total":3.0,"invariance":1.0}}"#,
            r#"{"type":"epoch","epoch":1,"loss":{"total":2.0,"invariance":0.5}}"#,
            r#"{"type":"step","epoch":1,"loss":{"total":9.0}}"#,
        ];
        std::fs::write(&path, lines.join("\n")).map_err(|e| crate::Error::io(&path, e))?;
        let mut got = last_epoch_losses(&path)?;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, vec![("invariance".into(), 0.5), ("total".into(), 2.0)]);
        std::fs::write(&path, lines[2]).map_err(|e| crate::Error::io(&path, e))?;
        assert!(last_epoch_losses(&path)?.is_empty());
        std::fs::remove_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        Ok(())
    }
}

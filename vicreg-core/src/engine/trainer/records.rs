//! What the loop writes about itself: the step and epoch records of
//! `metrics.jsonl` and the epoch's summary line.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::step::MicroOut;
use super::{RunState, Trainer};
use crate::diagnostics::{average_correlation, effective_rank, embedding_std};
use crate::engine::metrics::{json_number, scalars_object, EpochAccum};
use crate::model::JointModel;
use crate::Result;

impl<'m, M: JointModel> Trainer<'m, M> {
    pub(super) fn step_record(
        &self,
        state: &RunState,
        micro: &MicroOut,
        lr: f64,
        grad_norm: f64,
    ) -> Result<Map<String, Value>> {
        let mut rec = Map::new();
        rec.insert("type".into(), json!("step"));
        rec.insert("epoch".into(), json!(state.epoch));
        rec.insert("step".into(), json!(state.global_step));
        rec.insert("batch_in_epoch".into(), json!(state.batch_in_epoch));
        rec.insert("lr".into(), json_number(lr));
        rec.insert("loss".into(), scalars_object(&micro.scalars));
        // The expander outputs (for BYOL / SimSiam the online projection).
        for (tag, z) in [("a", &micro.out.a.emb), ("b", &micro.out.b.emb)] {
            let s = embedding_std(z)?;
            rec.insert(format!("std_mean_{tag}"), json_number(s.mean));
            rec.insert(format!("std_min_{tag}"), json_number(s.min));
            rec.insert(format!("corr_{tag}"), json_number(average_correlation(z)?));
        }
        if self.cfg.rank_every > 0 && state.global_step.is_multiple_of(self.cfg.rank_every as u64) {
            rec.insert(
                "effective_rank_a".into(),
                json_number(effective_rank(&micro.out.a.emb)?),
            );
            rec.insert(
                "effective_rank_b".into(),
                json_number(effective_rank(&micro.out.b.emb)?),
            );
        }
        rec.insert("grad_norm".into(), json_number(grad_norm));
        if let Some(acc) = micro.probe_acc {
            rec.insert("online_probe_acc".into(), json_number(acc));
        }
        Ok(rec)
    }

    pub(super) fn epoch_record(
        &self,
        epoch: usize,
        state: &RunState,
        results: &[(String, f64)],
        session_start: Instant,
        losses: &[(String, f64)],
    ) -> Value {
        let mut rec = Map::new();
        rec.insert("type".into(), json!("epoch"));
        rec.insert("epoch".into(), json!(epoch));
        rec.insert("step".into(), json!(state.global_step));
        rec.insert("loss".into(), scalars_object(losses));
        rec.insert(
            "pairs_per_s".into(),
            json_number(state.accum.pairs as f64 / state.accum.seconds.max(1e-9)),
        );
        rec.insert("epoch_s".into(), json_number(state.accum.seconds));
        rec.insert(
            "elapsed_s".into(),
            json_number(state.elapsed_before + session_start.elapsed().as_secs_f64()),
        );
        if let Some(acc) = state.accum.probe_accuracy() {
            rec.insert("online_probe_acc".into(), json_number(100.0 * acc));
        }
        rec.insert("eval".into(), scalars_object(results));
        Value::Object(rec)
    }

    pub(super) fn epoch_line(
        &self,
        epoch: usize,
        accum: &EpochAccum,
        results: &[(String, f64)],
        lr: f64,
    ) -> String {
        let losses = accum.mean_losses();
        let total = losses
            .iter()
            .find(|(n, _)| n == "total")
            .map_or(f64::NAN, |t| t.1);
        let terms: Vec<String> = losses
            .iter()
            .filter(|(n, _)| n != "total")
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect();
        let mut line = format!(
            "epoch {}/{}: loss {total:.4} ({}) lr {lr:.3e} {:.1} pairs/s {:.1}s",
            epoch + 1,
            self.cfg.epochs,
            terms.join(", "),
            accum.pairs as f64 / accum.seconds.max(1e-9),
            accum.seconds
        );
        if let Some(acc) = accum.probe_accuracy() {
            line += &format!(" online-probe {:.2}%", 100.0 * acc);
        }
        for (n, v) in results {
            line += &format!(" {n} {v:.4}");
        }
        line
    }
}

//! The batches of one epoch: micro-steps, optimizer steps every `accumulate`
//! micro-batches, step records every `log_every` steps and the extra
//! checkpoints of `checkpoint_every_steps`.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::Tensor;
use serde_json::Value;

use super::{RunState, Session, Trainer};
use crate::engine::guard::{locate, StepPos};
use crate::engine::metrics::json_number;
use crate::engine::source::BatchSource;
use crate::model::JointModel;
use crate::{Error, Result};

impl<'m, M: JointModel> Trainer<'m, M> {
    /// Trains the rest of epoch `state.epoch` (from `state.batch_in_epoch`);
    /// `epoch_start` and `seconds_before` time the epoch for its checkpoints.
    pub(super) fn train_epoch(
        &mut self,
        source: &mut dyn BatchSource<M::A, M::B>,
        state: &mut RunState,
        session: &mut Session,
        epoch_start: Instant,
        seconds_before: f64,
    ) -> Result<()> {
        let epoch = state.epoch;
        let acc = self.cfg.accumulate;
        let world = self.collective.world_size();
        let usable = session.steps_per_epoch * acc;
        session.progress.start_epoch(
            epoch,
            self.cfg.epochs,
            session.steps_per_epoch as u64,
            (state.batch_in_epoch / acc) as u64,
        );
        let mut pos = state.batch_in_epoch;
        if pos < usable {
            let mut iter = source.epoch(epoch, pos)?;
            let mut grads: HashMap<String, Tensor> = HashMap::new();
            let mut pairs_in_window = 0usize;
            let mut window: Vec<(String, f64)> = Vec::new();
            // Seconds spent waiting for the batch source since the last log line.
            let mut data_wait_s = 0.0f64;
            loop {
                if pos >= usable {
                    break;
                }
                let waiting = Instant::now();
                let Some(item) = iter.next() else { break };
                data_wait_s += waiting.elapsed().as_secs_f64();
                let (e, idx, batch) = item?;
                if e != epoch || idx != pos {
                    return Err(Error::invalid(format!(
                        "the batch source yielded batch {idx} of epoch {e}, expected batch {pos} of epoch {epoch}"
                    )));
                }
                let at = StepPos {
                    step: state.global_step + 1,
                    epoch,
                    batch: pos,
                };
                let mut micro = self
                    .micro_step(&batch, at, &mut grads, &mut state.accum)
                    .map_err(|e| self.stopped(locate(e, at), session.last_ckpt_step))?;
                if window.is_empty() {
                    window = micro
                        .scalars
                        .iter()
                        .map(|(n, _)| (n.clone(), 0.0))
                        .collect();
                }
                for ((_, w), (_, v)) in window.iter_mut().zip(&micro.scalars) {
                    *w += v / acc as f64;
                }
                pairs_in_window += batch.pairs * world;
                pos += 1;
                if !pos.is_multiple_of(acc) {
                    continue;
                }
                let lr = session.schedule.lr_at(state.global_step);
                let grad_norm = self
                    .apply_step(std::mem::take(&mut grads), lr, at)
                    .map_err(|e| self.stopped(e, session.last_ckpt_step))?;
                state.global_step += 1;
                state.batch_in_epoch = pos;
                micro.scalars = std::mem::take(&mut window);
                state.accum.add_losses(&micro.scalars);
                state.accum.pairs += pairs_in_window as u64;
                session.last_log.1 += pairs_in_window as u64;
                pairs_in_window = 0;
                let total = micro.scalars.last().map_or(f64::NAN, |t| t.1);
                let now = Instant::now();
                let pairs_per_s = session.last_log.1 as f64
                    / now
                        .duration_since(session.last_log.0)
                        .as_secs_f64()
                        .max(1e-9);
                session
                    .progress
                    .update((pos / acc) as u64, total, lr, pairs_per_s);
                if state.global_step.is_multiple_of(self.cfg.log_every as u64) {
                    if let Some(w) = session.metrics.as_mut() {
                        let mut rec = self.step_record(state, &micro, lr, grad_norm)?;
                        rec.insert("pairs_per_s".into(), json_number(pairs_per_s));
                        let window_s = now
                            .duration_since(session.last_log.0)
                            .as_secs_f64()
                            .max(1e-9);
                        rec.insert(
                            "data_wait_frac".into(),
                            json_number((data_wait_s / window_s).min(1.0)),
                        );
                        rec.insert(
                            "elapsed_s".into(),
                            json_number(
                                state.elapsed_before + session.start.elapsed().as_secs_f64(),
                            ),
                        );
                        w.write(&Value::Object(rec))?;
                    }
                    session.last_log = (now, 0);
                    data_wait_s = 0.0;
                }
                let every = self.cfg.checkpoint_every_steps as u64;
                if every > 0 && state.global_step.is_multiple_of(every) && pos < usable {
                    state.accum.seconds = seconds_before + epoch_start.elapsed().as_secs_f64();
                    self.save(
                        state,
                        state.elapsed_before + session.start.elapsed().as_secs_f64(),
                    )?;
                    session.last_ckpt_step = Some(state.global_step);
                }
            }
            if pos < usable {
                return Err(Error::invalid(format!(
                    "the batch source ended after {pos} batches of epoch {epoch}, expected {}",
                    session.per_epoch
                )));
            }
        }
        Ok(())
    }

    /// `e` as the error that stops the run: a non-finite loss or gradient
    /// names the last good checkpoint (`last`), which is kept.
    fn stopped(&self, e: Error, last: Option<u64>) -> Error {
        match e {
            Error::NonFinite(msg) => Error::NonFinite(match last {
                Some(s) => format!(
                    "{msg}; training stopped, the last good checkpoint (step {s}) is kept in {}",
                    self.dir.checkpoint_path().display()
                ),
                None => format!("{msg}; training stopped before any checkpoint was written"),
            }),
            other => other,
        }
    }
}

//! The checkpoint policy: resuming (or refusing to) from the run
//! directory's checkpoint, saving one (rank 0), and exporting the encoders
//! at the end.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;

use super::{RunState, Trainer};
use crate::engine::checkpoint::{
    load_checkpoint, save_checkpoint, CheckpointMeta, CHECKPOINT_FORMAT,
};
use crate::engine::config::ResumeMode;
use crate::engine::metrics::truncate_metrics;
use crate::model::JointModel;
use crate::{Error, Result, SeededRng};

impl<'m, M: JointModel> Trainer<'m, M> {
    /// Loads the checkpoint according to `cfg.resume`; returns its step.
    pub(super) fn resume(&mut self, state: &mut RunState, per_epoch: usize) -> Result<Option<u64>> {
        let path = self.dir.checkpoint_path();
        let rank = self.collective.rank();
        match self.cfg.resume {
            ResumeMode::Fresh => {
                if rank == 0 {
                    for p in [
                        path.clone(),
                        self.dir.checkpoint_json_path(),
                        self.dir.metrics_path(),
                    ] {
                        if p.exists() {
                            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                        }
                    }
                }
                self.collective.barrier()?;
                return Ok(None);
            }
            ResumeMode::Require if !path.is_file() => {
                return Err(Error::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "--resume given but there is no checkpoint",
                    ),
                ));
            }
            _ if !path.is_file() => {
                // A run that died before its first checkpoint starts over: drop its records.
                if rank == 0 {
                    truncate_metrics(&self.dir.metrics_path(), 0)?;
                }
                return Ok(None);
            }
            _ => {}
        }
        let ckpt = load_checkpoint(&path)?;
        let meta = &ckpt.meta;
        let world = self.collective.world_size();
        if meta.world_size != world {
            return Err(Error::bad_file(
                &path,
                format!(
                    "checkpoint was written by a run with {} ranks, this run has {world} (data positions would not match)",
                    meta.world_size
                ),
            ));
        }
        if !meta.batch_in_epoch.is_multiple_of(self.cfg.accumulate)
            || meta.batch_in_epoch > per_epoch
        {
            return Err(Error::bad_file(
                &path,
                format!(
                    "checkpoint position (batch {} of an epoch of {per_epoch}, accumulate {}) does not fit this run",
                    meta.batch_in_epoch, self.cfg.accumulate
                ),
            ));
        }
        self.store
            .load_tensors(&ckpt.section("model/"), false, &path)?;
        self.optimizer
            .load_state(&ckpt.section("optim/"))
            .map_err(|e| Error::bad_file(&path, format!("optimizer state: {e}")))?;
        if let Some(probe) = self.probe.as_mut() {
            let w = ckpt.section("probe/");
            if w.is_empty() {
                tracing::warn!(
                    "{}: no online probe in the checkpoint; the probe starts fresh",
                    path.display()
                );
            } else {
                probe.load(&w, &ckpt.section("probe_optim/"), &path)?;
            }
        }
        state.epoch = meta.epoch;
        state.batch_in_epoch = meta.batch_in_epoch;
        state.global_step = meta.global_step;
        state.rng = SeededRng::from_state(&meta.rng);
        state.elapsed_before = meta.elapsed_s;
        state.accum = meta.epoch_accum.clone();
        if rank == 0 {
            truncate_metrics(&self.dir.metrics_path(), meta.global_step)?;
        }
        Ok(Some(meta.global_step))
    }

    pub(super) fn save(&self, state: &RunState, elapsed: f64) -> Result<()> {
        if self.collective.rank() != 0 {
            return Ok(());
        }
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT,
            epoch: state.epoch,
            batch_in_epoch: state.batch_in_epoch,
            global_step: state.global_step,
            rng: state.rng.state(),
            world_size: self.collective.world_size(),
            elapsed_s: elapsed,
            epoch_accum: state.accum.clone(),
        };
        let model = self.store.tensors();
        let optim = self.optimizer.state()?;
        let mut sections: Vec<(&str, &HashMap<String, Tensor>)> =
            vec![("model/", &model), ("optim/", &optim)];
        let probe = match &self.probe {
            Some(p) => Some((p.tensors(), p.optimizer_state()?)),
            None => None,
        };
        if let Some((w, o)) = &probe {
            sections.push(("probe/", w));
            sections.push(("probe_optim/", o));
        }
        save_checkpoint(
            &self.dir.checkpoint_path(),
            &self.dir.checkpoint_json_path(),
            &meta,
            &sections,
        )
    }

    pub(super) fn export_encoders(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let all = self.store.tensors();
        for (branch, prefix) in &self.exports {
            let t: HashMap<String, Tensor> = all
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(prefix.as_str())
                        .map(|n| (n.to_string(), v.clone()))
                })
                .collect();
            if t.is_empty() {
                return Err(Error::config(format!(
                    "encoder export {branch:?}: no variable name starts with {prefix:?}"
                )));
            }
            let path = self.dir.encoder_path(branch);
            crate::io::save_safetensors_atomic(&t, &path)?;
            files.push(path);
        }
        Ok(files)
    }
}

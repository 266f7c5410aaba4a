//! The pretraining loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::checkpoint::{load_checkpoint, save_checkpoint, CheckpointMeta, CHECKPOINT_FORMAT};
use super::config::{ResumeMode, TrainConfig};
use super::guard::{check_loss_terms, grad_sq_norms, locate, StepPos};
use super::metrics::{json_number, scalars_object, truncate_metrics, EpochAccum, MetricsWriter};
use super::progress::Progress;
use super::run_dir::RunDir;
use super::source::{BatchSource, PairBatch};
use crate::collective::Collective;
use crate::diagnostics::{average_correlation, effective_rank, embedding_std};
use crate::eval::OnlineProbe;
use crate::loss::JointLoss;
use crate::model::JointModel;
use crate::model::JointOutput;
use crate::optim::{build_optimizer, LrSchedule, Optimizer, ParamGroup};
use crate::{hash_str, Error, ParamStore, Result, SeededRng};

/// Per-epoch evaluation hook: given the epoch index (0-based), returns named
/// results (accuracies, recalls...) for the epoch record of `metrics.jsonl`.
pub type EvalHook<'h> = dyn FnMut(usize) -> Result<Vec<(String, f64)>> + 'h;

/// What a finished [`Trainer::fit`] reports.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Optimizer steps of the whole run.
    pub global_step: u64,
    /// Epochs completed.
    pub epochs: usize,
    /// The step the run resumed from (`None`: started fresh).
    pub resumed_from: Option<u64>,
    /// Mean loss terms of the last epoch trained in this session (empty if none).
    pub last_epoch_losses: Vec<(String, f64)>,
    /// Training seconds over all sessions.
    pub elapsed_s: f64,
    /// Encoder weight files written.
    pub encoder_files: Vec<PathBuf>,
    /// Chart files written.
    pub plots: Vec<PathBuf>,
}

struct RunState {
    epoch: usize,
    batch_in_epoch: usize,
    global_step: u64,
    rng: SeededRng,
    elapsed_before: f64,
    accum: EpochAccum,
}

/// Trains a [`JointModel`] with a [`JointLoss`] on batches from a
/// [`BatchSource`], writing the run directory (see the [module docs](super)).
///
/// One optimizer step = `accumulate` micro-batches: for each, forward both
/// branches in train mode, loss (divided by `accumulate`), backward, gradients
/// summed; then gradients are averaged over ranks (`all_reduce_sum / world`),
/// checked for NaN/Inf, clipped to `clip_grad` (global L2 norm) and the
/// optimizer steps with the scheduled learning rate (official schedule:
/// warmup then cosine, peak `base_lr * batch_size / 256`). Incomplete
/// accumulation windows at the end of an epoch are dropped.
pub struct Trainer<'m, M: JointModel> {
    model: &'m M,
    store: ParamStore,
    loss: Box<dyn JointLoss>,
    collective: Arc<dyn Collective>,
    cfg: TrainConfig,
    dir: RunDir,
    optimizer: Box<dyn Optimizer>,
    trainable: Vec<(String, Var)>,
    probe: Option<OnlineProbe>,
    exports: Vec<(String, String)>,
}

impl<'m, M: JointModel> Trainer<'m, M> {
    /// A trainer for `model`, whose variables live in `store`. `run_dir` is
    /// created if needed; rank 0 writes `resolved_config` (the app's fully
    /// resolved configuration, any value that serializes to a TOML table) to
    /// `config.toml`. The optimizer is built from `cfg` over every trainable
    /// variable of `store` (see [`Trainer::with_optimizer`] to replace it).
    pub fn new<C: Serialize + ?Sized>(
        model: &'m M,
        store: &ParamStore,
        loss: Box<dyn JointLoss>,
        collective: Arc<dyn Collective>,
        cfg: TrainConfig,
        run_dir: impl AsRef<std::path::Path>,
        resolved_config: &C,
    ) -> Result<Self> {
        cfg.validate()?;
        let dir = RunDir::create(run_dir)?;
        if collective.rank() == 0 {
            dir.write_config(resolved_config)?;
        }
        let trainable = store.trainable_vars();
        if trainable.is_empty() {
            return Err(Error::config(
                "the model has no trainable variables (build it through the ParamStore first)",
            ));
        }
        let optimizer = build_optimizer(
            cfg.optimizer,
            vec![ParamGroup::new(trainable.clone())],
            cfg.weight_decay,
        )?;
        let probe = match &cfg.online_probe {
            Some(p) => {
                let device = trainable[0].1.device().clone();
                Some(OnlineProbe::new(
                    model.repr_dims().0,
                    p,
                    crate::mix64(cfg.seed ^ hash_str("online_probe")),
                    &device,
                )?)
            }
            None => None,
        };
        Ok(Self {
            model,
            store: store.clone(),
            loss,
            collective,
            cfg,
            dir,
            optimizer,
            trainable,
            probe,
            exports: Vec::new(),
        })
    }

    /// Replaces the optimizer (e.g. with parameter groups of their own).
    pub fn with_optimizer(mut self, optimizer: Box<dyn Optimizer>) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// At the end of the run, writes `<branch>-encoder.safetensors` with every
    /// variable whose name starts with `prefix` (e.g. `"a.encoder."`), the
    /// prefix removed from the names.
    pub fn with_encoder_export(mut self, branch: &str, prefix: &str) -> Self {
        self.exports.push((branch.to_string(), prefix.to_string()));
        self
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Trains to the end (resuming according to `cfg.resume`).
    pub fn fit(&mut self, source: &mut dyn BatchSource<M::A, M::B>) -> Result<TrainSummary> {
        self.fit_with_eval(source, &mut |_| Ok(Vec::new()))
    }

    /// Trains to the end, calling `eval` after every epoch; its results go into
    /// the epoch record of `metrics.jsonl` and the epoch's summary line.
    pub fn fit_with_eval(
        &mut self,
        source: &mut dyn BatchSource<M::A, M::B>,
        eval: &mut EvalHook<'_>,
    ) -> Result<TrainSummary> {
        let rank = self.collective.rank();
        let world = self.collective.world_size();
        let acc = self.cfg.accumulate;
        let per_epoch = source.batches_per_epoch();
        let steps_per_epoch = per_epoch / acc;
        if steps_per_epoch == 0 {
            return Err(Error::config(format!(
                "the batch source has {per_epoch} batches per epoch, fewer than train.accumulate = {acc}"
            )));
        }
        let schedule = LrSchedule::official(
            self.cfg.base_lr,
            self.cfg.batch_size,
            self.cfg.epochs,
            steps_per_epoch,
            self.cfg.warmup_epochs,
        );
        let mut state = RunState {
            epoch: 0,
            batch_in_epoch: 0,
            global_step: 0,
            rng: SeededRng::derive(self.cfg.seed, &[hash_str("engine")]),
            elapsed_before: 0.0,
            accum: EpochAccum::default(),
        };
        let resumed_from = self.resume(&mut state, per_epoch)?;
        let mut metrics = if rank == 0 {
            Some(MetricsWriter::append(&self.dir.metrics_path())?)
        } else {
            None
        };
        let mut progress = Progress::new(self.cfg.quiet, rank);
        if let (Some(step), true) = (resumed_from, state.epoch >= self.cfg.epochs) {
            progress.println(&format!(
                "{}: the run is already complete ({step} steps, {} epochs); nothing to train",
                self.dir.checkpoint_path().display(),
                state.epoch
            ));
        } else if let Some(step) = resumed_from {
            progress.println(&format!(
                "resuming from {} at step {step} (epoch {}, batch {})",
                self.dir.checkpoint_path().display(),
                state.epoch + 1,
                state.batch_in_epoch
            ));
        }
        let session_start = Instant::now();
        let mut last_log = (Instant::now(), 0u64);
        let mut last_ckpt_step = resumed_from;
        let mut last_losses = Vec::new();
        let usable = steps_per_epoch * acc;
        let fail = |e: Error, last: Option<u64>, dir: &RunDir| -> Error {
            match e {
                Error::NonFinite(msg) => Error::NonFinite(match last {
                    Some(s) => format!(
                        "{msg}; training stopped, the last good checkpoint (step {s}) is kept in {}",
                        dir.checkpoint_path().display()
                    ),
                    None => format!("{msg}; training stopped before any checkpoint was written"),
                }),
                other => other,
            }
        };

        while state.epoch < self.cfg.epochs {
            let epoch = state.epoch;
            let epoch_start = Instant::now();
            let seconds_before = state.accum.seconds;
            progress.start_epoch(
                epoch,
                self.cfg.epochs,
                steps_per_epoch as u64,
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
                        .map_err(|e| fail(locate(e, at), last_ckpt_step, &self.dir))?;
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
                    let lr = schedule.lr_at(state.global_step);
                    let grad_norm = self
                        .apply_step(std::mem::take(&mut grads), lr, at)
                        .map_err(|e| fail(e, last_ckpt_step, &self.dir))?;
                    state.global_step += 1;
                    state.batch_in_epoch = pos;
                    micro.scalars = std::mem::take(&mut window);
                    state.accum.add_losses(&micro.scalars);
                    state.accum.pairs += pairs_in_window as u64;
                    last_log.1 += pairs_in_window as u64;
                    pairs_in_window = 0;
                    let total = micro.scalars.last().map_or(f64::NAN, |t| t.1);
                    let now = Instant::now();
                    let pairs_per_s =
                        last_log.1 as f64 / now.duration_since(last_log.0).as_secs_f64().max(1e-9);
                    progress.update((pos / acc) as u64, total, lr, pairs_per_s);
                    if state.global_step.is_multiple_of(self.cfg.log_every as u64) {
                        if let Some(w) = metrics.as_mut() {
                            let mut rec = self.step_record(&state, &micro, lr, grad_norm)?;
                            rec.insert("pairs_per_s".into(), json_number(pairs_per_s));
                            let window_s = now.duration_since(last_log.0).as_secs_f64().max(1e-9);
                            rec.insert(
                                "data_wait_frac".into(),
                                json_number((data_wait_s / window_s).min(1.0)),
                            );
                            rec.insert(
                                "elapsed_s".into(),
                                json_number(
                                    state.elapsed_before + session_start.elapsed().as_secs_f64(),
                                ),
                            );
                            w.write(&Value::Object(rec))?;
                        }
                        last_log = (now, 0);
                        data_wait_s = 0.0;
                    }
                    let every = self.cfg.checkpoint_every_steps as u64;
                    if every > 0 && state.global_step.is_multiple_of(every) && pos < usable {
                        state.accum.seconds = seconds_before + epoch_start.elapsed().as_secs_f64();
                        self.save(
                            &state,
                            state.elapsed_before + session_start.elapsed().as_secs_f64(),
                        )?;
                        last_ckpt_step = Some(state.global_step);
                    }
                }
                if pos < usable {
                    return Err(Error::invalid(format!(
                        "the batch source ended after {pos} batches of epoch {epoch}, expected {per_epoch}"
                    )));
                }
            }
            progress.finish_epoch();
            state.accum.seconds = seconds_before + epoch_start.elapsed().as_secs_f64();
            let results = eval(epoch)?;
            last_losses = state.accum.mean_losses();
            let line = self.epoch_line(
                epoch,
                &state.accum,
                &results,
                schedule.lr_at(state.global_step.saturating_sub(1)),
            );
            if let Some(w) = metrics.as_mut() {
                w.write(&self.epoch_record(epoch, &state, &results, session_start, &last_losses))?;
            }
            progress.println(&line);
            state.epoch += 1;
            state.batch_in_epoch = 0;
            state.accum = EpochAccum::default();
            self.save(
                &state,
                state.elapsed_before + session_start.elapsed().as_secs_f64(),
            )?;
            last_ckpt_step = Some(state.global_step);
        }
        drop(progress);

        let mut summary = TrainSummary {
            global_step: state.global_step,
            epochs: state.epoch,
            resumed_from,
            last_epoch_losses: last_losses,
            elapsed_s: state.elapsed_before + session_start.elapsed().as_secs_f64(),
            encoder_files: Vec::new(),
            plots: Vec::new(),
        };
        if rank == 0 {
            summary.encoder_files = self.export_encoders()?;
            if self.cfg.plot {
                match super::plot::plot_run(self.dir.path()) {
                    Ok(p) => summary.plots = p,
                    Err(e) => tracing::warn!("plots not written: {e}"),
                }
            }
        }
        Ok(summary)
    }

    /// Loads the checkpoint according to `cfg.resume`; returns its step.
    fn resume(&mut self, state: &mut RunState, per_epoch: usize) -> Result<Option<u64>> {
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

    /// Forward, loss, backward of one micro-batch; gradients added to `grads`.
    fn micro_step(
        &mut self,
        batch: &PairBatch<M::A, M::B>,
        at: StepPos,
        grads: &mut HashMap<String, Tensor>,
        accum: &mut EpochAccum,
    ) -> Result<MicroOut> {
        let out = self.model.forward_t(&batch.a, &batch.b, true)?;
        let loss = self
            .loss
            .compute(&out.a.emb, &out.b.emb, &self.collective)?;
        let scalars = loss.scalars()?;
        check_loss_terms(&scalars, at)?;
        let total = if self.cfg.accumulate > 1 {
            (&loss.total / self.cfg.accumulate as f64)?
        } else {
            loss.total.clone()
        };
        let g = total.backward()?;
        for (name, var) in &self.trainable {
            if let Some(gv) = g.get(var.as_tensor()) {
                let sum = match grads.remove(name) {
                    Some(prev) => (prev + gv)?,
                    None => gv.clone(),
                };
                grads.insert(name.clone(), sum);
            }
        }
        drop(g);
        let mut probe_acc = None;
        if let Some(probe) = self.probe.as_mut() {
            let labels = batch.labels.as_ref().ok_or_else(|| {
                Error::invalid(format!(
                    "{at}: the online probe is on but the batch carries no labels"
                ))
            })?;
            let s = probe.step(&out.a.repr, labels, &self.collective)?;
            accum.probe_correct += s.correct;
            accum.probe_total += s.total;
            probe_acc = Some(100.0 * s.correct as f64 / s.total.max(1) as f64);
        }
        Ok(MicroOut {
            scalars,
            out,
            probe_acc,
        })
    }

    /// Averages, checks, clips and applies the accumulated gradients; returns the global norm.
    fn apply_step(&mut self, grads: HashMap<String, Tensor>, lr: f64, at: StepPos) -> Result<f64> {
        let world = self.collective.world_size();
        let mut named: Vec<(String, Var, Tensor)> = Vec::with_capacity(grads.len());
        for (name, var) in &self.trainable {
            if let Some(g) = grads.get(name) {
                let g = if world > 1 {
                    (self.collective.all_reduce_sum(g)? / world as f64)?
                } else {
                    g.clone()
                };
                named.push((name.clone(), var.clone(), g));
            }
        }
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, _, g)| (n.as_str(), g)).collect();
        let sq = grad_sq_norms(&refs, at)?;
        let norm = sq.iter().sum::<f64>().sqrt();
        let scale = match self.cfg.clip_grad {
            Some(max) if norm > max => Some(max / (norm + 1e-6)),
            _ => None,
        };
        let mut store = GradStore::default();
        for (_, var, g) in named {
            let g = match scale {
                Some(s) => (g * s)?,
                None => g,
            };
            store.insert(var.as_tensor(), g);
        }
        self.optimizer.step(&store, lr)?;
        Ok(norm)
    }

    fn step_record(
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
        // The expander outputs, not an asymmetric model's packed `[p | z | t]`.
        for (tag, z) in [
            ("a", micro.out.a.projection()),
            ("b", micro.out.b.projection()),
        ] {
            let s = embedding_std(z)?;
            rec.insert(format!("std_mean_{tag}"), json_number(s.mean));
            rec.insert(format!("std_min_{tag}"), json_number(s.min));
            rec.insert(format!("corr_{tag}"), json_number(average_correlation(z)?));
        }
        if self.cfg.rank_every > 0 && state.global_step.is_multiple_of(self.cfg.rank_every as u64) {
            rec.insert(
                "effective_rank_a".into(),
                json_number(effective_rank(micro.out.a.projection())?),
            );
            rec.insert(
                "effective_rank_b".into(),
                json_number(effective_rank(micro.out.b.projection())?),
            );
        }
        rec.insert("grad_norm".into(), json_number(grad_norm));
        if let Some(acc) = micro.probe_acc {
            rec.insert("online_probe_acc".into(), json_number(acc));
        }
        Ok(rec)
    }

    fn epoch_record(
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

    fn epoch_line(
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

    fn save(&self, state: &RunState, elapsed: f64) -> Result<()> {
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

    fn export_encoders(&self) -> Result<Vec<PathBuf>> {
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

struct MicroOut {
    scalars: Vec<(String, f64)>,
    out: JointOutput,
    probe_acc: Option<f64>,
}

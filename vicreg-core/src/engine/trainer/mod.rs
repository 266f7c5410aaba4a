//! The pretraining loop ([`Trainer`]): this file holds the run from start to
//! end; `builder.rs` its assembly, `epoch.rs` the batches of one epoch, `step.rs` one optimizer step, `records.rs` the metrics records and
//! summary lines, `persist.rs` resume, checkpoints and the encoder export.

mod builder;
mod epoch;
mod persist;
mod records;
mod step;

pub use builder::TrainerBuilder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Var;
use serde::Serialize;

use crate::collective::Collective;
use crate::engine::config::TrainConfig;
use crate::engine::metrics::{EpochAccum, MetricsWriter};
use crate::engine::progress::Progress;
use crate::engine::run_dir::RunDir;
use crate::engine::source::BatchSource;
use crate::eval::OnlineProbe;
use crate::loss::JointLoss;
use crate::model::JointModel;
use crate::optim::{LrSchedule, Optimizer};
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

/// What the loop carries through a session (one invocation of `fit`).
struct Session {
    schedule: LrSchedule,
    /// `metrics.jsonl` (rank 0 only).
    metrics: Option<MetricsWriter>,
    progress: Progress,
    /// When this session started.
    start: Instant,
    /// When the last step record was written, and the pairs seen since.
    last_log: (Instant, u64),
    /// The step of the last checkpoint written or resumed from.
    last_ckpt_step: Option<u64>,
    /// Batches per epoch on this rank.
    per_epoch: usize,
    /// Optimizer steps per epoch (`per_epoch / accumulate`).
    steps_per_epoch: usize,
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
    /// A trainer for `model`, whose variables live in `store`: the same as
    /// [`Trainer::builder`] with `loss`, `collective` and `run_dir` given
    /// (rank 0 writes `resolved_config` to `config.toml`) and the default
    /// optimizer (see [`Trainer::with_optimizer`] to replace it).
    pub fn new<C: Serialize + ?Sized>(
        model: &'m M,
        store: &ParamStore,
        loss: Box<dyn JointLoss>,
        collective: Arc<dyn Collective>,
        cfg: TrainConfig,
        run_dir: impl AsRef<std::path::Path>,
        resolved_config: &C,
    ) -> Result<Self> {
        Self::builder(model, store, cfg)
            .loss(loss)
            .collective(collective)
            .run_dir(run_dir.as_ref(), resolved_config)
            .build()
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
        let metrics = if rank == 0 {
            Some(MetricsWriter::append(&self.dir.metrics_path())?)
        } else {
            None
        };
        let progress = Progress::new(self.cfg.quiet, rank);
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
        let mut last_losses = Vec::new();
        let mut session = Session {
            schedule,
            metrics,
            progress,
            start: Instant::now(),
            last_log: (Instant::now(), 0),
            last_ckpt_step: resumed_from,
            per_epoch,
            steps_per_epoch,
        };

        while state.epoch < self.cfg.epochs {
            let epoch = state.epoch;
            let epoch_start = Instant::now();
            let seconds_before = state.accum.seconds;
            self.train_epoch(
                source,
                &mut state,
                &mut session,
                epoch_start,
                seconds_before,
            )?;
            session.progress.finish_epoch();
            state.accum.seconds = seconds_before + epoch_start.elapsed().as_secs_f64();
            let results = eval(epoch)?;
            last_losses = state.accum.mean_losses();
            let line = self.epoch_line(
                epoch,
                &state.accum,
                &results,
                session.schedule.lr_at(state.global_step.saturating_sub(1)),
            );
            if let Some(w) = session.metrics.as_mut() {
                w.write(&self.epoch_record(epoch, &state, &results, session.start, &last_losses))?;
            }
            session.progress.println(&line);
            state.epoch += 1;
            state.batch_in_epoch = 0;
            state.accum = EpochAccum::default();
            self.save(
                &state,
                state.elapsed_before + session.start.elapsed().as_secs_f64(),
            )?;
            session.last_ckpt_step = Some(state.global_step);
        }
        let session_start = session.start;
        drop(session);

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
                match crate::engine::plot::plot_run(self.dir.path()) {
                    Ok(p) => summary.plots = p,
                    Err(e) => tracing::warn!("plots not written: {e}"),
                }
            }
        }
        Ok(summary)
    }
}

//! The training engine: one pretraining loop for any two-branch model and
//! any data source, shared by all apps.
//!
//! A [`Trainer`] runs a [`JointModel`] (implemented for
//! [`JointEmbedding`](crate::model::JointEmbedding)) on the [`PairBatch`]es of
//! a [`BatchSource`] with a [`JointLoss`](crate::loss::JointLoss) and writes a
//! run directory ([`RunDir`]):
//!
//! - `config.toml`: the fully resolved configuration handed over by the app;
//! - `metrics.jsonl`: a record per logged step and per epoch (see [`metrics`]);
//! - `checkpoint.safetensors` (+ readable `checkpoint.json`): model, optimizer,
//!   online probe, RNG state, epoch, step and data position, written
//!   atomically every `checkpoint_every_steps` steps and at each epoch end;
//!   a run finds and resumes it by itself ([`ResumeMode::Auto`]), and a run
//!   killed at any moment and resumed ends with bit-identical weights;
//! - `<branch>-encoder.safetensors`: encoder weights alone, at the end;
//! - `plot_*.svg`: charts of the run ([`plot_run`]).
//!
//! A NaN or infinite loss term or gradient stops the run with an
//! [`Error::NonFinite`](crate::Error::NonFinite) naming the step and the term
//! or parameter; the last good checkpoint is left untouched.
//!
//! ```
//! use std::sync::Arc;
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::Linear;
//! use vicreg_core::collective::SingleProcess;
//! use vicreg_core::engine::{FnSource, PairBatch, TrainConfig, Trainer};
//! use vicreg_core::loss::{VicRegConfig, VicRegLoss};
//! use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
//! use vicreg_core::{ParamStore, SeededRng};
//!
//! /// A one-layer encoder: (batch, 4) -> (batch, 8).
//! struct Mlp(Linear);
//! impl Encoder for Mlp {
//!     type Input = Tensor;
//!     fn forward_t(&self, x: &Tensor, _train: bool) -> vicreg_core::Result<Tensor> {
//!         Ok(self.0.forward(x)?.relu()?)
//!     }
//!     fn repr_dim(&self) -> usize { 8 }
//! }
//!
//! let store = ParamStore::new(0);
//! let vb = store.var_builder(DType::F32, &Device::Cpu);
//! let branch = |name: &str| -> vicreg_core::Result<Branch<Mlp>> {
//!     let enc = Mlp(candle_nn::linear(4, 8, vb.pp(name).pp("encoder"))?);
//!     Branch::new(enc, &ExpanderConfig::with_mlp("16-16"), vb.pp(name).pp("projector"))
//! };
//! let model = JointEmbedding::new(branch("a")?, branch("b")?);
//!
//! // Two noisy views of the same points; batch (epoch, i) depends only on its position.
//! let mut source = FnSource::new(4, |epoch: usize, i: usize| {
//!     let mut rng = SeededRng::derive(7, &[epoch as u64, i as u64]);
//!     let base: Vec<f32> = (0..32 * 4).map(|_| rng.normal() as f32).collect();
//!     let mut view = |rng: &mut SeededRng| -> vicreg_core::Result<Tensor> {
//!         let v: Vec<f32> = base.iter().map(|x| x + 0.1 * rng.normal() as f32).collect();
//!         Ok(Tensor::from_vec(v, (32, 4), &Device::Cpu)?)
//!     };
//!     Ok(PairBatch::new(view(&mut rng)?, view(&mut rng)?, 32))
//! });
//!
//! let dir = std::env::temp_dir().join(format!("vicreg-engine-doc-{}", std::process::id()));
//! let cfg = TrainConfig { epochs: 2, ..TrainConfig::smoke() };
//! let loss = Box::new(VicRegLoss::new(VicRegConfig::default())?);
//! let mut trainer = Trainer::builder(&model, &store, cfg.clone())
//!     .loss(loss)
//!     .collective(Arc::new(SingleProcess)) // the default; an MPI group for several processes
//!     .run_dir(&dir, &cfg) // rank 0 writes the app's resolved config to config.toml
//!     .export("a", "a.encoder.")
//!     .build()?;
//! let summary = trainer.fit(&mut source)?;
//! assert_eq!(summary.global_step, 8);
//! assert!(dir.join("a-encoder.safetensors").is_file());
//! assert!(dir.join("metrics.jsonl").is_file());
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), vicreg_core::Error>(())
//! ```

mod checkpoint;
mod compare;
mod config;
mod guard;
pub mod metrics;
mod outcome;
mod plot;
mod progress;
mod run_dir;
mod source;
mod trainer;

/// Re-exported from [`crate::eval`], where it lives.
pub use crate::eval::OnlineProbeConfig;
/// Re-exported from [`crate::model`], where it lives.
pub use crate::model::JointModel;
pub use checkpoint::{
    checkpoint_bytes, data_hash, load_checkpoint, save_checkpoint, Checkpoint, CheckpointMeta,
    CHECKPOINT_FORMAT,
};
pub use compare::plot_comparison;
pub use config::{ResumeMode, TrainConfig};
pub use guard::{check_loss_terms, grad_sq_norms, StepPos};
pub use metrics::{last_epoch_losses, read_metrics, EpochAccum};
pub use outcome::RunOutcome;
pub use plot::{line_chart, panel_chart, plot_run, Series};
pub use progress::Progress;
pub use run_dir::RunDir;
pub use source::{BatchSource, EpochIter, FnSource, PairBatch, Positioned};
pub use trainer::{EvalHook, TrainSummary, Trainer, TrainerBuilder};

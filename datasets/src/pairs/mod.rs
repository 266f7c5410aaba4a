//! Pretraining batches for the engine: a [`Loader`](crate::loader::Loader)
//! turned into a [`BatchSource`](vicreg_core::engine::BatchSource) of
//! two-branch batches, labels attached to any dataset, and the run's log of
//! skipped samples.

mod batches;
mod labelled;
mod skip_log;

pub use batches::{PairBatches, ToPair};
pub use labelled::{collate_labelled, Labelled};
pub use skip_log::{SkipLog, SKIPPED_FILE};

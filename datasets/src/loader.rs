//! A deterministic, multi-threaded batch loader over any [`Dataset`].
//!
//! Conventions:
//! - The epoch's sample order is `SeededRng::derive(seed, &[epoch, u64::MAX]).permutation(n)`
//!   (identity without shuffling).
//! - Distributed sharding: with `world_size` ranks each rank takes the strided slice
//!   `order[rank], order[rank + world_size], ...` of length `n / world_size` (the last
//!   `n % world_size` samples of the epoch's order are dropped, so every rank has the
//!   same number of steps and the shards are disjoint).
//! - Sample `index` of `epoch` is loaded with `SeededRng::derive(seed, &[epoch, index])`.
//! - A bad sample (error with [`Error::is_sample_error`]) under [`BadSamplePolicy::Skip`]
//!   is replaced by dataset index `(index + k) % n`, k = 1, 2, ..., loaded with
//!   `SeededRng::derive(seed, &[epoch, index, k])`, so batch sizes stay fixed; each
//!   failed file counts once in [`EpochIter::skipped`]. Under `Strict` the error is returned.
//! - Batches are built by worker threads (one batch per job, at most
//!   `max(prefetch, num_workers)` batches in flight) and yielded in step order, so
//!   the output is identical for any `num_workers` (0 = load in the calling thread).
//! - A panic inside `Dataset::get` or the collate function (a bug, or a file
//!   that a decoder cannot handle) is caught and yielded as an error naming the
//!   sample index and, via [`Dataset::sample_name`], its file; it is never
//!   skipped and never leaves the consumer waiting.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use vicreg_core::SeededRng;

use crate::image::BadSamplePolicy;
use crate::{Dataset, Error, Result};

/// Loader settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoaderConfig {
    /// Samples per batch (per rank).
    pub batch_size: usize,
    /// Worker threads; 0 loads in the calling thread.
    pub num_workers: usize,
    /// Batches prepared ahead of the consumer (at least `num_workers` are in flight).
    pub prefetch: usize,
    /// Seed of the shuffles and of every sample's augmentation stream.
    pub seed: u64,
    /// Shuffle the order each epoch.
    pub shuffle: bool,
    /// Drop the last incomplete batch of each epoch.
    pub drop_last: bool,
    /// This process's rank in `0..world_size`.
    pub rank: usize,
    /// Number of ranks sharing each epoch.
    pub world_size: usize,
    /// Skip bad samples (counted, replaced) or fail on the first one.
    pub policy: BadSamplePolicy,
    /// Replacement attempts for one bad sample before giving up with its error.
    pub max_replacements: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            num_workers: 2,
            prefetch: 4,
            seed: 0,
            shuffle: true,
            drop_last: true,
            rank: 0,
            world_size: 1,
            policy: BadSamplePolicy::Skip,
            max_replacements: 16,
        }
    }
}

impl LoaderConfig {
    /// The loader of evaluation: every sample once, in order, in batches of
    /// `batch_size` (the last one partial), a bad file an error naming it.
    pub fn evaluation(batch_size: usize, num_workers: usize) -> Self {
        Self {
            batch_size,
            num_workers,
            shuffle: false,
            drop_last: false,
            policy: BadSamplePolicy::Strict,
            ..Self::default()
        }
    }

    /// The loader of one rank's pretraining: `micro_batch` samples per batch,
    /// shuffled, last partial batch dropped, this rank's shard of every epoch,
    /// bad samples skipped unless `data.strict`.
    pub fn pretraining(
        micro_batch: usize,
        data: &vicreg_core::recipe::DataSettings,
        seed: u64,
        collective: &dyn vicreg_core::collective::Collective,
    ) -> Self {
        Self {
            batch_size: micro_batch,
            num_workers: data.num_workers,
            seed,
            shuffle: true,
            drop_last: true,
            rank: collective.rank(),
            world_size: collective.world_size(),
            policy: if data.strict {
                BadSamplePolicy::Strict
            } else {
                BadSamplePolicy::Skip
            },
            ..Self::default()
        }
    }
}

type Collate<I, B> = Arc<dyn Fn(Vec<I>) -> Result<B> + Send + Sync>;

/// One built batch, or the error that stopped it, with its skipped-sample messages.
type BatchResult<B> = Result<(B, Vec<String>)>;

/// The loader: a dataset, a collate function and a [`LoaderConfig`].
pub struct Loader<D: Dataset, B> {
    dataset: Arc<D>,
    cfg: LoaderConfig,
    collate: Collate<D::Item, B>,
}

impl<D: Dataset + 'static, B: Send + 'static> Loader<D, B> {
    /// Checks the configuration against the dataset size.
    pub fn new(
        dataset: Arc<D>,
        cfg: LoaderConfig,
        collate: impl Fn(Vec<D::Item>) -> Result<B> + Send + Sync + 'static,
    ) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(Error::Config("loader batch_size must be > 0".into()));
        }
        if cfg.world_size == 0 || cfg.rank >= cfg.world_size {
            return Err(Error::Config(format!(
                "loader rank {} must be < world_size {} (> 0)",
                cfg.rank, cfg.world_size
            )));
        }
        let n = dataset.len();
        let per_rank = n / cfg.world_size;
        let loader = Self {
            dataset,
            cfg,
            collate: Arc::new(collate),
        };
        if loader.steps_per_epoch() == 0 {
            return Err(Error::Config(format!(
                "dataset of {n} samples gives {per_rank} per rank (world_size {}), not one batch of {}{}",
                loader.cfg.world_size,
                loader.cfg.batch_size,
                if loader.cfg.drop_last { " with drop_last" } else { "" }
            )));
        }
        Ok(loader)
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// Samples this rank sees per epoch: `len / world_size`.
    pub fn samples_per_rank(&self) -> usize {
        self.dataset.len() / self.cfg.world_size
    }

    /// Batches per epoch on this rank.
    pub fn steps_per_epoch(&self) -> usize {
        let m = self.samples_per_rank();
        if self.cfg.drop_last {
            m / self.cfg.batch_size
        } else {
            m.div_ceil(self.cfg.batch_size)
        }
    }

    /// The whole epoch's order (all ranks): a permutation of `0..len`.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let n = self.dataset.len();
        if self.cfg.shuffle {
            SeededRng::derive(self.cfg.seed, &[epoch, u64::MAX]).permutation(n)
        } else {
            (0..n).collect()
        }
    }

    /// This rank's dataset indices for `epoch`, in the order they are batched.
    pub fn shard_indices(&self, epoch: u64) -> Vec<usize> {
        let order = self.epoch_order(epoch);
        let (r, w) = (self.cfg.rank, self.cfg.world_size);
        (0..self.samples_per_rank())
            .map(|k| order[r + k * w])
            .collect()
    }

    /// Iterates the batches of `epoch` from `start_step` (0-based; a resumed run
    /// passes the number of steps already done). Past the end it yields nothing.
    pub fn iter_epoch(&self, epoch: u64, start_step: usize) -> EpochIter<B> {
        let steps = self.steps_per_epoch();
        let ctx = Arc::new(BatchCtx {
            dataset: self.dataset.clone(),
            collate: self.collate.clone(),
            indices: self.shard_indices(epoch),
            epoch,
            cfg: self.cfg.clone(),
        });
        let build: BuildFn<B> = Arc::new(move |step| ctx.build(step));
        let start = start_step.min(steps);
        let mut it = EpochIter {
            build,
            next_step: start,
            end_step: steps,
            workers: None,
            skipped: 0,
            skipped_messages: Vec::new(),
            done: false,
        };
        if self.cfg.num_workers > 0 && start < steps {
            it.start_workers(
                self.cfg.num_workers,
                self.cfg.prefetch.max(self.cfg.num_workers),
            );
        }
        it
    }
}

type BuildFn<B> = Arc<dyn Fn(usize) -> BatchResult<B> + Send + Sync>;

struct BatchCtx<D: Dataset, B> {
    dataset: Arc<D>,
    collate: Collate<D::Item, B>,
    indices: Vec<usize>,
    epoch: u64,
    cfg: LoaderConfig,
}

impl<D: Dataset, B> BatchCtx<D, B> {
    fn build(&self, step: usize) -> BatchResult<B> {
        let bs = self.cfg.batch_size;
        let lo = step * bs;
        let hi = ((step + 1) * bs).min(self.indices.len());
        let n = self.dataset.len();
        let mut items = Vec::with_capacity(hi.saturating_sub(lo));
        let mut skipped = Vec::new();
        for &index in self.indices.get(lo..hi).unwrap_or(&[]) {
            let mut rng = SeededRng::derive(self.cfg.seed, &[self.epoch, index as u64]);
            let mut result = self.get_caught(index, &mut rng);
            let mut k = 0usize;
            loop {
                match result {
                    Ok(item) => {
                        items.push(item);
                        break;
                    }
                    Err(e) if e.is_sample_error() && self.cfg.policy == BadSamplePolicy::Skip => {
                        skipped.push(e.to_string());
                        k += 1;
                        if k > self.cfg.max_replacements || k >= n {
                            return Err(Error::Layout(format!(
                                "gave up after {} bad samples in a row from index {index}; last: {e}",
                                k
                            )));
                        }
                        let j = (index + k) % n;
                        let mut rng =
                            SeededRng::derive(self.cfg.seed, &[self.epoch, index as u64, k as u64]);
                        result = self.get_caught(j, &mut rng);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let collate = &self.collate;
        let batch =
            std::panic::catch_unwind(AssertUnwindSafe(|| collate(items))).map_err(|p| {
                Error::Layout(format!(
                    "collating batch {step} of epoch {} panicked: {}",
                    self.epoch,
                    panic_text(p.as_ref())
                ))
            })??;
        Ok((batch, skipped))
    }

    /// `dataset.get(index)`, with a panic inside it turned into an error that
    /// names the sample (and its file when the dataset can say). Not a sample
    /// error: a panic is a bug or a hostile input, never silently skipped.
    fn get_caught(&self, index: usize, rng: &mut SeededRng) -> Result<D::Item> {
        let dataset = &self.dataset;
        std::panic::catch_unwind(AssertUnwindSafe(|| dataset.get(index, rng))).unwrap_or_else(|p| {
            let name = dataset
                .sample_name(index)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            Err(Error::Layout(format!(
                "loading sample {index}{name} panicked: {}",
                panic_text(p.as_ref())
            )))
        })
    }
}

/// The message of a caught panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

struct Workers<B> {
    jobs: Option<Sender<usize>>,
    results: Receiver<(usize, BatchResult<B>)>,
    pending: BTreeMap<usize, BatchResult<B>>,
    next_job: usize,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// The batches of one epoch, in order. Yields `Err` once (and then stops) on a
/// failure that the policy does not skip.
pub struct EpochIter<B> {
    build: BuildFn<B>,
    next_step: usize,
    end_step: usize,
    workers: Option<Workers<B>>,
    skipped: usize,
    skipped_messages: Vec<String>,
    done: bool,
}

/// Skip messages kept per epoch (the count is exact beyond it).
const MAX_SKIP_MESSAGES: usize = 100;

impl<B: Send + 'static> EpochIter<B> {
    fn start_workers(&mut self, n: usize, in_flight: usize) {
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<usize>();
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..n)
            .map(|_| {
                let job_rx = job_rx.clone();
                let res_tx = res_tx.clone();
                let build = self.build.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while let Ok(step) = job_rx.recv() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // `build` already converts panics of the dataset and the
                        // collate function; this catches any other so that the
                        // consumer always receives a result for `step`.
                        let r = std::panic::catch_unwind(AssertUnwindSafe(|| build(step)))
                            .unwrap_or_else(|p| {
                                Err(Error::Layout(format!(
                                    "loader worker panicked building batch {step}: {}",
                                    panic_text(p.as_ref())
                                )))
                            });
                        if res_tx.send((step, r)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        let mut w = Workers {
            jobs: Some(job_tx),
            results: res_rx,
            pending: BTreeMap::new(),
            next_job: self.next_step,
            handles,
            stop,
        };
        for _ in 0..in_flight {
            w.submit(self.end_step);
        }
        self.workers = Some(w);
    }

    /// Bad samples skipped (and replaced) so far in this epoch.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The errors of the skipped samples (the first 100), each naming its file.
    pub fn skipped_messages(&self) -> &[String] {
        &self.skipped_messages
    }

    /// Steps left to yield.
    pub fn remaining(&self) -> usize {
        if self.done {
            0
        } else {
            self.end_step - self.next_step
        }
    }
}

impl<B> Workers<B> {
    fn submit(&mut self, end: usize) {
        if self.next_job < end {
            if let Some(tx) = &self.jobs {
                // Workers only stop when `jobs` is dropped, so this cannot fail.
                let _ = tx.send(self.next_job);
            }
            self.next_job += 1;
        }
    }

    fn take(&mut self, step: usize, end: usize) -> Result<BatchResult<B>> {
        loop {
            if let Some(r) = self.pending.remove(&step) {
                self.submit(end);
                return Ok(r);
            }
            let (s, r) = self
                .results
                .recv()
                .map_err(|_| Error::Layout("loader worker thread stopped unexpectedly".into()))?;
            self.pending.insert(s, r);
        }
    }
}

impl<B: Send + 'static> Iterator for EpochIter<B> {
    type Item = Result<B>;

    fn next(&mut self) -> Option<Result<B>> {
        if self.done || self.next_step >= self.end_step {
            return None;
        }
        let step = self.next_step;
        self.next_step += 1;
        let end = self.end_step;
        let r = match &mut self.workers {
            Some(w) => match w.take(step, end) {
                Ok(r) => r,
                Err(e) => Err(e),
            },
            None => (self.build)(step),
        };
        match r {
            Ok((batch, skipped)) => {
                self.skipped += skipped.len();
                for m in skipped {
                    if self.skipped_messages.len() < MAX_SKIP_MESSAGES {
                        self.skipped_messages.push(m);
                    }
                }
                Some(Ok(batch))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.remaining();
        (0, Some(r))
    }
}

impl<B> Drop for EpochIter<B> {
    fn drop(&mut self) {
        if let Some(mut w) = self.workers.take() {
            w.stop.store(true, Ordering::Relaxed);
            w.jobs = None;
            // Discard queued jobs' results so that workers finish quickly.
            while w.results.try_recv().is_ok() {}
            for h in w.handles.drain(..) {
                let _ = h.join();
            }
        }
    }
}

/// The `(B,)` u32 targets of a collated batch as labels.
pub fn labels_of(y: &candle_core::Tensor) -> vicreg_core::Result<Vec<usize>> {
    Ok(y.to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

/// A collated `(inputs, targets)` batch as `(inputs, labels)`, its error
/// converted for the core's batch iterators (the engine's, the evaluation's).
pub fn to_labelled(
    r: Result<(candle_core::Tensor, candle_core::Tensor)>,
) -> vicreg_core::Result<(candle_core::Tensor, Vec<usize>)> {
    let (x, y) = r?;
    Ok((x, labels_of(&y)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn to_labelled_turns_targets_into_labels() {
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = Tensor::new(&[3u32, 0], &Device::Cpu).unwrap();
        let (_, labels) = to_labelled(Ok((x, y))).unwrap();
        assert_eq!(labels, vec![3, 0]);
        assert!(to_labelled(Err(crate::Error::Layout("bad".into()))).is_err());
    }
}

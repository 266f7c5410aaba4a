//! Where the engine's batches come from.

use crate::Result;

/// One batch of pairs: the inputs of both branches and, optionally, class
/// labels (used by the online probe only; pretraining ignores them).
#[derive(Clone, Debug)]
pub struct PairBatch<A, B> {
    /// Branch A's input (first view / first modality).
    pub a: A,
    /// Branch B's input.
    pub b: B,
    /// Number of pairs in the batch on this rank.
    pub pairs: usize,
    /// One class label per pair, if known.
    pub labels: Option<Vec<usize>>,
}

impl<A, B> PairBatch<A, B> {
    /// A batch of `pairs` pairs without labels.
    pub fn new(a: A, b: B, pairs: usize) -> Self {
        Self {
            a,
            b,
            pairs,
            labels: None,
        }
    }

    /// The same batch with class labels.
    pub fn with_labels(mut self, labels: Vec<usize>) -> Self {
        self.labels = Some(labels);
        self
    }
}

/// One item of an epoch: `(epoch, index of the batch in the epoch, batch)`.
pub type Positioned<A, B> = (usize, usize, PairBatch<A, B>);

/// The batches of one epoch, as returned by [`BatchSource::epoch`].
pub type EpochIter<'s, A, B> = Box<dyn Iterator<Item = Result<Positioned<A, B>>> + 's>;

/// A deterministic source of paired batches for this rank. For a resume to
/// give bit-identical results, the batch at `(epoch, index)` must be the same
/// whenever it is asked for (data order and augmentation derived from a seed,
/// the epoch and the sample index, never from a running stream).
pub trait BatchSource<A, B> {
    /// Batches per epoch on this rank.
    fn batches_per_epoch(&self) -> usize;

    /// The batches of `epoch` from index `start` on (`start` > 0 when resuming mid-epoch).
    fn epoch(&mut self, epoch: usize, start: usize) -> Result<EpochIter<'_, A, B>>;
}

/// A [`BatchSource`] from a function of `(epoch, index)`; handy for synthetic
/// data, tests and in-memory datasets.
pub struct FnSource<F> {
    batches_per_epoch: usize,
    make: F,
}

impl<F> FnSource<F> {
    /// `make(epoch, index)` builds batch `index` of `epoch`.
    pub fn new(batches_per_epoch: usize, make: F) -> Self {
        Self {
            batches_per_epoch,
            make,
        }
    }
}

impl<A, B, F> BatchSource<A, B> for FnSource<F>
where
    F: FnMut(usize, usize) -> Result<PairBatch<A, B>>,
{
    fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    fn epoch(&mut self, epoch: usize, start: usize) -> Result<EpochIter<'_, A, B>> {
        let n = self.batches_per_epoch;
        let make = &mut self.make;
        Ok(Box::new(
            (start..n).map(move |i| make(epoch, i).map(|b| (epoch, i, b))),
        ))
    }
}

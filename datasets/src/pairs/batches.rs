//! The loader as the engine's source of two-branch batches.

use vicreg_core::engine::{BatchSource, EpochIter, PairBatch};

use super::skip_log::SkipLog;
use crate::loader::Loader;
use crate::{Dataset, Result};

/// Turns one collated loader batch into the engine's two-branch batch.
pub type ToPair<B, X, Y> = Box<dyn Fn(B) -> Result<PairBatch<X, Y>> + Send>;

/// A [`Loader`] seen as the engine's [`BatchSource`]: each collated batch is
/// turned into a [`PairBatch`] (branch A's input, branch B's input, labels)
/// by `to_pair`, and the samples the loader skipped in an epoch are reported
/// to a [`SkipLog`] as soon as the epoch's last batch is out.
///
/// Every app's pretraining source is one of these: images (two views),
/// waveforms (two views), image-caption pairs; a new modality needs only its
/// dataset, its collate function and its `to_pair`.
pub struct PairBatches<D: Dataset, B, X, Y> {
    loader: Loader<D, B>,
    skips: SkipLog,
    to_pair: ToPair<B, X, Y>,
}

impl<D: Dataset + 'static, B: Send + 'static, X, Y> PairBatches<D, B, X, Y> {
    /// Batches of `loader`, converted by `to_pair`, skips reported to `skips`.
    pub fn new(
        loader: Loader<D, B>,
        skips: SkipLog,
        to_pair: impl Fn(B) -> Result<PairBatch<X, Y>> + Send + 'static,
    ) -> Self {
        Self {
            loader,
            skips,
            to_pair: Box::new(to_pair),
        }
    }

    /// The loader.
    pub fn loader(&self) -> &Loader<D, B> {
        &self.loader
    }

    /// The skip log (its [`SkipLog::total`] is the number of samples skipped
    /// by this process).
    pub fn skips(&self) -> &SkipLog {
        &self.skips
    }
}

impl<D, X, Y> PairBatches<D, (X, Y, Vec<usize>), X, Y>
where
    D: Dataset + 'static,
    X: Send + 'static,
    Y: Send + 'static,
{
    /// The common case: the loader collates `(branch A input, branch B input,
    /// labels)`, handed to the engine as a labelled batch.
    pub fn labelled(loader: Loader<D, (X, Y, Vec<usize>)>, skips: SkipLog) -> Self {
        Self::new(loader, skips, |(a, b, labels): (X, Y, Vec<usize>)| {
            Ok(PairBatch::new(a, b, labels.len()).with_labels(labels))
        })
    }
}

impl<D: Dataset + 'static, B: Send + 'static, X, Y> BatchSource<X, Y> for PairBatches<D, B, X, Y> {
    fn batches_per_epoch(&self) -> usize {
        self.loader.steps_per_epoch()
    }

    fn epoch(&mut self, epoch: usize, start: usize) -> vicreg_core::Result<EpochIter<'_, X, Y>> {
        let mut iter = self.loader.iter_epoch(epoch as u64, start);
        let skips = &mut self.skips;
        let to_pair = &self.to_pair;
        let mut step = start;
        let mut reported = false;
        // Reported once, as soon as the epoch's last batch is out (the engine
        // stops pulling there) or the loader ends.
        Ok(Box::new(std::iter::from_fn(move || {
            let item = match iter.next() {
                Some(Ok(batch)) => {
                    let pos = step;
                    step += 1;
                    Some(to_pair(batch).map(|b| (epoch, pos, b)).map_err(Into::into))
                }
                Some(Err(e)) => return Some(Err(e.into())),
                None => None,
            };
            if !reported && (item.is_none() || iter.remaining() == 0) {
                reported = true;
                if let Err(e) = skips.record(epoch, iter.skipped(), iter.skipped_messages()) {
                    return Some(Err(e.into()));
                }
            }
            item
        })))
    }
}

//! Adapts the datasets crate's [`Loader`] to the engine's [`BatchSource`].

use candle_core::{Device, Tensor};
use datasets::augment::ChwImage;
use datasets::image::{collate_two_view, ImageSource, TwoViewDataset};
use datasets::loader::Loader;
use datasets::Dataset;
use vicreg_core::engine::{BatchSource, PairBatch, Positioned};
use vicreg_core::SeededRng;

/// Two augmented views of an image and its class label (used only by the
/// optional online probe; pretraining itself never sees labels).
pub struct LabelledPairs<S: ImageSource> {
    /// The two-view dataset.
    pub inner: TwoViewDataset<S>,
}

impl<S: ImageSource> Dataset for LabelledPairs<S> {
    type Item = ((ChwImage, ChwImage), usize);
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> datasets::Result<Self::Item> {
        Ok((
            self.inner.get(index, rng)?,
            self.inner.source().label(index),
        ))
    }
}

/// A collated batch: view 1, view 2 (each `(B, C, S, S)`) and labels.
pub type ViewBatch = (Tensor, Tensor, Vec<usize>);

/// Collates [`LabelledPairs`] items on `device`.
pub fn collate(
    items: Vec<((ChwImage, ChwImage), usize)>,
    device: &Device,
) -> datasets::Result<ViewBatch> {
    let labels = items.iter().map(|x| x.1).collect();
    let (a, b) = collate_two_view(items.into_iter().map(|x| x.0).collect(), device)?;
    Ok((a, b, labels))
}

/// Two-view image batches for the engine.
pub struct ImagePairs<S: ImageSource + 'static> {
    /// The loader over the two-view dataset.
    pub loader: Loader<LabelledPairs<S>, ViewBatch>,
}

impl<S: ImageSource + 'static> BatchSource<Tensor, Tensor> for ImagePairs<S> {
    fn batches_per_epoch(&self) -> usize {
        self.loader.steps_per_epoch()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> vicreg_core::Result<
        Box<dyn Iterator<Item = vicreg_core::Result<Positioned<Tensor, Tensor>>> + '_>,
    > {
        let mut iter = self.loader.iter_epoch(epoch as u64, start);
        let mut step = start;
        let mut reported = false;
        Ok(Box::new(std::iter::from_fn(move || match iter.next() {
            Some(Ok((a, b, labels))) => {
                let pos = step;
                step += 1;
                Some(Ok((
                    epoch,
                    pos,
                    PairBatch::new(a, b, labels.len()).with_labels(labels),
                )))
            }
            Some(Err(e)) => Some(Err(vicreg_core::Error::invalid(e.to_string()))),
            None => {
                if !reported && iter.skipped() > 0 {
                    reported = true;
                    eprintln!(
                        "epoch {epoch}: skipped {} unreadable images (first: {})",
                        iter.skipped(),
                        iter.skipped_messages()
                            .first()
                            .map(String::as_str)
                            .unwrap_or("")
                    );
                }
                None
            }
        })))
    }
}

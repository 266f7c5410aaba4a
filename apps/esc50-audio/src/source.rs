//! Adapts the datasets crate's [`Loader`] over ESC-50 two-view waveforms to
//! the engine's [`BatchSource`].

use candle_core::{Device, Tensor};
use datasets::audio::{collate_waveform_pairs, Esc50Pretrain};
use datasets::loader::Loader;
use datasets::Dataset;
use vicreg_core::engine::{BatchSource, PairBatch, Positioned};
use vicreg_core::SeededRng;

/// One item of [`LabelledWavePairs`]: `((view_a, view_b), class)`.
pub type WavePairItem = ((Vec<f32>, Vec<f32>), usize);

/// Two augmented views of a clip and its class (used only by the optional
/// online probe; pretraining never sees labels).
pub struct LabelledWavePairs {
    /// The two-view dataset.
    pub inner: Esc50Pretrain,
}

impl Dataset for LabelledWavePairs {
    type Item = WavePairItem;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> datasets::Result<Self::Item> {
        Ok((
            self.inner.get(index, rng)?,
            self.inner.target(index) as usize,
        ))
    }
}

/// A collated batch: view 1 and view 2 (each `(B, clip_len)` waveforms) and labels.
pub type WaveBatch = (Tensor, Tensor, Vec<usize>);

/// Collates [`LabelledWavePairs`] items on `device`.
pub fn collate(items: Vec<WavePairItem>, device: &Device) -> datasets::Result<WaveBatch> {
    let labels = items.iter().map(|x| x.1).collect();
    let (a, b) = collate_waveform_pairs(items.into_iter().map(|x| x.0).collect(), device)?;
    Ok((a, b, labels))
}

/// Two-view waveform batches for the engine (view 1 -> branch A, view 2 -> branch B).
pub struct WavePairs {
    /// The loader over the two-view dataset.
    pub loader: Loader<LabelledWavePairs, WaveBatch>,
}

impl BatchSource<Tensor, Tensor> for WavePairs {
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
                        "epoch {epoch}: skipped {} unreadable clips (first: {})",
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

//! Adapts the datasets crate's [`Loader`] over COCO image-caption pairs to the
//! engine's [`BatchSource`]: branch A gets a `(B, 3, S, S)` image view,
//! branch B a [`TextBatch`] of one caption per image (drawn per epoch).

use candle_core::Tensor;
use datasets::coco::CocoPretrain;
use datasets::loader::Loader;
use encoders::text::TextBatch;
use vicreg_core::engine::{BatchSource, EpochIter, PairBatch};

use crate::text::text_batch;

/// A collated batch: images `(B, 3, S, S)` f32, token ids and mask `(B, L)` u32.
pub type CaptionBatch = (Tensor, Tensor, Tensor);

/// Image-caption pair batches for the engine.
pub struct CaptionPairs {
    /// The loader over the pretraining pairs.
    pub loader: Loader<CocoPretrain<datasets::text::TextTokenizer>, CaptionBatch>,
}

impl BatchSource<Tensor, TextBatch> for CaptionPairs {
    fn batches_per_epoch(&self) -> usize {
        self.loader.steps_per_epoch()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> vicreg_core::Result<EpochIter<'_, Tensor, TextBatch>> {
        let mut iter = self.loader.iter_epoch(epoch as u64, start);
        let mut step = start;
        let mut reported = false;
        Ok(Box::new(std::iter::from_fn(move || match iter.next() {
            Some(Ok((images, ids, mask))) => {
                let pos = step;
                step += 1;
                let n = images.dims().first().copied().unwrap_or(0);
                Some(
                    text_batch(&ids, &mask)
                        .map_err(|e| vicreg_core::Error::invalid(format!("{e:#}")))
                        .map(|t| (epoch, pos, PairBatch::new(images, t, n))),
                )
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

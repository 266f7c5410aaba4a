//! The indexable-dataset trait that the loader runs over.

use vicreg_core::SeededRng;

use crate::Result;

/// A finite, indexable collection of samples. `get` must be a pure function of
/// `(index, rng)`: the loader hands each sample an RNG derived from
/// `(seed, epoch, index)`, so augmentations are identical whatever the number
/// of worker threads and after a resume.
pub trait Dataset: Send + Sync {
    /// One loaded (and, for pretraining, augmented) sample.
    type Item: Send + 'static;

    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads sample `index` (`0..len()`), drawing any randomness from `rng`.
    /// A corrupt or unreadable file returns an error naming the file.
    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item>;

    /// A human-readable name of sample `index` (usually its file path), used
    /// in error messages; `None` when the dataset has none.
    fn sample_name(&self, index: usize) -> Option<String> {
        let _ = index;
        None
    }
}

//! A dataset with a class label attached to each of its samples.

use vicreg_core::SeededRng;

use crate::{Dataset, Result};

/// `inner`'s samples, each with its class label: `(item, label)`. Labels are
/// used only by the optional online probe and by diagnostics; pretraining
/// itself never sees them.
pub struct Labelled<D> {
    inner: D,
    label: fn(&D, usize) -> usize,
}

impl<D: Dataset> Labelled<D> {
    /// `inner` with the label of sample `i` given by `label(&inner, i)`.
    pub fn new(inner: D, label: fn(&D, usize) -> usize) -> Self {
        Self { inner, label }
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dataset> Dataset for Labelled<D> {
    type Item = (D::Item, usize);

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        Ok((
            self.inner.get(index, rng)?,
            (self.label)(&self.inner, index),
        ))
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        self.inner.sample_name(index)
    }
}

/// Collates labelled two-view items with `collate` (which stacks the views):
/// `(view_a, view_b, labels)`.
pub fn collate_labelled<T, A, B>(
    items: Vec<(T, usize)>,
    collate: impl FnOnce(Vec<T>) -> Result<(A, B)>,
) -> Result<(A, B, Vec<usize>)> {
    let labels = items.iter().map(|x| x.1).collect();
    let (a, b) = collate(items.into_iter().map(|x| x.0).collect())?;
    Ok((a, b, labels))
}

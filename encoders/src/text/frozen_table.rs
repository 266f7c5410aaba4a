//! The representations of a frozen text encoder, computed once for every
//! distinct token sequence of a dataset and then looked up.
//!
//! A frozen encoder runs in eval mode (no dropout) and nothing updates its
//! weights, so its representation of a caption never changes during
//! training: computing it again every step (a MiniLM forward costs more than
//! the image branch's whole step at small image sizes) is wasted work. The
//! table is built in a fixed order and fixed batches, independent of the
//! training order, so a resumed run builds the same table and stays
//! bit-identical to an uninterrupted one.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::TextBatch;
use crate::{Error, Result};

/// Sentences per forward pass while the table is built.
pub const TABLE_BATCH: usize = 128;

/// `(n, dim)` representations of `n` distinct token sequences, keyed by
/// their real (unpadded) token ids.
pub struct FrozenTextTable {
    index: HashMap<Vec<u32>, u32>,
    rows: Tensor,
}

impl FrozenTextTable {
    /// Encodes every distinct sequence of `sequences` (real token ids, no
    /// padding) with `encode` (a `TextBatch` -> `(batch, dim)` representation
    /// in eval mode), [`TABLE_BATCH`] sentences at a time in first-seen
    /// order. Returns `None`, building nothing, when the table would hold more
    /// than `max_bytes` (the caller then encodes every step as usual).
    pub fn build<I, F>(
        sequences: I,
        dim: usize,
        max_bytes: usize,
        device: &Device,
        encode: F,
    ) -> Result<Option<Self>>
    where
        I: IntoIterator<Item = Vec<u32>>,
        F: Fn(&TextBatch) -> vicreg_core::Result<Tensor>,
    {
        let mut index = HashMap::new();
        let mut order = Vec::new();
        for s in sequences {
            if s.is_empty() {
                return Err(Error::InvalidInput(
                    "frozen text table: an empty token sequence".into(),
                ));
            }
            if !index.contains_key(&s) {
                if (order.len() + 1).saturating_mul(dim).saturating_mul(4) > max_bytes {
                    return Ok(None);
                }
                index.insert(s.clone(), order.len() as u32);
                order.push(s);
            }
        }
        if order.is_empty() {
            return Err(Error::InvalidInput(
                "frozen text table: no sentences to encode".into(),
            ));
        }
        let mut parts = Vec::with_capacity(order.len().div_ceil(TABLE_BATCH));
        for chunk in order.chunks(TABLE_BATCH) {
            let batch = TextBatch::from_rows(chunk, 0, device)?;
            let r = encode(&batch)?.detach().to_dtype(DType::F32)?;
            if r.dims() != [chunk.len(), dim] {
                return Err(Error::InvalidInput(format!(
                    "frozen text table: the encoder returned shape {:?}, expected [{}, {dim}]",
                    r.dims(),
                    chunk.len()
                )));
            }
            parts.push(r);
        }
        Ok(Some(Self {
            index,
            rows: Tensor::cat(&parts, 0)?,
        }))
    }

    /// Number of distinct sequences held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table is empty (never true for a built table).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The `(batch, dim)` representations of `batch`'s sentences, or `None`
    /// when one of them is not in the table (the caller encodes the batch).
    pub fn lookup(&self, batch: &TextBatch) -> Result<Option<Tensor>> {
        let ids = batch.ids.to_vec2::<u32>()?;
        let mask = batch.mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut rows = Vec::with_capacity(ids.len());
        for (row, m) in ids.iter().zip(&mask) {
            let key: Vec<u32> = row
                .iter()
                .zip(m)
                .filter(|(_, &m)| m != 0.0)
                .map(|(&t, _)| t)
                .collect();
            match self.index.get(&key) {
                Some(&i) => rows.push(i),
                None => return Ok(None),
            }
        }
        let n = rows.len();
        let idx = Tensor::from_vec(rows, n, self.rows.device())?;
        Ok(Some(
            self.rows
                .index_select(&idx, 0)?
                .to_device(batch.ids.device())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy "encoder": the mean of the real token ids and the length.
    fn toy(b: &TextBatch) -> vicreg_core::Result<Tensor> {
        let m = b.mask.to_dtype(DType::F32)?;
        let ids = b.ids.to_dtype(DType::F32)?;
        let len = m.sum_keepdim(1)?;
        let mean = (ids * &m)?.sum_keepdim(1)?.broadcast_div(&len)?;
        Ok(Tensor::cat(&[mean, len], 1)?)
    }

    #[test]
    fn looks_up_what_the_encoder_gives_whatever_the_padding() {
        let seqs = vec![vec![5, 7], vec![1, 2, 3], vec![5, 7], vec![9]];
        let t = FrozenTextTable::build(seqs, 2, 1 << 20, &Device::Cpu, toy)
            .unwrap()
            .unwrap();
        assert_eq!(t.len(), 3);
        // A batch in another order, padded to another length, with another pad id.
        let rows = vec![vec![9], vec![1, 2, 3], vec![5, 7]];
        let b = TextBatch::from_rows(&rows, 42, &Device::Cpu).unwrap();
        let got = t.lookup(&b).unwrap().unwrap();
        let want = toy(&b).unwrap();
        assert_eq!(
            got.to_vec2::<f32>().unwrap(),
            want.to_vec2::<f32>().unwrap()
        );
        let unknown = TextBatch::from_rows(&[vec![9], vec![4]], 0, &Device::Cpu).unwrap();
        assert!(t.lookup(&unknown).unwrap().is_none());
    }

    #[test]
    fn refuses_to_grow_past_its_budget_and_rejects_empty_input() {
        let seqs = (0..10u32).map(|i| vec![i + 1]);
        assert!(
            FrozenTextTable::build(seqs, 2, 9 * 2 * 4, &Device::Cpu, toy)
                .unwrap()
                .is_none()
        );
        let e = FrozenTextTable::build(vec![vec![]], 2, 1 << 20, &Device::Cpu, toy);
        assert!(e.is_err());
        let e = FrozenTextTable::build(Vec::<Vec<u32>>::new(), 2, 1 << 20, &Device::Cpu, toy);
        assert!(e.is_err());
    }
}

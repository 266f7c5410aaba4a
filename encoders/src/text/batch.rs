//! The input of every text encoder: token ids with an attention mask.

use candle_core::{DType, Device, Tensor};

/// One batch of tokenised text.
///
/// Conventions: row `b` holds sentence `b`; positions `0..len_b` are real
/// tokens and the rest is padding (right padding, as produced by
/// [`TextTokenizer`](super::TextTokenizer)); encoders only rely on the mask,
/// so any padding position works for the transformer, while the GRU simply
/// keeps its state over masked steps.
#[derive(Clone, Debug)]
pub struct TextBatch {
    /// `(batch, seq)` U32 token ids.
    pub ids: Tensor,
    /// `(batch, seq)` attention mask, any dtype: 1 = real token, 0 = padding.
    pub mask: Tensor,
    /// Optional `(batch, seq)` U32 token-type (segment) ids; `None` means all 0.
    pub type_ids: Option<Tensor>,
}

impl TextBatch {
    /// A batch from ids and mask (no token types). Checks that both are 2-D
    /// with the same shape and that `ids` is U32.
    pub fn new(ids: Tensor, mask: Tensor) -> vicreg_core::Result<Self> {
        let b = Self {
            ids,
            mask,
            type_ids: None,
        };
        b.validate()?;
        Ok(b)
    }

    /// A batch from rows of token ids of possibly different lengths: right
    /// padded with `pad_id` to the longest row, mask 1 on real tokens (U32).
    pub fn from_rows(rows: &[Vec<u32>], pad_id: u32, device: &Device) -> vicreg_core::Result<Self> {
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        if rows.is_empty() || seq == 0 {
            return Err(vicreg_core::Error::invalid(
                "TextBatch::from_rows: need at least one non-empty row",
            ));
        }
        let mut ids = Vec::with_capacity(rows.len() * seq);
        let mut mask = Vec::with_capacity(rows.len() * seq);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad_id, seq - r.len()));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, seq - r.len()));
        }
        let shape = (rows.len(), seq);
        Self::new(
            Tensor::from_vec(ids, shape, device)?,
            Tensor::from_vec(mask, shape, device)?,
        )
    }

    /// Number of sentences.
    pub fn batch_size(&self) -> usize {
        self.ids.dims().first().copied().unwrap_or(0)
    }

    /// Padded sequence length.
    pub fn seq_len(&self) -> usize {
        self.ids.dims().get(1).copied().unwrap_or(0)
    }

    /// Checks shapes and dtypes; returns a clear error naming the problem.
    pub fn validate(&self) -> vicreg_core::Result<()> {
        let dims = self.ids.dims();
        if dims.len() != 2 || dims[0] == 0 || dims[1] == 0 {
            return Err(vicreg_core::Error::invalid(format!(
                "TextBatch: ids must be a non-empty (batch, seq) tensor, got shape {dims:?}"
            )));
        }
        if self.ids.dtype() != DType::U32 {
            return Err(vicreg_core::Error::invalid(format!(
                "TextBatch: ids must be U32, got {:?}",
                self.ids.dtype()
            )));
        }
        if self.mask.dims() != dims {
            return Err(vicreg_core::Error::invalid(format!(
                "TextBatch: mask shape {:?} differs from ids shape {dims:?}",
                self.mask.dims()
            )));
        }
        if let Some(t) = &self.type_ids {
            if t.dims() != dims || t.dtype() != DType::U32 {
                return Err(vicreg_core::Error::invalid(format!(
                    "TextBatch: type_ids must be U32 with the ids' shape {dims:?}, got {:?} {:?}",
                    t.dtype(),
                    t.dims()
                )));
            }
        }
        Ok(())
    }

    /// The mask as a `(batch, seq)` tensor of `dtype`: 1 where the mask is
    /// non-zero, 0 elsewhere. Never tracked by autograd.
    pub fn mask_as(&self, dtype: DType) -> vicreg_core::Result<Tensor> {
        Ok(self.mask.detach().ne(0f64)?.to_dtype(dtype)?)
    }
}

//! From token states to sentence vectors.

use candle_core::{Tensor, D};

/// Mean of `hidden` `(batch, seq, dim)` over the positions where `mask`
/// `(batch, seq)` (same float dtype, 1 = token) is 1: `(batch, dim)`.
/// A row with no token gets 0 (the count is clamped at 1e-9, as in
/// sentence-transformers).
pub fn masked_mean(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.unsqueeze(2)?; // (b, s, 1)
    let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (b, d)
    let count = mask.sum_keepdim(1)?.clamp(1e-9, f64::INFINITY)?; // (b, 1)
    summed.broadcast_div(&count)
}

/// The state of the first position: `(batch, seq, dim)` -> `(batch, dim)`.
pub fn first_token(hidden: &Tensor) -> candle_core::Result<Tensor> {
    hidden.narrow(1, 0, 1)?.squeeze(1)
}

/// Rows divided by their L2 norm (norm clamped at 1e-12, like
/// `torch.nn.functional.normalize`): `(batch, dim)` -> `(batch, dim)`.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}

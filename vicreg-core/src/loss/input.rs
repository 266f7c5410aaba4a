//! Input checks shared by the joint-embedding losses.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// Checks that `za`, `zb` are `(batch, dim)` embeddings of the same shape with
/// `dim >= 1` and contain no NaN or infinite value. `loss` names the loss in
/// the error message.
pub(crate) fn check_embedding_pair(loss: &str, za: &Tensor, zb: &Tensor) -> Result<()> {
    if za.rank() != 2 || zb.rank() != 2 {
        return Err(Error::invalid(format!(
            "{loss}: expected (batch, dim) embeddings, got shapes {:?} and {:?}",
            za.dims(),
            zb.dims()
        )));
    }
    if za.dims() != zb.dims() {
        return Err(Error::invalid(format!(
            "{loss}: the two branches' embeddings differ in shape: {:?} vs {:?}",
            za.dims(),
            zb.dims()
        )));
    }
    if za.dim(1)? == 0 {
        return Err(Error::invalid(format!("{loss}: embedding dimension is 0")));
    }
    if za.dim(0)? == 0 {
        return Err(Error::invalid(format!("{loss}: empty batch")));
    }
    for (z, which) in [(za, "branch A"), (zb, "branch B")] {
        let s = z
            .abs()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        if !s.is_finite() {
            return Err(Error::NonFinite(format!(
                "{loss}: {which} embeddings contain NaN or infinite values"
            )));
        }
    }
    Ok(())
}

/// Checks that a gathered batch has at least `min` samples (`what` names the statistic).
pub(crate) fn check_batch_at_least(loss: &str, batch: usize, min: usize, what: &str) -> Result<()> {
    if batch < min {
        return Err(Error::invalid(format!(
            "{loss}: batch of {batch}; {what} needs at least {min} samples"
        )));
    }
    Ok(())
}

/// Checks that a coefficient is finite and `>= 0`.
pub(crate) fn check_coeff(loss: &str, name: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::config(format!(
            "{loss}: {name} must be finite and >= 0, got {v}"
        )));
    }
    Ok(())
}

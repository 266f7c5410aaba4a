//! NaN/Inf guard: finds the loss term or parameter gradient that went bad.

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// Where in the run something happened, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepPos {
    /// Optimizer step being computed (1-based).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Micro-batch index in the epoch.
    pub batch: usize,
}

impl std::fmt::Display for StepPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {} (epoch {}, batch {})",
            self.step, self.epoch, self.batch
        )
    }
}

/// An error if any loss term is NaN or infinite, naming the first such term.
pub fn check_loss_terms(scalars: &[(String, f64)], at: StepPos) -> Result<()> {
    match scalars.iter().find(|(_, v)| !v.is_finite()) {
        Some((name, v)) => Err(Error::NonFinite(format!("{at}: loss term {name} is {v}"))),
        None => Ok(()),
    }
}

/// Squared L2 norm of each gradient (in the order given), computed in one
/// transfer; an error naming the first parameter whose gradient is NaN or infinite.
pub fn grad_sq_norms(grads: &[(&str, &Tensor)], at: StepPos) -> Result<Vec<f64>> {
    if grads.is_empty() {
        return Ok(Vec::new());
    }
    let sums: Vec<Tensor> = grads
        .iter()
        .map(|(_, g)| g.to_dtype(DType::F32)?.sqr()?.sum_all())
        .collect::<candle_core::Result<_>>()?;
    let v = Tensor::stack(&sums, 0)?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite(format!(
            "{at}: the gradient of parameter {} contains NaN or infinite values (or its norm overflows f32)",
            grads[i].0
        )));
    }
    Ok(v)
}

/// Adds the position to a non-finite error raised inside the model or the loss
/// (e.g. "branch A embeddings contain NaN"); other errors pass unchanged.
pub fn locate(e: Error, at: StepPos) -> Error {
    match e {
        Error::NonFinite(msg) if !msg.starts_with("step ") => {
            Error::NonFinite(format!("{at}: {msg}"))
        }
        other => other,
    }
}

//! Finite-difference gradient checks.
//!
//! candle silently drops gradients through some ops and computes wrong ones for
//! others; every op and layer the project trains through is checked with
//! [`check_gradients`] in the test suite.

use candle_core::{DType, Tensor, Var};

use crate::rng::SeededRng;
use crate::{Error, Result};

/// Options of a gradient check.
#[derive(Clone, Debug)]
pub struct GradCheckOptions {
    /// Central-difference step.
    pub step: f64,
    /// At most this many coordinates of each input are perturbed (chosen at random, seeded).
    pub max_coords_per_input: usize,
    /// Seed for the coordinate choice.
    pub seed: u64,
}

impl Default for GradCheckOptions {
    fn default() -> Self {
        Self {
            step: 1e-5,
            max_coords_per_input: 64,
            seed: 0,
        }
    }
}

/// Result of a gradient check.
#[derive(Clone, Debug)]
pub struct GradCheckReport {
    /// Per input: max relative error `|a - n| / max(1e-3, |a|, |n|)` over checked coordinates.
    pub max_rel_error: Vec<f64>,
    /// Per input: whether autograd produced a gradient at all.
    pub has_grad: Vec<bool>,
    /// Per input: largest numerical gradient magnitude seen (to spot an all-zero check).
    pub max_abs_numeric: Vec<f64>,
}

impl GradCheckReport {
    /// The worst relative error over all inputs (infinite if a gradient is missing where a numeric one is not 0).
    pub fn worst(&self) -> f64 {
        self.max_rel_error.iter().cloned().fold(0.0, f64::max)
    }

    /// Fails with a message naming the first bad input when `worst() > tol`.
    pub fn assert_ok(&self, tol: f64) -> Result<()> {
        for (i, e) in self.max_rel_error.iter().enumerate() {
            if !self.has_grad[i] && self.max_abs_numeric[i] > 0.0 {
                return Err(Error::invalid(format!(
                    "input {i}: autograd recorded no gradient, numerical gradient up to {:.3e}",
                    self.max_abs_numeric[i]
                )));
            }
            if *e > tol {
                return Err(Error::invalid(format!(
                    "input {i}: relative gradient error {e:.3e} > {tol:.1e}"
                )));
            }
        }
        Ok(())
    }
}

/// Checks the autograd gradients of `f` against central differences at `inputs`.
///
/// `f` maps the inputs (as F64 tensors tracked by autograd) to a tensor of any
/// shape; the checked scalar is `sum(f(x) * w)` with fixed random weights `w`,
/// so every output element matters. Inputs are converted to F64.
pub fn check_gradients<F>(
    f: F,
    inputs: &[Tensor],
    opts: &GradCheckOptions,
) -> Result<GradCheckReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_dtype(DType::F64)?).map_err(Error::from))
        .collect::<Result<_>>()?;
    let xs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&xs)?;
    let mut rng = SeededRng::derive(opts.seed, &[17]);
    let w: Vec<f64> = (0..out.elem_count()).map(|_| rng.normal()).collect();
    let w = Tensor::from_vec(w, out.shape(), out.device())?;
    let objective =
        |o: &Tensor| -> Result<Tensor> { Ok(o.to_dtype(DType::F64)?.mul(&w)?.sum_all()?) };
    let loss = objective(&out)?;
    let grads = loss.backward()?;

    let mut report = GradCheckReport {
        max_rel_error: vec![],
        has_grad: vec![],
        max_abs_numeric: vec![],
    };
    for (i, var) in vars.iter().enumerate() {
        let analytic = grads
            .get(var.as_tensor())
            .map(|g| g.flatten_all()?.to_vec1::<f64>())
            .transpose()?;
        let base: Vec<f64> = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let n = base.len();
        let coords: Vec<usize> = if n <= opts.max_coords_per_input {
            (0..n).collect()
        } else {
            let mut p = rng.permutation(n);
            p.truncate(opts.max_coords_per_input);
            p
        };
        let mut max_err: f64 = 0.0;
        let mut max_num: f64 = 0.0;
        for &c in &coords {
            let eval_at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[c] += delta;
                let t = Tensor::from_vec(v, var.shape(), var.device())?;
                let mut args: Vec<Tensor> = xs.iter().map(|x| x.detach()).collect();
                args[i] = t;
                Ok(objective(&f(&args)?)?.to_scalar::<f64>()?)
            };
            let num = (eval_at(opts.step)? - eval_at(-opts.step)?) / (2.0 * opts.step);
            max_num = max_num.max(num.abs());
            let a = analytic.as_ref().map(|g| g[c]).unwrap_or(0.0);
            let err = (a - num).abs() / 1e-3f64.max(a.abs()).max(num.abs());
            max_err = max_err.max(err);
        }
        report.max_rel_error.push(max_err);
        report.has_grad.push(analytic.is_some());
        report.max_abs_numeric.push(max_num);
    }
    Ok(report)
}

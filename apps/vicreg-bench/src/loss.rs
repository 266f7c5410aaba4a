//! `loss`: VICReg loss forward + backward on random `(B, D)` embeddings, the
//! conventions of the PyTorch script (25 / 25 / 1, unbiased variance, eps 1e-4,
//! covariance `sum_{i != j} C_ij^2 / D` per branch).

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{CovarianceForm, JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::SeededRng;

use crate::cli::{CovForm, LossArgs};
use crate::report;

/// Times the loss; returns the median milliseconds per forward + backward.
pub fn run(a: &LossArgs) -> Result<f64> {
    a.timing.validate()?;
    let (b, d) = (a.batch, a.dim);
    let form = match a.cov {
        CovForm::Auto => CovarianceForm::Auto,
        CovForm::Gram => CovarianceForm::Gram,
        CovForm::Dxd => CovarianceForm::Dxd,
    };
    let gram = match form {
        CovarianceForm::Auto => b < d,
        CovarianceForm::Gram => true,
        CovarianceForm::Dxd => false,
    };
    let loss = VicRegLoss::new(VicRegConfig {
        covariance_form: form,
        ..VicRegConfig::official()
    })?;
    let mut rng = SeededRng::new(a.timing.seed);
    let mut randn = || -> Result<Var> {
        let v: Vec<f32> = (0..b * d).map(|_| rng.normal() as f32).collect();
        Ok(Var::from_tensor(&Tensor::from_vec(
            v,
            (b, d),
            &Device::Cpu,
        )?)?)
    };
    let (x, y) = (randn()?, randn()?);
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut last = f32::NAN;
    let timed = report::time_it(a.timing.warmup, a.timing.iters, || {
        let out = loss.compute(x.as_tensor(), y.as_tensor(), &single)?;
        let grads = out.total.backward()?;
        // Both gradients must exist (as PyTorch's x.grad / y.grad).
        for v in [&x, &y] {
            grads
                .get(v.as_tensor())
                .ok_or_else(|| anyhow::anyhow!("no gradient for an input"))?;
        }
        last = out.total.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        Ok(())
    })?;
    // GEMM work per branch: forward product plus the two backward products.
    let (bf, df) = (b as f64, d as f64);
    let per_branch = if gram {
        2.0 * bf * bf * df
    } else {
        2.0 * bf * df * df
    };
    let flops = 2.0 * 3.0 * per_branch;
    report::finish(
        &format!("loss B={b} D={d}"),
        &timed,
        Some(flops),
        &format!(
            "covariance={} loss={last:.6}",
            if gram { "gram(BxB)" } else { "dxd(DxD)" }
        ),
    )
}

//! Times one optimizer step over ResNet-50-expander-sized parameters (three
//! 8192-wide layers and their 1-D BatchNorm parameters, ~150 M values): the
//! fused in-place update (contiguous gradients) against the generic tensor-op
//! update (the same gradients, non-contiguous), alternated in one process.
//!
//! `cargo run --release -p vicreg-core --example optimizer_step_bench -- [lars|sgd|adamw] [rounds]`

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use vicreg_core::optim::{build_optimizer, OptimizerKind, ParamGroup};

fn main() -> vicreg_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let kind: OptimizerKind = args.get(1).map_or("lars", String::as_str).parse()?;
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let dev = Device::Cpu;
    let shapes: &[&[usize]] = &[
        &[8192, 2048],
        &[8192],
        &[8192],
        &[8192, 8192],
        &[8192],
        &[8192],
        &[8192, 8192],
    ];
    let make = || -> vicreg_core::Result<Vec<(String, Var)>> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t = Tensor::randn(0f32, 0.02, *s, &dev)?.to_dtype(DType::F32)?;
                Ok((format!("p{i}"), Var::from_tensor(&t)?))
            })
            .collect()
    };
    let (fused_vars, generic_vars) = (make()?, make()?);
    let grads_for = |vars: &[(String, Var)],
                     contiguous: bool|
     -> vicreg_core::Result<candle_core::backprop::GradStore> {
        let first = vars[0].1.as_tensor();
        let mut g = (first.sum_all()? * 0.0)?.backward()?;
        for (_, v) in vars {
            let t = v.as_tensor();
            let gt = Tensor::randn(0f32, 0.01, t.dims(), &dev)?;
            let gt = if contiguous || t.rank() < 2 {
                gt
            } else {
                // The same layout transposed back: not contiguous.
                gt.t()?.contiguous()?.t()?
            };
            g.insert(t, gt);
        }
        Ok(g)
    };
    let mut fused = build_optimizer(kind, vec![ParamGroup::new(fused_vars.clone())], 1e-4)?;
    let mut generic = build_optimizer(kind, vec![ParamGroup::new(generic_vars.clone())], 1e-4)?;
    let (gf, gg) = (
        grads_for(&fused_vars, true)?,
        grads_for(&generic_vars, false)?,
    );
    // The first step creates the buffers; time the steps after it.
    fused.step(&gf, 0.1)?;
    generic.step(&gg, 0.1)?;
    for r in 0..rounds {
        let t = Instant::now();
        fused.step(&gf, 0.1)?;
        let tf = t.elapsed().as_secs_f64();
        let t = Instant::now();
        generic.step(&gg, 0.1)?;
        let tg = t.elapsed().as_secs_f64();
        println!(
            "round {r}: {kind:?} step fused {:.0} ms, generic {:.0} ms ({:.2}x)",
            1e3 * tf,
            1e3 * tg,
            tf / tg
        );
    }
    Ok(())
}

//! Times single ops of the ResNet training step, forward + backward, with the
//! custom ops of `encoders::ops` and with the op chains they replace, on the
//! shapes of a ResNet-18 VICReg step (batch 32, 96 px images):
//! - the stem max pool (3x3, stride 2, padding 1) of a `(32, 64, 48, 48)` map:
//!   `ops::max_pool2d` vs `resnet::pool::max_pool2d` (pad + strided
//!   `index_select` + `maximum` per axis);
//! - the stem convolution, 7x7 stride 2 on `(32, 3, 96, 96)`, GEMM op without input gradient;
//! - an 8192 x 8192 expander layer of the ResNet-50 step on a `(16, 8192)`
//!   batch: `ops::linear` vs candle's `x.matmul(&w.t())`.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p encoders --example op_bench -- [--iters 5]
//! ```
//! Prints the median milliseconds of each variant on stderr and
//! `median_ms=<custom max pool fwd+bwd>` on stdout.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use encoders::ops::{conv2d_gemm, linear, max_pool2d, Conv2dParams};
use encoders::resnet::pool;
use vicreg_core::SeededRng;

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn randn(seed: u64, shape: &[usize]) -> AnyResult<Tensor> {
    let mut rng = SeededRng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median milliseconds of `f` over `iters` runs after one warm-up.
fn time(iters: usize, mut f: impl FnMut() -> AnyResult<()>) -> AnyResult<f64> {
    f()?;
    let mut t = Vec::new();
    for _ in 0..iters {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(t))
}

fn main() -> AnyResult<()> {
    let mut iters = 5;
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, v] = argv.as_slice() {
        if flag != "--iters" {
            return Err(format!("unknown argument {flag}").into());
        }
        iters = v.parse()?;
    } else if !argv.is_empty() {
        return Err("usage: op_bench [--iters N]".into());
    }
    let x = Var::from_tensor(&randn(1, &[32, 64, 48, 48])?)?;
    let proj = randn(2, &[32, 64, 24, 24])?;
    let pool_custom = time(iters, || {
        let y = max_pool2d(&x, 3, 2, 1)?;
        (&y * &proj)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let pool_chain = time(iters, || {
        let y = pool::max_pool2d(&x, 3, 2, 1)?;
        (&y * &proj)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let img = randn(3, &[32, 3, 96, 96])?;
    let w = Var::from_tensor(&(randn(4, &[64, 3, 7, 7])? * 0.1)?)?;
    let proj = randn(5, &[32, 64, 48, 48])?;
    let stem = time(iters, || {
        let y = conv2d_gemm(&img, &w, Conv2dParams::square(2, 3), false)?;
        (&y * &proj)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let x = Var::from_tensor(&randn(6, &[16, 8192])?)?;
    let w = Var::from_tensor(&(randn(7, &[8192, 8192])? * 0.01)?)?;
    let proj = randn(8, &[16, 8192])?;
    let lin_custom = time(iters, || {
        let y = linear(&x, &w, None)?;
        (&y * &proj)?.sum_all()?.backward()?;
        Ok(())
    })?;
    let lin_stock = time(iters, || {
        let y = x.matmul(&w.t()?)?;
        (&y * &proj)?.sum_all()?.backward()?;
        Ok(())
    })?;
    eprintln!(
        "linear 8192->8192 on (16,8192) fwd+bwd: custom op {lin_custom:.1} ms, candle matmul {lin_stock:.1} ms ({:.1}x)",
        lin_stock / lin_custom
    );
    eprintln!(
        "threads={} max_pool 3x3/2 on (32,64,48,48) fwd+bwd: custom op {pool_custom:.1} ms, op chain {pool_chain:.1} ms ({:.1}x)",
        rayon::current_num_threads(),
        pool_chain / pool_custom
    );
    eprintln!("stem conv 7x7/2 on (32,3,96,96) fwd+bwd (weight grad only): {stem:.1} ms");
    println!("median_ms={pool_custom:.3}");
    Ok(())
}

//! Command line of `vicreg-bench` (one subcommand per workload).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

/// Timings of the VICReg workloads; prints `median_ms=<x>` on stdout, details on stderr.
#[derive(Parser, Debug)]
#[command(name = "vicreg-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// VICReg loss forward + backward on random (B, D) embeddings.
    Loss(LossArgs),
    /// ResNet-18 VICReg train step (expander 512-2048-2048-2048).
    Resnet18(ResnetArgs),
    /// ResNet-50 VICReg train step (expander 2048-8192-8192-8192).
    Resnet50(ResnetArgs),
    /// JPEG decode + both views of the official augmentation, per image.
    Augment(AugmentArgs),
    /// 1-D ResNet-18 VICReg train step on raw audio, two views.
    Audio1d(AudioArgs),
    /// Text transformer (MiniLM-L6 shape) VICReg train step, two views.
    Text(TextArgs),
}

impl Command {
    /// The thread count asked for.
    pub fn threads(&self) -> usize {
        match self {
            Command::Loss(a) => a.timing.threads,
            Command::Resnet18(a) | Command::Resnet50(a) => a.timing.threads,
            Command::Augment(a) => a.threads,
            Command::Audio1d(a) => a.timing.threads,
            Command::Text(a) => a.timing.threads,
        }
    }
}

/// Options shared by the iteration-timed workloads.
#[derive(Args, Debug, Clone)]
pub struct Timing {
    /// Threads for candle, rayon and the GEMM kernels.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed iterations (the median is printed).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Seed of the parameters and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Which covariance formula the loss workload uses.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum CovForm {
    /// Gram (B x B) when B < D, else D x D.
    Auto,
    /// The (B, B) Gram matrix of the centred embeddings.
    Gram,
    /// The (D, D) covariance matrix (what PyTorch's reference computes).
    Dxd,
}

#[derive(Args, Debug)]
pub struct LossArgs {
    /// Batch size B.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Embedding dimension D.
    #[arg(long, default_value_t = 2048)]
    pub dim: usize,
    /// Covariance formula.
    #[arg(long, value_enum, default_value_t = CovForm::Auto)]
    pub cov: CovForm,
    #[command(flatten)]
    pub timing: Timing,
}

#[derive(Args, Debug)]
pub struct ResnetArgs {
    /// Images per view.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 96)]
    pub size: usize,
    /// Expander widths (default: the PyTorch script's, 2048-2048-2048 / 8192-8192-8192).
    #[arg(long)]
    pub mlp: Option<String>,
    /// Use candle's stock conv2d / BatchNorm instead of the custom ops (for before/after figures).
    #[arg(long)]
    pub stock_ops: bool,
    /// Device of the model and the views: cpu or cuda:N (CUDA needs a binary
    /// built with `--features cuda`; the custom ops are CPU-only, so candle's
    /// own kernels run there).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub timing: Timing,
}

#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// Folder of *.jpg / *.jpeg files (torch_vicreg_bench.py make-jpegs).
    #[arg(long)]
    pub images: PathBuf,
    /// The first N files in name order (default: all).
    #[arg(long)]
    pub count: Option<usize>,
    /// Worker threads (1 = one loader worker, as the PyTorch side).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed passes over the N images (at least 5).
    #[arg(long, default_value_t = 5)]
    pub passes: usize,
    /// Seed of the augmentation draws (re-used every pass).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct AudioArgs {
    /// Clips per view.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Clip length in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 16000)]
    pub sample_rate: usize,
    /// Expander widths.
    #[arg(long, default_value = "2048-2048-2048")]
    pub mlp: String,
    #[command(flatten)]
    pub timing: Timing,
}

#[derive(Args, Debug)]
pub struct TextArgs {
    /// Sentences per view.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Tokens per sentence (all real, no padding).
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Expander widths.
    #[arg(long, default_value = "2048-2048-2048")]
    pub mlp: String,
    #[command(flatten)]
    pub timing: Timing,
}

/// Limits every thread pool of the process to `n` threads. Call before any
/// candle op: candle sizes its matmul parallelism from `RAYON_NUM_THREADS`
/// (read at each matmul) and its private pool from `CANDLE_NUM_THREADS`
/// (read once); rayon's global pool (used by the custom ops, the `gemm`
/// crate and candle's conv/elementwise loops) is built here with `n` threads.
pub fn set_threads(n: usize) -> Result<()> {
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // Edition 2021: set_var is safe; no other thread exists yet.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("could not build the {n}-thread pool: {e}"))?;
    Ok(())
}

impl Timing {
    /// Checks the counts.
    pub fn validate(&self) -> Result<()> {
        if self.iters == 0 {
            bail!("--iters must be at least 1");
        }
        Ok(())
    }
}

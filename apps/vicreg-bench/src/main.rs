//! `vicreg-bench`: wall-clock timings of the VICReg workloads on CPU, with the
//! conventions of `shared/bench/torch_vicreg_bench.py` so that both sides can
//! be compared in the same minute (`scripts/compare-torch.sh`).
//!
//! Every subcommand prints exactly one line `median_ms=<x>` on stdout; the
//! details (all samples, achieved GFLOP/s against a measured matmul peak,
//! peak RSS, load average) go to stderr.
//!
//! ```text
//! vicreg-bench loss     --batch 256 --dim 8192 [--cov auto|gram|dxd]
//! vicreg-bench resnet18 --batch 32 --size 96
//! vicreg-bench resnet50 --batch 16 --size 96
//! vicreg-bench augment  --images DIR --count 64          (1 thread by default)
//! vicreg-bench audio1d  --batch 8 --seconds 1 --sample-rate 16000
//! vicreg-bench text     --batch 32 --tokens 32
//! common: --threads N (default 2; augment 1) --warmup N (2) --iters N (10)
//! ```

mod augment;
mod cli;
mod flops;
mod loss;
mod report;
mod train;

use anyhow::Result;
use clap::Parser;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc option `purge_delay` (index 15 in mimalloc 2.x and 3.x's `mi_option_t`).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory inside the process instead of returning it to the OS
/// after 10 ms (mimalloc's default): a training step frees and re-allocates
/// hundreds of MB of activations and gradients, and every page handed back
/// costs a page fault plus a kernel page clear on the next step (measured:
/// system time 11.3 s -> 3.6 s over 5 ResNet-18 steps). The peak RSS is
/// unchanged (the memory is re-used, not accumulated).
fn configure_allocator() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: plain option setter of the linked mimalloc, called once at the
    // start of main before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// Name of the global allocator this binary was built with.
pub fn allocator_name() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc(purge_delay=-1)"
    } else {
        "system"
    }
}

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = run(args) {
        eprintln!("vicreg-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: cli::Cli) -> Result<()> {
    configure_allocator();
    // Must happen before the first candle op or rayon call: candle reads these
    // variables for its matmul parallelism and its private pool, rayon for its
    // global pool (which the custom ops and the `gemm` crate use).
    cli::set_threads(args.command.threads())?;
    let median_ms = match &args.command {
        cli::Command::Loss(a) => loss::run(a)?,
        cli::Command::Resnet18(a) => train::run_resnet("resnet18", a)?,
        cli::Command::Resnet50(a) => train::run_resnet("resnet50", a)?,
        cli::Command::Augment(a) => augment::run(a)?,
        cli::Command::Audio1d(a) => train::run_audio(a)?,
        cli::Command::Text(a) => train::run_text(a)?,
    };
    println!("median_ms={median_ms:.3}");
    Ok(())
}

//! Timing statistics and the stderr report: samples, achieved GFLOP/s against
//! a measured matmul peak, peak RSS, load average.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

/// Median as Python's `statistics.median` (mean of the two middle values for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Wall-clock samples of the timed calls and the process CPU time they used.
#[derive(Clone, Debug)]
pub struct Timed {
    /// Milliseconds per call.
    pub samples: Vec<f64>,
    /// User and system CPU milliseconds per call (all threads), averaged.
    /// Less sensitive to other processes' load than wall time.
    pub cpu_ms: (f64, f64),
}

/// `(user, system)` CPU seconds used so far by this process (`getrusage`).
pub fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage writes into the zero-initialised struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// Runs `step` `warmup` times untimed, then `iters` times timed.
pub fn time_it(warmup: usize, iters: usize, mut step: impl FnMut() -> Result<()>) -> Result<Timed> {
    for _ in 0..warmup {
        step()?;
    }
    let mut samples = Vec::with_capacity(iters);
    let (u0, s0) = cpu_seconds();
    for _ in 0..iters {
        let t = Instant::now();
        step()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (u1, s1) = cpu_seconds();
    let n = iters.max(1) as f64;
    Ok(Timed {
        samples,
        cpu_ms: ((u1 - u0) * 1e3 / n, (s1 - s0) * 1e3 / n),
    })
}

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The 1, 5 and 15 minute load averages, as text.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(","))
        .unwrap_or_else(|| "?".into())
}

/// GFLOP/s of a 2048^3 f32 matmul through candle (median of 4 after one
/// warm-up), on the thread count already configured: the practical peak
/// that the achieved figures are compared with.
pub fn matmul_peak_gflops() -> Result<f64> {
    let n = 2048;
    let a = Tensor::ones((n, n), DType::F32, &Device::Cpu)?;
    let b = (Tensor::ones((n, n), DType::F32, &Device::Cpu)? * 0.5)?;
    let mut t = Vec::new();
    for i in 0..5 {
        let s = Instant::now();
        let c = a.matmul(&b)?;
        std::hint::black_box(&c);
        if i > 0 {
            t.push(s.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (n * n * n) as f64 / median(&t) / 1e9)
}

/// Writes the stderr report of an iteration-timed workload and returns its median.
///
/// `flops` is the estimated floating-point work of one iteration (GEMM-shaped
/// work only: convolutions, linear layers, matmuls), `what` describes the workload.
pub fn finish(what: &str, timed: &Timed, flops: Option<f64>, extra: &str) -> Result<f64> {
    let samples = &timed.samples;
    let med = median(samples);
    // Peak RSS first: the matmul reference below allocates its own buffers.
    let rss = peak_rss_mib();
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "[{what}] threads={} allocator={} iters={} median={med:.3} min={min:.3} max={max:.3} \
         samples=[{}] cpu_ms_per_iter=user {:.1} + sys {:.1} {extra}",
        rayon::current_num_threads(),
        crate::allocator_name(),
        samples.len(),
        samples
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        timed.cpu_ms.0,
        timed.cpu_ms.1,
    );
    if let Some(f) = flops {
        let peak = matmul_peak_gflops()?;
        let got = f / (med / 1e3) / 1e9;
        eprintln!(
            "[{what}] work={:.2} GFLOP/iter achieved={got:.1} GFLOP/s matmul_peak={peak:.1} GFLOP/s \
             (2048^3 f32, same threads) fraction={:.0}%",
            f / 1e9,
            100.0 * got / peak
        );
    }
    match rss {
        Some(r) => eprintln!("[{what}] peak_rss_mib={r:.0} (VmHWM) loadavg={}", loadavg()),
        None => eprintln!("[{what}] peak_rss_mib=? loadavg={}", loadavg()),
    }
    Ok(med)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_python_statistics() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}

//! `augment`: JPEG decode + both views of the official VICReg augmentation per
//! image, with the protocol of `torch_vicreg_bench.py augment`: the first N
//! `*.jpg` / `*.jpeg` files in name order (read once untimed to warm the page
//! cache), one untimed warm-up pass over min(N, 16) images, then `--passes`
//! (>= 5) timed passes over all N; a sample is pass wall time / N and the
//! median sample is printed. Each image's draws come from
//! `SeededRng::derive(seed, [index])`, so every pass does the same work.
//! The sha256 of the file set is computed as `make-jpegs` prints it
//! (`sha256(name \0 bytes ...)` in order) so both sides can be checked to use
//! the same files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use datasets::augment::{TwoViewTransform, VicregAugConfig};
use datasets::image::decode_rgb;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use vicreg_core::SeededRng;

use crate::cli::AugmentArgs;
use crate::report;

/// Untimed warm-up images, as the PyTorch script.
const WARMUP_IMAGES: usize = 16;

/// The first `count` (default all) JPEG files of `dir`, sorted by name.
fn list_jpegs(dir: &Path, count: Option<usize>) -> Result<Vec<(String, PathBuf)>> {
    if !dir.is_dir() {
        bail!("augment: --images {} is not a folder", dir.display());
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("augment: reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            let l = n.to_lowercase();
            l.ends_with(".jpg") || l.ends_with(".jpeg")
        })
        .collect();
    names.sort();
    if names.is_empty() {
        bail!(
            "augment: no *.jpg / *.jpeg files in {} (torch_vicreg_bench.py make-jpegs writes some)",
            dir.display()
        );
    }
    let n = count.unwrap_or(names.len());
    if n == 0 || n > names.len() {
        bail!(
            "augment: --count {n} asked for, but {} holds {} JPEG files",
            dir.display(),
            names.len()
        );
    }
    names.truncate(n);
    Ok(names
        .into_iter()
        .map(|s| (s.clone(), dir.join(s)))
        .collect())
}

/// Per-pass outcome: wall seconds, seconds spent reading + decoding (single
/// thread only, else 0), checksum of the last image's two views.
struct Pass {
    secs: f64,
    decode_secs: f64,
    checksum: f64,
}

fn one_image(t: &TwoViewTransform, path: &Path, seed: u64, index: usize) -> Result<(f64, f64)> {
    let td = Instant::now();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let img = decode_rgb(&bytes, path)?;
    let decode = td.elapsed().as_secs_f64();
    let mut rng = SeededRng::derive(seed, &[index as u64]);
    let (a, b) = t.apply(&img, &mut rng)?;
    let sum = a.data.iter().chain(&b.data).map(|&v| v as f64).sum::<f64>();
    Ok((decode, sum))
}

fn run_pass(t: &TwoViewTransform, files: &[PathBuf], seed: u64, threads: usize) -> Result<Pass> {
    let t0 = Instant::now();
    let (decode_secs, checksum) = if threads == 1 {
        let mut dec = 0.0;
        let mut last = 0.0;
        for (i, p) in files.iter().enumerate() {
            let (d, s) = one_image(t, p, seed, i)?;
            dec += d;
            last = s;
        }
        (dec, last)
    } else {
        let out: Vec<(f64, f64)> = files
            .par_iter()
            .enumerate()
            .map(|(i, p)| one_image(t, p, seed, i))
            .collect::<Result<_>>()?;
        (0.0, out.last().map(|o| o.1).unwrap_or(0.0))
    };
    Ok(Pass {
        secs: t0.elapsed().as_secs_f64(),
        decode_secs,
        checksum,
    })
}

/// Times the pipeline; returns the median milliseconds per image (both views).
pub fn run(a: &AugmentArgs) -> Result<f64> {
    if a.passes < 5 {
        bail!("augment: --passes must be at least 5");
    }
    let files = list_jpegs(&a.images, a.count)?;
    let mut digest = Sha256::new();
    for (name, path) in &files {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        digest.update(name.as_bytes());
        digest.update([0u8]);
        digest.update(&data);
    }
    let sha: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let paths: Vec<PathBuf> = files.iter().map(|f| f.1.clone()).collect();
    let t = TwoViewTransform::new(VicregAugConfig::default())?;
    run_pass(
        &t,
        &paths[..paths.len().min(WARMUP_IMAGES)],
        a.seed,
        a.threads,
    )?;
    let n = paths.len() as f64;
    let mut samples = Vec::new();
    let mut decode = Vec::new();
    let mut checksum = 0.0;
    let (u0, s0) = report::cpu_seconds();
    for _ in 0..a.passes {
        let p = run_pass(&t, &paths, a.seed, a.threads)?;
        samples.push(p.secs * 1e3 / n);
        decode.push(p.decode_secs * 1e3 / n);
        checksum = p.checksum;
    }
    let (u1, s1) = report::cpu_seconds();
    let per_image = |t: f64| t * 1e3 / (n * a.passes as f64);
    let med = report::median(&samples);
    let timed = report::Timed {
        samples,
        cpu_ms: (per_image(u1 - u0), per_image(s1 - s0)),
    };
    report::finish(
        &format!("augment N={}", paths.len()),
        &timed,
        None,
        &format!(
            "images_per_s={:.1} decode_ms={} view=(3, 224, 224) last_image_checksum={checksum:.6} sha256={sha}",
            1e3 / med,
            if a.threads == 1 {
                format!("{:.3}", report::median(&decode))
            } else {
                "n/a(threads>1)".into()
            }
        ),
    )
}

//! Benchmark of the official VICReg two-view pipeline, decode included:
//! per image, read + decode the JPEG to RGB, then view 1 and view 2 (224x224,
//! normalised f32 CHW), like `torch_vicreg_bench.py augment`.
//!
//! ```text
//! cargo run --release -p datasets --example augment_bench -- --images DIR --count N --threads T [--passes 5] [--seed 0] [-v]
//! ```
//! The JPEG set comes from `torch_vicreg_bench.py make-jpegs --out DIR --count N --seed 0`.
//! Prints `median_ms=<x>`: the median over passes of wall milliseconds per image
//! (both views); `-v` adds images/s, images/s per thread and decode-only time on stderr.

use std::path::PathBuf;
use std::time::Instant;

use datasets::augment::{TwoViewTransform, VicregAugConfig};
use datasets::image::decode_rgb;
use rayon::prelude::*;
use vicreg_core::SeededRng;

struct Args {
    images: PathBuf,
    count: Option<usize>,
    threads: usize,
    passes: usize,
    seed: u64,
    verbose: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        images: PathBuf::new(),
        count: None,
        threads: 1,
        passes: 5,
        seed: 0,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    let mut have_images = false;
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--images" => {
                a.images = PathBuf::from(val()?);
                have_images = true;
            }
            "--count" => a.count = Some(val()?.parse().map_err(|e| format!("--count: {e}"))?),
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--passes" => a.passes = val()?.parse().map_err(|e| format!("--passes: {e}"))?,
            "--seed" => a.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-v" | "--verbose" => a.verbose = true,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if !have_images {
        return Err("--images DIR is required".into());
    }
    if a.threads == 0 || a.passes == 0 {
        return Err("--threads and --passes must be > 0".into());
    }
    Ok(a)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("augment_bench: {e}");
            std::process::exit(2);
        }
    };
    let mut names: Vec<PathBuf> = match std::fs::read_dir(&args.images) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect(),
        Err(e) => {
            eprintln!("augment_bench: {}: {e}", args.images.display());
            std::process::exit(2);
        }
    };
    names.sort();
    let n = args.count.unwrap_or(names.len());
    if n == 0 || n > names.len() {
        eprintln!(
            "augment_bench: --count {n} asked for, {} holds {} JPEG files",
            args.images.display(),
            names.len()
        );
        std::process::exit(2);
    }
    names.truncate(n);
    for p in &names {
        let _ = std::fs::read(p); // page cache, untimed
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("thread pool");
    let t = TwoViewTransform::new(VicregAugConfig::default()).expect("official config is valid");
    let run = |files: &[PathBuf], seed: u64| -> f64 {
        let t0 = Instant::now();
        let sums: Vec<f64> = pool.install(|| {
            files
                .par_iter()
                .enumerate()
                .map(|(i, p)| {
                    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    let img = decode_rgb(&bytes, p).unwrap_or_else(|e| panic!("{e}"));
                    let mut rng = SeededRng::derive(seed, &[i as u64]);
                    let (a, b) = t.apply(&img, &mut rng).unwrap_or_else(|e| panic!("{e}"));
                    (a.data[0] + b.data[0]) as f64
                })
                .collect()
        });
        std::hint::black_box(sums);
        t0.elapsed().as_secs_f64() * 1e3 / files.len() as f64
    };
    run(&names[..n.min(16)], args.seed);
    let mut samples: Vec<f64> = (0..args.passes).map(|_| run(&names, args.seed)).collect();
    let med = median(&mut samples.clone());
    println!("median_ms={med:.3}");
    if args.verbose {
        let decode: Vec<f64> = (0..3)
            .map(|_| {
                let t0 = Instant::now();
                for p in &names {
                    let bytes = std::fs::read(p).unwrap();
                    std::hint::black_box(decode_rgb(&bytes, p).unwrap());
                }
                t0.elapsed().as_secs_f64() * 1e3 / n as f64
            })
            .collect();
        let ips = 1e3 / med;
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        eprintln!(
            "[augment] threads={} N={n} passes={} images_per_s={ips:.1} images_per_s_per_thread={:.1} \
             decode_ms(1 thread)={:.3} samples={samples:.3?}",
            args.threads,
            args.passes,
            ips / args.threads as f64,
            median(&mut decode.clone()),
        );
    }
}

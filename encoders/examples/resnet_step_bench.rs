//! Times one VICReg training step of a ResNet on CPU, with the GEMM/fused
//! custom ops (`encoders::ops`) and/or candle's stock conv2d and BatchNorm,
//! alternating the two in one process so both see the same machine load.
//!
//! Workload (the conventions of `shared/bench/torch_vicreg_bench.py`): two
//! random views `(batch, 3, size, size)` generated once, each through
//! backbone + expander (`512-2048-2048-2048` for resnet18,
//! `2048-8192-8192-8192` for resnet50) in train mode, the official VICReg
//! loss, backward, SGD (lr 0.1, momentum 0.9, no weight decay) step.
//!
//! ```text
//! cargo run --release -p encoders --example resnet_step_bench -- \
//!     [--arch resnet18|resnet50] [--batch 32] [--size 96] [--iters 5] [--warmup 1] \
//!     [--mode fast|stock|both] [--mlp 512-2048-2048-2048]
//! ```
//! Prints `median_ms=<x>` (the fast ops; the stock ones when `--mode stock`)
//! on stdout; per-mode medians, all samples, the estimated conv+linear
//! GFLOP/s, a 2048^3 matmul reference and peak RSS on stderr. Thread count:
//! `RAYON_NUM_THREADS` (candle and the custom ops share rayon's pool).
//! Build with `--features mimalloc` to use the mimalloc global allocator.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use encoders::resnet::BlockKind;
use encoders::resnet::{ResNet, ResNetConfig};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
use vicreg_core::{ParamStore, SeededRng};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Args {
    arch: String,
    batch: usize,
    size: usize,
    iters: usize,
    warmup: usize,
    mode: String,
    mlp: Option<String>,
}

fn parse_args() -> AnyResult<Args> {
    let mut a = Args {
        arch: "resnet18".into(),
        batch: 32,
        size: 96,
        iters: 5,
        warmup: 1,
        mode: "both".into(),
        mlp: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let key = argv[i].as_str();
        let val = argv
            .get(i + 1)
            .ok_or_else(|| format!("{key} needs a value"))?
            .clone();
        match key {
            "--arch" => a.arch = val,
            "--batch" => a.batch = val.parse()?,
            "--size" => a.size = val.parse()?,
            "--iters" => a.iters = val.parse()?,
            "--warmup" => a.warmup = val.parse()?,
            "--mode" => a.mode = val,
            "--mlp" => a.mlp = Some(val),
            _ => return Err(format!("unknown argument {key}").into()),
        }
        i += 2;
    }
    if !["fast", "stock", "both"].contains(&a.mode.as_str()) {
        return Err(format!("--mode must be fast, stock or both, got {}", a.mode).into());
    }
    if a.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    Ok(a)
}

/// Multiply-accumulates of one forward pass of the backbone convolutions on
/// one `size x size` image.
fn conv_macs(cfg: &ResNetConfig, size: usize) -> AnyResult<f64> {
    let half = |n: usize| (n - 1) / 2 + 1;
    let kind = cfg.block_kind()?;
    let mut macs = 0.0;
    let mut conv = |c: usize, o: usize, k: usize, out: usize| {
        macs += (c * o * k * k * out * out) as f64;
    };
    let mut s = half(size);
    let mut c = cfg.stem_channels();
    conv(cfg.in_channels, c, 7, s);
    s = half(s);
    for (stage, &blocks) in cfg.stage_blocks()?.iter().enumerate() {
        let planes = cfg.stem_channels() << stage;
        let out_c = planes * kind.expansion();
        for b in 0..blocks {
            let stride2 = stage > 0 && b == 0;
            let so = if stride2 { half(s) } else { s };
            match kind {
                BlockKind::Basic => {
                    conv(c, planes, 3, so);
                    conv(planes, planes, 3, so);
                }
                BlockKind::Bottleneck => {
                    conv(c, planes, 1, s);
                    conv(planes, planes, 3, so);
                    conv(planes, out_c, 1, so);
                }
            }
            if b == 0 && (stride2 || c != out_c) {
                conv(c, out_c, 1, so);
            }
            c = out_c;
            s = so;
        }
    }
    Ok(macs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn matmul_gflops() -> AnyResult<f64> {
    let n = 2048;
    let a = Tensor::ones((n, n), DType::F32, &Device::Cpu)?;
    let mut t = Vec::new();
    for _ in 0..4 {
        let s = Instant::now();
        let c = a.matmul(&a)?;
        c.sum_all()?.to_scalar::<f32>()?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n * n * n) as f64 / median(&mut t) / 1e9)
}

fn main() -> AnyResult<()> {
    let args = parse_args()?;
    let dev = Device::Cpu;
    let cfg = ResNetConfig::from_name(&args.arch)?;
    let mlp = args.mlp.clone().unwrap_or_else(|| {
        if cfg
            .block_kind()
            .map(|k| k == BlockKind::Basic)
            .unwrap_or(true)
        {
            "2048-2048-2048".into()
        } else {
            "8192-8192-8192".into()
        }
    });
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F32, &dev);
    let encoder = ResNet::new(&cfg, vb.pp("backbone"))?;
    let branch = Branch::new(encoder, &ExpanderConfig::with_mlp(&mlp), vb.pp("projector"))?;
    let model = JointEmbedding::siamese(branch);
    let loss = VicRegLoss::new(VicRegConfig::official())?;
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut opt = Sgd::new(
        vec![ParamGroup::new(store.trainable_vars())],
        SgdConfig::default(),
    )?;

    let mut rng = SeededRng::new(1);
    let shape = [args.batch, 3, args.size, args.size];
    let n: usize = shape.iter().product();
    let mut view = || -> candle_core::Result<Tensor> {
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(v, &shape, &dev)
    };
    let (xa, xb) = (view()?, view()?);

    let modes: Vec<bool> = match args.mode.as_str() {
        "fast" => vec![true],
        "stock" => vec![false],
        _ => vec![false, true],
    };
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for it in 0..args.warmup + args.iters {
        for (m, &fast) in modes.iter().enumerate() {
            encoders::ops::set_fast_ops(fast);
            let t = Instant::now();
            let out = model.forward_t(&xa, &xb, true)?;
            let l = loss.compute(&out.a.emb, &out.b.emb, &single)?;
            let grads = l.total.backward()?;
            opt.step(&grads, 0.1)?;
            let total = l.total.to_scalar::<f32>()?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if !total.is_finite() {
                return Err(format!("non-finite loss {total} at iteration {it}").into());
            }
            if it >= args.warmup {
                samples[m].push(ms);
            }
        }
    }

    // conv forward + weight grad + input grad (none for the stem) and the
    // expander's three linear passes, two views.
    let stem =
        (cfg.in_channels * cfg.stem_channels() * 49) as f64 * args.size.div_ceil(2).pow(2) as f64;
    let conv = conv_macs(&cfg, args.size)?;
    let mut dims = vec![cfg.repr_dim()?];
    dims.extend(vicreg_core::model::parse_mlp_spec(&mlp)?);
    let lin: f64 = dims.windows(2).map(|w| (w[0] * w[1]) as f64).sum();
    let step_flops = 2.0 * 2.0 * args.batch as f64 * (3.0 * conv - stem + 3.0 * lin);
    let peak = matmul_gflops()?;
    eprintln!(
        "{} batch {} size {} expander {mlp}, threads {}, allocator {}",
        args.arch,
        args.batch,
        args.size,
        rayon::current_num_threads(),
        if cfg!(feature = "mimalloc") {
            "mimalloc"
        } else {
            "system"
        }
    );
    eprintln!(
        "estimated conv+linear work per step: {:.1} GFLOP; 2048^3 matmul reference: {peak:.1} GFLOP/s",
        step_flops / 1e9
    );
    let mut result = 0.0;
    for (m, &fast) in modes.iter().enumerate() {
        let all = samples[m].clone();
        let med = median(&mut samples[m]);
        eprintln!(
            "{:5} ops: median {med:.1} ms ({:.1} GFLOP/s), samples {:?}",
            if fast { "fast" } else { "stock" },
            step_flops / (med / 1e3) / 1e9,
            all.iter().map(|v| v.round()).collect::<Vec<_>>()
        );
        result = med;
        if fast && modes.len() == 2 {
            let stock = median(&mut samples[0]);
            eprintln!("speed-up fast vs stock: {:.2}x", stock / med);
        }
    }
    if let Some(rss) = peak_rss_mib() {
        eprintln!("peak RSS: {rss:.0} MiB");
    }
    println!("median_ms={result:.3}");
    Ok(())
}

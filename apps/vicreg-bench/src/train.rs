//! The train-step workloads (`resnet18`, `resnet50`, `audio1d`, `text`):
//! two views through encoder + expander in two separate forward passes (train
//! mode, so BatchNorm statistics are per view), the official VICReg loss
//! (25 / 25 / 1), backward, SGD (lr 0.1, momentum 0.9, no weight decay) step,
//! as `torch_vicreg_bench.py`. Inputs are generated once, before timing.
//! On a CUDA device every phase ends with a device synchronisation, so that
//! the phase and step times are those of the GPU work, not of its queueing.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use encoders::audio::{ResNet1d, ResNet1dConfig};
use encoders::resnet::{ResNet, ResNetConfig};
use encoders::text::{BertConfig, TextBatch, TextTransformer};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{parse_mlp_spec, Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
use vicreg_core::{ParamStore, SeededRng};

use crate::cli::{AudioArgs, ResnetArgs, TextArgs, Timing};
use crate::{flops, report};

/// Median milliseconds of each phase of a step, for the stderr report.
#[derive(Default)]
struct Phases {
    forward: Vec<f64>,
    loss: Vec<f64>,
    backward: Vec<f64>,
    optimizer: Vec<f64>,
}

impl Phases {
    fn describe(&self) -> String {
        let m = |v: &[f64]| report::median(v);
        format!(
            "phases_ms=forward {:.1} + loss {:.1} + backward {:.1} + sgd {:.1}",
            m(&self.forward),
            m(&self.loss),
            m(&self.backward),
            m(&self.optimizer)
        )
    }
}

/// Builds the siamese model around `encoder` (whose parameters live on
/// `dev`), then times `warmup + iters` steps on the two fixed views; returns
/// the timings, the last loss and the per-phase medians (as text).
fn time_steps<E: Encoder>(
    store: &ParamStore,
    encoder: E,
    mlp: &str,
    views: (&E::Input, &E::Input),
    timing: &Timing,
    dev: &Device,
) -> Result<(report::Timed, f32, String)> {
    let vb = store.var_builder(DType::F32, dev);
    let branch = Branch::new(encoder, &ExpanderConfig::with_mlp(mlp), vb.pp("projector"))?;
    let model = JointEmbedding::siamese(branch);
    let loss = VicRegLoss::new(VicRegConfig::official())?;
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut opt = Sgd::new(
        vec![ParamGroup::new(store.trainable_vars())],
        SgdConfig {
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
            exclude_1d_from_wd: false,
        },
    )?;
    let mut last = f32::NAN;
    let mut it = 0usize;
    let mut phases = Phases::default();
    let timed = report::time_it(timing.warmup, timing.iters, || {
        // candle is eager on the CPU: each phase's work is done when its call
        // returns; CUDA kernels are queued, so the phase waits for them
        // (`synchronize` is free on the CPU).
        let t = Instant::now();
        let out = model.forward_t(views.0, views.1, true)?;
        dev.synchronize()?;
        let t1 = Instant::now();
        let l = loss.compute_outputs(&out.a, &out.b, &single)?;
        dev.synchronize()?;
        let t2 = Instant::now();
        let grads = l.total.backward()?;
        dev.synchronize()?;
        let t3 = Instant::now();
        opt.step(&grads, 0.1)?;
        dev.synchronize()?;
        let t4 = Instant::now();
        if it >= timing.warmup {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            phases.forward.push(ms(t, t1));
            phases.loss.push(ms(t1, t2));
            phases.backward.push(ms(t2, t3));
            phases.optimizer.push(ms(t3, t4));
        }
        last = l.total.to_scalar::<f32>()?;
        if !last.is_finite() {
            anyhow::bail!("non-finite loss {last} at iteration {it}");
        }
        it += 1;
        Ok(())
    })?;
    Ok((timed, last, phases.describe()))
}

fn randn(rng: &mut SeededRng, shape: &[usize], scale: f64, dev: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
    Ok(Tensor::from_vec(v, shape, dev)?)
}

/// `resnet18` / `resnet50`: random `(B, 3, S, S)` views, on `--device`.
pub fn run_resnet(arch: &str, a: &ResnetArgs) -> Result<f64> {
    a.timing.validate()?;
    let dev = vicreg_core::parse_device(&a.device)?;
    encoders::ops::set_fast_ops(!a.stock_ops);
    let cfg = ResNetConfig::from_name(arch)?;
    let mlp = a.mlp.clone().unwrap_or_else(|| {
        if arch == "resnet18" {
            "2048-2048-2048".into()
        } else {
            "8192-8192-8192".into()
        }
    });
    let store = ParamStore::new(a.timing.seed);
    let encoder = ResNet::new(&cfg, store.var_builder(DType::F32, &dev).pp("backbone"))?;
    let repr = encoder.repr_dim();
    let mut rng = SeededRng::new(a.timing.seed + 1);
    let shape = [a.batch, 3, a.size, a.size];
    let (v1, v2) = (
        randn(&mut rng, &shape, 1.0, &dev)?,
        randn(&mut rng, &shape, 1.0, &dev)?,
    );
    let (timed, last, phases) = time_steps(&store, encoder, &mlp, (&v1, &v2), &a.timing, &dev)?;
    let (conv, stem) = flops::resnet_macs(&cfg, a.size)?;
    let mut dims = vec![repr];
    dims.extend(parse_mlp_spec(&mlp)?);
    let work = flops::step_flops(a.batch, conv, stem, flops::linear_macs(&dims));
    let params: usize = store
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    report::finish(
        &format!("{arch} B={} S={}", a.batch, a.size),
        &timed,
        Some(work),
        &format!(
            "device={} expander={repr}-{mlp} params={params} ops={} loss={last:.6} {phases}",
            a.device,
            if a.stock_ops || !dev.is_cpu() {
                "stock"
            } else {
                "custom"
            }
        ),
    )
}

/// `audio1d`: the paper's 1-D ResNet-18 on random waveforms of `seconds * rate` samples.
pub fn run_audio(a: &AudioArgs) -> Result<f64> {
    a.timing.validate()?;
    let samples_per_clip = (a.seconds * a.sample_rate as f64).round() as usize;
    let cfg = ResNet1dConfig::resnet18();
    let store = ParamStore::new(a.timing.seed);
    let encoder = ResNet1d::new(
        &cfg,
        store.var_builder(DType::F32, &Device::Cpu).pp("backbone"),
    )?;
    let repr = encoder.repr_dim();
    let mut rng = SeededRng::new(a.timing.seed + 1);
    let shape = [a.batch, samples_per_clip];
    let cpu = Device::Cpu;
    let (v1, v2) = (
        randn(&mut rng, &shape, 0.1, &cpu)?,
        randn(&mut rng, &shape, 0.1, &cpu)?,
    );
    let (timed, last, phases) = time_steps(&store, encoder, &a.mlp, (&v1, &v2), &a.timing, &cpu)?;
    let (conv, stem) = flops::resnet1d_macs(&cfg, samples_per_clip);
    let mut dims = vec![repr];
    dims.extend(parse_mlp_spec(&a.mlp)?);
    let work = flops::step_flops(a.batch, conv, stem, flops::linear_macs(&dims));
    report::finish(
        &format!("audio1d B={} T={}s R={}", a.batch, a.seconds, a.sample_rate),
        &timed,
        Some(work),
        &format!(
            "encoder=resnet18-1d widths={:?} expander={repr}-{} loss={last:.6} {phases}",
            cfg.widths, a.mlp
        ),
    )
}

/// `text`: a MiniLM-L6-shaped transformer (6 layers, hidden 384, 12 heads,
/// MLP 1536, vocab 30522, dropout 0.1 in train mode) on random token ids, all unpadded.
pub fn run_text(a: &TextArgs) -> Result<f64> {
    a.timing.validate()?;
    let mut cfg = BertConfig::minilm_l6();
    cfg.max_position_embeddings = cfg.max_position_embeddings.max(a.tokens);
    let store = ParamStore::new(a.timing.seed);
    let encoder = TextTransformer::new(
        &cfg,
        store.var_builder(DType::F32, &Device::Cpu).pp("backbone"),
    )?;
    let repr = encoder.repr_dim();
    let mut rng = SeededRng::new(a.timing.seed + 1);
    let mut batch = || -> Result<TextBatch> {
        let n = a.batch * a.tokens;
        let ids: Vec<u32> = (0..n).map(|_| rng.below(cfg.vocab_size) as u32).collect();
        let shape = (a.batch, a.tokens);
        TextBatch::new(
            Tensor::from_vec(ids, shape, &Device::Cpu)?,
            Tensor::ones(shape, DType::U32, &Device::Cpu)?,
        )
        .context("building the token batch")
    };
    let (v1, v2) = (batch()?, batch()?);
    let (timed, last, phases) =
        time_steps(&store, encoder, &a.mlp, (&v1, &v2), &a.timing, &Device::Cpu)?;
    let enc = flops::transformer_macs(
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.intermediate_size,
        a.tokens,
    );
    let mut dims = vec![repr];
    dims.extend(parse_mlp_spec(&a.mlp)?);
    let work = flops::step_flops(a.batch, enc, 0.0, flops::linear_macs(&dims));
    report::finish(
        &format!("text B={} L={}", a.batch, a.tokens),
        &timed,
        Some(work),
        &format!(
            "encoder=minilm-l6-shape layers={} hidden={} expander={repr}-{} loss={last:.6} {phases}",
            cfg.num_hidden_layers, cfg.hidden_size, a.mlp
        ),
    )
}

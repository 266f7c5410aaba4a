//! The no-argument run: the built-in synthetic ESC-50-format sounds, a short
//! wave-spec VICReg pretraining on folds 1-4 with CPU-sized encoders, then
//! linear probes on fold 5 against the same encoders randomly initialised
//! and a supervised spectrogram encoder.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};
use vicreg_core::optim::OptimizerKind;
use vicreg_core::recipe::{DataSettings, TrainSettings};

use crate::config::{Pairing, PretrainConfig, WaveArch};
use crate::evaluate::{self, EvalOptions, EvalReport, InitKind};
use crate::model::BranchSel;
use crate::pretrain;
use crate::supervised::{self, SupervisedOptions};
use datasets::audio::{AudioSettings, Protocol};

/// Settings of the demo (flags of `esc50-audio demo`).
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the run directory goes (default: runs/esc50-demo-<unix time>).
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// VICReg pretraining epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Supervised baseline epochs.
    #[arg(long, default_value_t = 8)]
    pub supervised_epochs: usize,
    /// Clips per class in each fold of the generated set (10 classes, 5 folds).
    #[arg(long, default_value_t = 8)]
    pub clips_per_class_per_fold: usize,
    /// Rate the model works at (the set is written at 16 kHz).
    #[arg(long, default_value_t = 8000)]
    pub sample_rate: u32,
    /// Clip length, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub clip_seconds: f64,
    /// Mel bands.
    #[arg(long, default_value_t = 32)]
    pub n_mels: usize,
    /// Spectrogram hop in samples (256 at 8 kHz: 32 ms, 32 frames per second).
    #[arg(long, default_value_t = 256)]
    pub mel_hop: usize,
    /// Expander.
    #[arg(long, default_value = "1024-1024-1024")]
    pub mlp: String,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    pub num_workers: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs the demo and prints the comparison table.
pub fn run(args: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let synth = SynthAudioConfig {
        clips_per_class_per_fold: args.clips_per_class_per_fold,
        seed: args.seed,
        ..SynthAudioConfig::default()
    };
    let data_dir =
        datasets::cache_dir().join(format!("synth-esc50-{}", args.clips_per_class_per_fold));
    let index = std::sync::Arc::new(generate_synth_esc50(&data_dir, &synth)?);
    eprintln!(
        "built-in data: {} ({} classes x 5 folds x {} clips of {} s at {} Hz)",
        data_dir.display(),
        index.num_classes(),
        synth.clips_per_class_per_fold,
        synth.clip_seconds,
        synth.sample_rate
    );
    let exp_dir = args
        .exp_dir
        .clone()
        .unwrap_or_else(|| vicreg_core::recipe::timestamped_dir("runs/esc50-demo"));
    let mut cfg = PretrainConfig {
        data: DataSettings::at(data_dir.clone(), args.num_workers),
        train: TrainSettings {
            warmup_epochs: 2.min(args.epochs - 1),
            ..PretrainConfig::default().train.demo(
                exp_dir.join("vicreg"),
                (args.epochs, args.batch_size),
                OptimizerKind::Adamw,
                args.seed,
            )
        },
        pairing: Pairing::WaveSpec,
        audio: AudioSettings {
            sample_rate: args.sample_rate,
            clip_seconds: args.clip_seconds,
            ..AudioSettings::default()
        },
        test_fold: Some(5),
        wave_arch: WaveArch::Small,
        n_mels: Some(args.n_mels),
        mel_hop: Some(args.mel_hop),
        mlp: args.mlp.clone(),
        lr: args.lr,
        ..PretrainConfig::default()
    };
    cfg.resolve();
    cfg.validate()?;
    pretrain::announce(&cfg, &index)?;
    let t = Instant::now();
    let out = pretrain::pretrain_on(
        &cfg,
        index,
        vicreg_core::engine::ResumeMode::Auto,
        vicreg_core::collective::SingleProcess::group(),
    )?;
    let pretrain_s = t.elapsed().as_secs_f64();

    let probe = vicreg_core::eval::ProbeSettings {
        cfg: vicreg_core::eval::LinearProbeConfig {
            epochs: 100,
            lr: 0.02,
            seed: args.seed,
            ..vicreg_core::eval::LinearProbeConfig::paper()
        },
        select_wd: true,
    };
    let branches = vec![BranchSel::Wave, BranchSel::Spec, BranchSel::Both];
    let opts = EvalOptions {
        protocol: Protocol::Split,
        branches: branches.clone(),
        init: InitKind::Pretrained,
        probe: probe.clone(),
        view: None,
        baselines: true,
        data_dir: None,
        batch_size: 64,
        workers: args.num_workers,
        device: cfg.train.device.clone(),
    };
    let mut rows: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    let t = Instant::now();
    let reports: Vec<EvalReport> = evaluate::run(&cfg.train.exp_dir, &opts)?;
    rows.push((
        "VICReg (wave-spec)".into(),
        reports.iter().map(|r| Some(r.mean_top1)).collect(),
    ));
    let base = reports
        .first()
        .and_then(|r| r.baselines.clone())
        .context("the evaluation returned no baselines")?;
    rows.push((
        "random init".into(),
        base.random_init.iter().map(|r| Some(r.mean_top1)).collect(),
    ));
    let eval_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut sup_cfg = cfg.clone();
    sup_cfg.train.exp_dir = exp_dir.join("supervised");
    sup_cfg.test_fold = None;
    sup_cfg.train.quiet = true;
    let sup = supervised::run(
        &sup_cfg,
        &SupervisedOptions {
            protocol: Protocol::Split,
            branch: BranchSel::Spec,
            epochs: args.supervised_epochs,
            batch_size: args.batch_size,
            lr: 0.05,
            wd: 5e-4,
            probe: probe.clone(),
            view: None,
            workers: args.num_workers,
        },
    )?;
    let sup_s = t.elapsed().as_secs_f64();
    rows.push((
        "supervised (spec, labels)".into(),
        vec![None, Some(sup.mean_top1), None],
    ));

    println!();
    println!(
        "ESC-50-format VICReg demo on built-in synthetic sounds ({} classes, chance {:.0}%): train folds 1-4, test fold 5",
        synth.num_classes,
        100.0 / synth.num_classes as f64
    );
    println!("| encoder | wave repr (1-D ResNet) | spec repr (2-D ResNet) | wave+spec |");
    println!("|---|---|---|---|");
    for (name, cells) in &rows {
        let c: Vec<String> = cells
            .iter()
            .map(|v| v.map_or("-".into(), |x| format!("{x:.1}%")))
            .collect();
        println!("| {name} | {} |", c.join(" | "));
    }
    println!(
        "baselines: {} + linear probe {:.1}%; chance {:.1}% (whole clips: eval view `full`)",
        base.logmel_statistics.name, base.logmel_statistics.mean_top1, base.chance_top1
    );
    println!();
    println!(
        "pretraining {} steps in {:.0} s; probes {:.0} s; supervised {} epochs {:.0} s; total {:.0} s",
        out.summary.global_step,
        pretrain_s,
        eval_s,
        args.supervised_epochs,
        sup_s,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "run directory: {} (vicreg/: config.toml, metrics.jsonl, plots, encoders, classifier; supervised/)",
        exp_dir.display()
    );
    println!(
        "try: esc50-audio classify --exp-dir {} {}",
        cfg.train.exp_dir.display(),
        data_dir.join("audio").join("5-*.wav").display()
    );
    Ok(())
}

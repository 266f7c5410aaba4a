//! `imagenet ablate --grid file.toml --exp-dir E`: every configuration of a
//! grid file (see [`vicreg_core::ablate::GridFile`]) as a normal run directory
//! `E/<run-name>/` (pretraining, then the linear probe and k-NN of the demo),
//! skipping runs finished earlier, then `E/summary.md`, `E/summary.csv`,
//! `E/summary.svg`.
//!
//! Grid files use the keys of `imagenet pretrain --config` in `[base]`,
//! `[grid]` and `[[run]]`, plus two optional tables:
//!
//! - `[data]`: the built-in synthetic set used when `[base]` has no
//!   `data-dir` (`num-classes`, `train-per-class`, `val-per-class`,
//!   `image-size` (px of the generated images), `seed`);
//! - `[eval]`: `probe-epochs`, `probe-lr`, `probe-batch-size`, `knn-k`,
//!   `knn-temperature`.
//!
//! `exp-dir` in a grid is ignored (each run goes to `E/<run-name>`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, ModuleT, Tensor};
use datasets::image::ImageSource;
use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use serde::{Deserialize, Serialize};
use vicreg_core::ablate::{run_ablation, EvalSection, GridFile, RunMetrics, RunPlan};
use vicreg_core::diagnostics::{average_abs_correlation, embedding_std};
use vicreg_core::engine::{last_epoch_losses, load_checkpoint, ResumeMode};
use vicreg_core::model::Expander;
use vicreg_core::recipe::overlay_table;
use vicreg_core::ParamStore;

use crate::config::PretrainConfig;
use crate::{evaluate, pretrain, variants};
use datasets::image::splits;
use vicreg_core::parse_device;

/// Flags of `imagenet ablate`.
#[derive(clap::Args, Debug)]
pub struct AblateArgs {
    /// Grid file (TOML with [base], [grid], [[run]], [data], [eval]); see configs/ablations/.
    #[arg(long)]
    pub grid: PathBuf,
    /// Where the run directories and the summary go.
    #[arg(long)]
    pub exp_dir: PathBuf,
    /// Only list the runs the grid expands to.
    #[arg(long)]
    pub dry_run: bool,
}

/// The app tables a grid file may hold.
const SECTIONS: [&str; 2] = ["data", "eval"];

/// `[data]`: the built-in synthetic image set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataSection {
    /// Classes (1..=10).
    pub num_classes: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Validation images per class.
    pub val_per_class: usize,
    /// Side of the generated images, px.
    pub image_size: u32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            num_classes: 10,
            train_per_class: 100,
            val_per_class: 30,
            image_size: 64,
            seed: 0,
        }
    }
}

impl DataSection {
    /// Checks every key's range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        use crate::config::limits::*;
        check_int("num-classes", self.num_classes, &(1..=10))?;
        check_int("train-per-class", self.train_per_class, &PER_CLASS)?;
        check_int("val-per-class", self.val_per_class, &PER_CLASS)?;
        check_int("image-size", self.image_size, &IMAGE_SIZE)?;
        Ok(())
    }
}

/// The pretraining configuration of one run: the defaults, then the run's
/// table; `exp-dir` is `run_dir`, `data-dir` the grid's or `builtin`.
/// Errors name the grid file, the run and the offending key.
pub fn run_config(
    grid: &GridFile,
    plan: &RunPlan,
    run_dir: &Path,
    builtin: &Path,
) -> Result<PretrainConfig> {
    let mut cfg: PretrainConfig = overlay_table(
        &PretrainConfig::default(),
        plan.config.clone(),
        &format!("{}: run `{}`", grid.path.display(), plan.name),
    )?;
    cfg.train.exp_dir = run_dir.to_path_buf();
    if cfg.data.data_dir.is_none() {
        cfg.data.data_dir = Some(builtin.to_path_buf());
    }
    let dir = cfg.data.data_dir.clone().unwrap_or_default();
    let default_size = if dir == builtin {
        32
    } else {
        splits::default_image_size(&dir)?
    };
    cfg.resolve(default_size);
    cfg.validate().with_context(|| {
        format!(
            "{}: run `{}`: invalid configuration",
            grid.path.display(),
            plan.name
        )
    })?;
    Ok(cfg)
}

/// Embeddings of representations `repr` by the run's trained expander (eval mode),
/// read from the run's checkpoint.
fn embeddings(cfg: &PretrainConfig, repr: &Tensor) -> Result<Tensor> {
    let path = cfg.train.exp_dir.join("checkpoint.safetensors");
    let ckpt = load_checkpoint(&path)?;
    let model = ckpt.section("model/");
    let prefix = variants::projector_prefix(cfg);
    let weights = model
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .collect();
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F32, repr.device());
    let exp = Expander::new(repr.dim(1)?, &variants::expander_config(cfg), vb)?;
    store.load_tensors(&weights, false, &path)?;
    Ok(exp.forward_t(repr, false)?)
}

/// Pretrains and evaluates one run.
fn run_one(cfg: &PretrainConfig, eval: &EvalSection) -> Result<RunMetrics> {
    let t = Instant::now();
    let data_dir = cfg
        .data
        .data_dir
        .clone()
        .context("data-dir must be resolved")?;
    let source = splits::open_split(&data_dir, "train", cfg.data.strict)?;
    let out = pretrain::pretrain_on(
        cfg,
        source,
        ResumeMode::Auto,
        vicreg_core::collective::SingleProcess::group(),
    )?;
    let device = parse_device(&cfg.train.device)?;
    let size = cfg.image_size.context("image-size must be resolved")?;
    let net = evaluate::backbone(&cfg.arch, Some(&cfg.train.exp_dir), cfg.train.seed, &device)?;
    let (tr, va, names) = evaluate::split_features(
        &net,
        &data_dir,
        size,
        100.0,
        None,
        cfg.train.seed,
        cfg.data.num_workers,
        &device,
    )?;
    let classes = names.len();
    let dir = Some(cfg.train.exp_dir.as_path());
    let lin = evaluate::linear_eval(&tr, &va, classes, &eval.probe(cfg.train.seed), dir)?;
    let k = evaluate::knn_eval(&tr, &va, classes, &eval.knn(), dir)?;
    let emb = embeddings(cfg, &va.x)?;
    Ok(RunMetrics {
        linear_top1: Some(lin.top1),
        knn_top1: k.first().map(|x| x.1),
        loss_terms: last_epoch_losses(&cfg.train.exp_dir.join("metrics.jsonl"))?,
        corr_repr: Some(average_abs_correlation(&va.x)?),
        corr_emb: Some(average_abs_correlation(&emb)?),
        std_emb: Some(embedding_std(&emb)?.mean),
        seconds: t.elapsed().as_secs_f64(),
        extra: vec![("steps".into(), out.summary.global_step as f64)],
    })
}

/// `imagenet ablate`.
pub fn run(args: AblateArgs) -> Result<()> {
    let grid = GridFile::load(&args.grid, &SECTIONS)?;
    let data_cfg: DataSection = grid.section_as("data")?;
    data_cfg
        .validate()
        .with_context(|| format!("{}: [data]", grid.path.display()))?;
    let eval: EvalSection = grid.section_as("eval")?;
    eval.validate()
        .with_context(|| format!("{}: [eval]", grid.path.display()))?;
    let synth = SynthImageConfig {
        seed: data_cfg.seed,
        image_size: data_cfg.image_size,
        num_classes: data_cfg.num_classes,
        train_per_class: data_cfg.train_per_class,
        val_per_class: data_cfg.val_per_class,
        ..SynthImageConfig::default()
    };
    let builtin = datasets::cache_dir().join(format!(
        "synth-images-{}c-{}-{}-{}px-s{}",
        synth.num_classes, synth.train_per_class, synth.val_per_class, synth.image_size, synth.seed
    ));
    // Every configuration is checked before anything runs.
    let plans = grid.plan()?;
    let mut configs = Vec::with_capacity(plans.len());
    for plan in &plans {
        configs.push(run_config(
            &grid,
            plan,
            &args.exp_dir.join(&plan.name),
            &builtin,
        )?);
    }
    let title = grid
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "ablation".into());
    if args.dry_run {
        for (plan, cfg) in plans.iter().zip(&configs) {
            println!(
                "{}: loss {}, {} epochs, batch {}, mlp {} -> {}",
                plan.name,
                cfg.criterion.loss,
                cfg.train.epochs,
                cfg.train.batch_size,
                cfg.mlp,
                cfg.train.exp_dir.display()
            );
        }
        return Ok(());
    }
    if configs
        .iter()
        .any(|c| c.data.data_dir.as_deref() == Some(builtin.as_path()))
    {
        let rep = generate_image_folder(&builtin, &synth)?;
        eprintln!(
            "built-in data: {} ({}; {} classes x {} train / {} val images, {} px)",
            builtin.display(),
            if rep.reused { "reused" } else { "generated" },
            synth.num_classes,
            synth.train_per_class,
            synth.val_per_class,
            synth.image_size
        );
        let n = splits::open_split(&builtin, "train", false)?.len();
        if n == 0 {
            bail!("{}: no training images", builtin.display());
        }
    }
    let t0 = Instant::now();
    let summary = run_ablation(&grid, &args.exp_dir, &title, |plan, dir| {
        let cfg = run_config(&grid, plan, dir, &builtin)?;
        run_one(&cfg, &eval)
    })?;
    println!("{}", summary.markdown);
    for f in &summary.files {
        println!("{}", f.display());
    }
    println!("total {:.0} s", t0.elapsed().as_secs_f64());
    let failed = summary.failed();
    if !failed.is_empty() {
        bail!(
            "{} of {} runs failed (see the table); run the same command again to retry them",
            failed.len(),
            summary.records.len()
        );
    }
    Ok(())
}

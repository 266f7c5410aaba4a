//! `tabular`: VICReg between two tables that describe the same rows, a whole
//! app on the recipe layer. What is its own: the data (two CSV files), the
//! encoder (an MLP per table, not shared) and its two flags; the flags and
//! config file of the run, resume, plots, metrics and multi-process come from
//! `vicreg_core::{recipe, engine, collective}`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use clap::{Parser, Subcommand};
use datasets::synth_tables::write_paired_tables;
use datasets::table::{read_csv, Table};
use serde::{Deserialize, Serialize};
use vicreg_core::collective::{micro_batch, sync_bn_scope, Launch};
use vicreg_core::engine::{FnSource, PairBatch, ResumeMode, Trainer};
use vicreg_core::loss::VicRegLoss;
use vicreg_core::model::{linear_torch_init, Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::recipe::{overlay, RunFlags, RunSettings};
use vicreg_core::{ParamStore, SeededRng};

#[derive(Parser)]
#[command(
    name = "tabular",
    about = "VICReg between two tables that describe the same rows"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a synthetic pair of tables (DIR/a.csv, DIR/b.csv).
    MakeData {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2048)]
        rows: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Pretrain one MLP per table on DATA-DIR/a.csv and DATA-DIR/b.csv.
    Pretrain(Box<PretrainArgs>),
}

/// `--config` (a TOML file with `[run]` and `[tabular]` sections), `--resume`
/// and every key as a flag.
#[derive(clap::Args, Serialize)]
struct PretrainArgs {
    #[command(flatten)]
    run: RunFlags,
    #[command(flatten)]
    tabular: TabularFlags,
}

/// This app's own keys, `[tabular]` in a config file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TabularSettings {
    /// Folder with a.csv and b.csv.
    data_dir: PathBuf,
    /// Width of each encoder's hidden layer and representation.
    hidden: usize,
    /// Expander widths, e.g. 256-256-256.
    mlp: String,
}

impl Default for TabularSettings {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            hidden: 64,
            mlp: "256-256-256".into(),
        }
    }
}

#[derive(clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
struct TabularFlags {
    /// Folder with a.csv and b.csv.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Width of each encoder's hidden layer and representation. Range 1..=65536.
    #[arg(long, value_parser = vicreg_core::limits::int::<usize>(vicreg_core::limits::WIDTH))]
    hidden: Option<usize>,
    /// Expander widths, e.g. 256-256-256.
    #[arg(long)]
    mlp: Option<String>,
}

/// The whole configuration, as written to `<exp-dir>/config.toml`.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    run: RunSettings,
    tabular: TabularSettings,
}

/// Two-layer MLP over `(batch, columns)` rows.
struct Mlp(Linear, Linear);

impl Encoder for Mlp {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> vicreg_core::Result<Tensor> {
        Ok(self.1.forward(&self.0.forward(x)?.relu()?)?)
    }
    fn repr_dim(&self) -> usize {
        self.1.weight().dims()[0]
    }
}

fn branch(cols: usize, t: &TabularSettings, vb: VarBuilder) -> Result<Branch<Mlp>> {
    let enc = Mlp(
        linear_torch_init(cols, t.hidden, true, vb.pp("encoder.l1"))?,
        linear_torch_init(t.hidden, t.hidden, true, vb.pp("encoder.l2"))?,
    );
    Ok(Branch::new(
        enc,
        &ExpanderConfig::with_mlp(&t.mlp),
        vb.pp("projector"),
    )?)
}

fn pretrain(args: PretrainArgs) -> Result<()> {
    let mut cfg: Config = overlay(&Config::default(), args.run.train.config.as_deref(), &args)?;
    cfg.run.validate()?;
    let launch = Launch::for_run(&mut cfg.run.train, 1)?;
    let result = train(&cfg, args.run.train.resume_mode(), &launch);
    launch.finish(result)
}

fn train(cfg: &Config, resume: ResumeMode, launch: &Launch) -> Result<()> {
    let (run, t) = (&cfg.run.train, &cfg.tabular);
    let a = read_csv(&t.data_dir.join("a.csv"))?;
    let b = read_csv(&t.data_dir.join("b.csv"))?;
    if a.rows != b.rows {
        bail!(
            "{}: a.csv has {} rows, b.csv {}: row i of one must describe row i of the other",
            t.data_dir.display(),
            a.rows,
            b.rows
        );
    }
    let (world, rank) = (launch.world(), launch.rank());
    let micro = micro_batch(run.batch_size, world, 1)?;
    let per_epoch = a.rows / run.batch_size;
    if per_epoch == 0 {
        bail!(
            "{} rows make no full batch of {}; lower --batch-size",
            a.rows,
            run.batch_size
        );
    }
    let device = vicreg_core::parse_device(&run.device)?;
    let store = ParamStore::new(run.seed);
    let vb = store.var_builder(DType::F32, &device);
    let model = JointEmbedding::new(
        branch(a.cols, t, vb.pp("a"))?,
        branch(b.cols, t, vb.pp("b"))?,
    );
    let rows = |tab: &Table, idx: &[usize]| -> vicreg_core::Result<Tensor> {
        let v: Vec<f32> = idx
            .iter()
            .flat_map(|&r| tab.values[r * tab.cols..(r + 1) * tab.cols].iter().copied())
            .collect();
        Ok(Tensor::from_vec(v, (idx.len(), tab.cols), &device)?)
    };
    // Batch i of an epoch: this rank's share of the epoch's seeded
    // permutation of the rows (drawn once per epoch).
    let mut order: (usize, Vec<usize>) = (usize::MAX, Vec::new());
    let mut source = FnSource::new(per_epoch, |epoch: usize, i: usize| {
        if order.0 != epoch {
            order = (
                epoch,
                SeededRng::derive(run.seed, &[epoch as u64]).permutation(a.rows),
            );
        }
        let idx = &order.1[i * run.batch_size + rank * micro..][..micro];
        Ok(PairBatch::new(rows(&a, idx)?, rows(&b, idx)?, micro))
    });
    let _sync = sync_bn_scope(run.sync_bn, &launch.collective());
    let mut trainer = Trainer::builder(&model, &store, cfg.run.train_config(resume))
        .loss(Box::new(VicRegLoss::new(cfg.run.vicreg())?))
        .collective(launch.collective())
        .run_dir(&run.exp_dir, cfg)
        .export("a", "a.encoder.")
        .export("b", "b.encoder.")
        .build()?;
    let summary = trainer.fit(&mut source)?;
    if rank == 0 {
        println!(
            "done: {} steps; encoders: {}",
            summary.global_step,
            run.exp_dir.display()
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::MakeData { out, rows, seed } => write_paired_tables(&out, rows, seed)
            .with_context(|| format!("writing the synthetic tables into {}", out.display())),
        Cmd::Pretrain(args) => pretrain(*args),
    }
}

//! `tabular`: VICReg between two tables that describe the same rows, a whole
//! app on the recipe layer. What is its own: the encoder (an MLP per table,
//! not shared), its keys and their checks; the data and its seeded, sharded
//! batches are `datasets::paired_tables`; the flags and config file of the
//! run, `check-config`, `plot`, resume, metrics and multi-process come from
//! `vicreg_core::{recipe, engine, collective}`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{DType, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use clap::{Parser, Subcommand};
use datasets::paired_tables::PairedTables;
use datasets::synth_tables::write_paired_tables;
use serde::{Deserialize, Serialize};
use vicreg_core::collective::{micro_batch, sync_bn_scope, Launch};
use vicreg_core::engine::{ResumeMode, Trainer};
use vicreg_core::limits::{check_int, WIDTH};
use vicreg_core::loss::VicRegLoss;
use vicreg_core::model::{linear_torch_init, Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::recipe::{AppConfig, CommonCommand, RunFlags, RunSettings};
use vicreg_core::{BoxError, ParamStore};

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
    #[command(flatten)]
    Common(CommonCommand),
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
    #[arg(long, value_parser = vicreg_core::limits::int::<usize>(WIDTH))]
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

impl AppConfig for Config {
    const APP: &'static str = "tabular";
    fn validate_ranges(&self) -> std::result::Result<(), BoxError> {
        self.run.validate()?;
        Ok(check_int("hidden", self.tabular.hidden, &WIDTH)?)
    }
    fn resolve_and_validate(&mut self) -> std::result::Result<(), BoxError> {
        self.validate_ranges()?;
        Ok(vicreg_core::model::parse_mlp_spec(&self.tabular.mlp).map(drop)?)
    }
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
    let file = args.run.train.config.as_deref();
    let mut cfg = Config::from_file_and_flags(file, &Config::default(), &args)?;
    cfg.resolve_and_validate()
        .map_err(anyhow::Error::from_boxed)?;
    let launch = Launch::for_run(&mut cfg.run.train, 1)?;
    let result = train(&cfg, args.run.train.resume_mode(), &launch);
    launch.finish(result)
}

fn train(cfg: &Config, resume: ResumeMode, launch: &Launch) -> Result<()> {
    let (run, t) = (&cfg.run.train, &cfg.tabular);
    let data = PairedTables::read(&t.data_dir)?;
    let (world, rank) = (launch.world(), launch.rank());
    let micro = micro_batch(run.batch_size, world, 1)?;
    let device = vicreg_core::parse_device(&run.device)?;
    let mut source = data.batches(run.seed, run.batch_size, (micro, rank), &device)?;
    let store = ParamStore::new(run.seed);
    let vb = store.var_builder(DType::F32, &device);
    let model = JointEmbedding::new(
        branch(data.a.cols, t, vb.pp("a"))?,
        branch(data.b.cols, t, vb.pp("b"))?,
    );
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

fn main() {
    vicreg_core::recipe::exit_on_error(|| match Cli::parse().cmd {
        Cmd::MakeData { out, rows, seed } => write_paired_tables(&out, rows, seed)
            .with_context(|| format!("writing the synthetic tables into {}", out.display())),
        Cmd::Pretrain(args) => pretrain(*args),
        Cmd::Common(c) => Ok(c.run::<Config>()?),
    });
}

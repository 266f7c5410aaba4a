//! `esc50-audio`: VICReg on raw audio in the ESC-50 layout — the paper's
//! non-shared waveform / log-mel branches (or two waveform views through one
//! encoder), linear evaluation with 5-fold cross-validation or the 1600/400
//! split, a supervised baseline, and classification of wav files.
//!
//! With no arguments it runs the built-in demo (see the README).

mod baselines;
mod classify;
mod cli;
mod config;
mod demo;
mod embed;
mod evaluate;
mod head;
mod model;
mod pretrain;
mod supervised;
mod variants;

use anyhow::Result;
use clap::Parser;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = cli::Cli::parse();
    cli::dispatch(args)
}

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

use clap::Parser;

fn main() {
    vicreg_core::recipe::exit_on_error(|| cli::dispatch(cli::Cli::parse()));
}

//! `coco-retrieval`: image-text VICReg with non-shared encoders (a ResNet for
//! images, a transformer or GRU for captions, each with its own expander) on
//! COCO captions, evaluated by cross-modal retrieval.
//!
//! With no arguments it runs the built-in demo (see the README).

mod cli;
mod config;
mod demo;
mod embed;
mod evaluate;
mod gallery;
mod model;
mod pretrain;
mod retrieve;
mod text;

use clap::Parser;

fn main() {
    vicreg_core::recipe::exit_on_error(|| cli::dispatch(cli::Cli::parse()));
}

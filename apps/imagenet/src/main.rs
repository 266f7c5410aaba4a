//! `imagenet`: siamese VICReg pretraining of a ResNet and its evaluation
//! (linear probe, semi-supervised subsets, k-NN), on ImageNet-layout folders,
//! IDX files (Fashion-MNIST) or the built-in synthetic images.
//!
//! With no arguments it runs the built-in demo (see the README).

mod ablate;
mod baselines;
mod cli;
mod config;
mod demo;
mod dense_eval;
mod embed;
mod eval_commands;
mod evaluate;
mod model;
mod pretrain;
mod variants;

use clap::Parser;

fn main() {
    vicreg_core::recipe::exit_on_error(|| cli::dispatch(cli::Cli::parse()));
}

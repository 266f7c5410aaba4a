//! Data-parallel pretraining under `mpirun` (cargo feature `mpi`; needs Open
//! MPI's `mpirun` on the PATH): `mpirun -np 2` with the global batch split in
//! two (synchronized BatchNorm, the default with several processes) ends with
//! the weights of one process on the whole batch, for both branches of the
//! paper's wave-spec model; without synchronized BatchNorm it does not.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};
use vicreg_tests::bad_input::fresh_dir;
use vicreg_tests::mpi_run::{
    check_odd_batch_is_refused, check_two_ranks_equal_one, data_once, with_dirs,
};

/// The generated ESC-50-format set (40 clips of 0.25 s at 8 kHz).
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    data_once(&DATA, "esc50-mpi-data", |d| {
        generate_synth_esc50(d, &SynthAudioConfig::tiny()).unwrap();
    })
}

fn exp_dir(name: &str) -> PathBuf {
    fresh_dir("esc50-mpi", name)
}

/// The tiny wave-spec run: global batch 8 over 40 clips (5 steps per
/// epoch), 2 epochs, LARS.
fn pretrain_args(exp: &Path) -> Vec<String> {
    with_dirs(
        &[
            "pretrain",
            "--sample-rate",
            "8000",
            "--clip-seconds",
            "0.25",
            "--wave-arch",
            "tiny",
            "--n-mels",
            "32",
            "--mlp",
            "32-32",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--warmup-epochs",
            "0",
            "--num-workers",
            "1",
            // LARS, as the official recipe: AdamW's first steps turn the f32
            // rounding noise of near-zero gradients (BatchNorm biases of the
            // spectrogram branch on this tiny set) into +-lr updates, so two
            // bit-different but equally correct reductions end apart.
            "--optimizer",
            "lars",
            "--lr",
            "0.1",
            "--quiet",
        ],
        data(),
        exp,
    )
}

const BIN: &str = env!("CARGO_BIN_EXE_esc50-audio");

#[test]
fn two_ranks_with_half_batches_train_the_weights_of_one_process() {
    let (one, two, local) = (exp_dir("one"), exp_dir("two"), exp_dir("local"));
    check_two_ranks_equal_one(
        BIN,
        pretrain_args,
        [&one, &two, &local],
        &["wave", "spec"],
        &["wave", "spec"],
    );
    assert!(
        two.join("pretrain_clips.txt").is_file(),
        "rank 0 lists the clips"
    );
    for d in [one, two, local] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_global_batch_that_does_not_split_is_refused_before_training() {
    check_odd_batch_is_refused(BIN, pretrain_args, &exp_dir("odd"));
}

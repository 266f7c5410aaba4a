//! `mpirun -np 2 tabular pretrain` (cargo feature `mpi`) trains the weights
//! of one process on the whole batch: the recipe layer's launch and the
//! rank-sharded batches give a new app multi-process training.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vicreg_tests::bad_input::fresh_dir;
use vicreg_tests::mpi_run::{
    check_odd_batch_is_refused, check_two_ranks_equal_one, data_once, with_dirs,
};

const BIN: &str = env!("CARGO_BIN_EXE_tabular");

fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    data_once(&DATA, "tabular-mpi-data", |d| {
        let ok = std::process::Command::new(BIN)
            .args(["make-data", "--rows", "256", "--out"])
            .arg(d)
            .status()
            .unwrap();
        assert!(ok.success());
    })
}

fn exp_dir(name: &str) -> PathBuf {
    fresh_dir("tabular-mpi", name)
}

fn pretrain_args(exp: &Path) -> Vec<String> {
    with_dirs(
        &[
            "pretrain",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--warmup-epochs",
            "0",
            "--quiet",
        ],
        data(),
        exp,
    )
}

#[test]
fn two_ranks_with_half_batches_train_the_weights_of_one_process() {
    let (one, two, local) = (exp_dir("one"), exp_dir("two"), exp_dir("local"));
    check_two_ranks_equal_one(
        BIN,
        pretrain_args,
        [&one, &two, &local],
        &["a", "b"],
        &["a", "b"],
    );
    for d in [one, two, local] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_global_batch_that_does_not_split_is_refused_before_training() {
    check_odd_batch_is_refused(BIN, pretrain_args, &exp_dir("odd"));
}

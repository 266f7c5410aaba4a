//! Data-parallel pretraining under `mpirun` (cargo feature `mpi`; needs Open
//! MPI's `mpirun` on the PATH): `mpirun -np 2` with the global batch split in
//! two (synchronized BatchNorm, the default with several processes) ends with
//! the image and text encoder weights of one process on the whole batch;
//! rank 0 alone writes the tokenizer and the model. Without synchronized
//! BatchNorm the image encoder ends elsewhere.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
use vicreg_tests::bad_input::fresh_dir;
use vicreg_tests::mpi_run::{
    check_odd_batch_is_refused, check_two_ranks_equal_one, data_once, with_dirs,
};

const BIN: &str = env!("CARGO_BIN_EXE_coco-retrieval");

/// The generated COCO-layout set (24 captioned training images).
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    data_once(&DATA, "coco-mpi-data", |d| {
        generate_synth_coco(d, &SynthCaptionsConfig::tiny()).unwrap();
    })
}

fn exp_dir(name: &str) -> PathBuf {
    fresh_dir("coco-mpi", name)
}

/// ResNet-18 at 24 px + a 1-layer width-32 transformer without dropout (so
/// that no random mask depends on how the batch is split), global batch 8
/// (3 steps per epoch), 2 epochs, LARS.
fn pretrain_args(exp: &Path) -> Vec<String> {
    with_dirs(
        &[
            "pretrain",
            "--image-arch",
            "resnet18",
            "--image-size",
            "24",
            "--text-hidden",
            "32",
            "--text-layers",
            "1",
            "--text-heads",
            "2",
            "--text-dropout",
            "0",
            "--mlp",
            "64-64",
            "--batch-size",
            "8",
            "--epochs",
            "2",
            "--warmup-epochs",
            "0",
            "--optimizer",
            "lars",
            "--num-workers",
            "1",
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
        &["image", "text"],
        &["image"],
    );
    for file in ["tokenizer.json", "model.safetensors"] {
        assert!(two.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read(one.join("tokenizer.json")).unwrap(),
        std::fs::read(two.join("tokenizer.json")).unwrap(),
        "the 2-rank run trained another tokenizer"
    );
    for d in [one, two, local] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_global_batch_that_does_not_split_is_refused_before_training() {
    check_odd_batch_is_refused(BIN, pretrain_args, &exp_dir("odd"));
}

//! Data-parallel pretraining under `mpirun` (cargo feature `mpi`; needs Open
//! MPI's `mpirun` on the PATH): `mpirun -np 2` with the global batch split in
//! two (synchronized BatchNorm, the default with several processes) ends with
//! the image and text encoder weights of one process on the whole batch;
//! rank 0 alone writes the tokenizer and the model. Without synchronized
//! BatchNorm the image encoder ends elsewhere.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
use vicreg_tests::mpi_run::{
    encoder_weights, max_rel_diff, mpirun, must_succeed, run_bounded, single,
};

const BIN: &str = env!("CARGO_BIN_EXE_coco-retrieval");
const BRANCHES: &[&str] = &["image", "text"];
const LIMIT: Duration = Duration::from_secs(300);

/// The generated COCO-layout set (24 captioned training images).
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("coco-mpi-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        generate_synth_coco(&d, &SynthCaptionsConfig::tiny()).unwrap();
        d
    })
}

fn exp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("coco-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// ResNet-18 at 24 px + a 1-layer width-32 transformer without dropout (so
/// that no random mask depends on how the batch is split), global batch 8
/// (3 steps per epoch), 2 epochs, LARS.
fn pretrain_args(exp: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push("--data-dir".into());
    a.push(data().display().to_string());
    a.push("--exp-dir".into());
    a.push(exp.display().to_string());
    a
}

#[test]
fn two_ranks_with_half_batches_train_the_weights_of_one_process() {
    let one = exp_dir("one");
    must_succeed(single(BIN, &pretrain_args(&one)), LIMIT, "one process");
    let two = exp_dir("two");
    let f = must_succeed(
        mpirun(2, BIN, &pretrain_args(&two), &[]),
        LIMIT,
        "mpirun -np 2",
    );
    println!("mpirun -np 2 took {:.1} s", f.seconds);

    let (d, name) = max_rel_diff(
        &encoder_weights(&one, BRANCHES),
        &encoder_weights(&two, BRANCHES),
    );
    println!("2 ranks vs 1 process: max relative weight difference {d:.2e} ({name})");
    assert!(
        d < 1e-4,
        "2 ranks vs 1 process: {name} differs by {d:.3e} (relative)"
    );
    let cfg = std::fs::read_to_string(two.join("config.toml")).unwrap();
    assert!(cfg.contains("sync-bn = true"), "{cfg}");
    for file in ["tokenizer.json", "model.safetensors"] {
        assert!(two.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read(one.join("tokenizer.json")).unwrap(),
        std::fs::read(two.join("tokenizer.json")).unwrap(),
        "the 2-rank run trained another tokenizer"
    );

    // Control: per-rank BatchNorm statistics give other image weights.
    let local = exp_dir("local");
    let mut args = pretrain_args(&local);
    args.extend(["--sync-bn".to_string(), "false".to_string()]);
    must_succeed(mpirun(2, BIN, &args, &[]), LIMIT, "mpirun without sync-bn");
    let (d, _) = max_rel_diff(
        &encoder_weights(&one, &["image"]),
        &encoder_weights(&local, &["image"]),
    );
    println!("2 ranks without sync-bn vs 1 process: {d:.2e}");
    assert!(
        d > 1e-3,
        "without sync-bn the weights should differ, max relative diff {d:.3e}"
    );
    for d in [one, two, local] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_global_batch_that_does_not_split_is_refused_before_training() {
    let exp = exp_dir("odd");
    let mut args = pretrain_args(&exp);
    let i = args.iter().position(|a| a == "--batch-size").unwrap();
    args[i + 1] = "7".into();
    let f = run_bounded(mpirun(2, BIN, &args, &[]), Duration::from_secs(120));
    assert!(
        !f.success,
        "batch 7 over 2 ranks should fail; output:\n{}",
        f.output
    );
    assert!(f.output.contains("batch-size 7"), "{}", f.output);
    assert!(!exp.join("checkpoint.json").exists());
}

//! Data-parallel pretraining under `mpirun` (cargo feature `mpi`; needs Open
//! MPI's `mpirun` on the PATH): `mpirun -np 2` with the global batch split in
//! two (synchronized BatchNorm, the default with several processes) ends with
//! the weights of one process on the whole batch, for both branches of the
//! paper's wave-spec model; without synchronized BatchNorm it does not.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use datasets::synth_audio::{generate_synth_esc50, SynthAudioConfig};
use vicreg_tests::mpi_run::{
    encoder_weights, max_rel_diff, mpirun, must_succeed, run_bounded, single,
};

/// The generated ESC-50-format set (40 clips of 0.25 s at 8 kHz).
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("esc50-mpi-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        generate_synth_esc50(&d, &SynthAudioConfig::tiny()).unwrap();
        d
    })
}

fn exp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("esc50-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The tiny wave-spec run: global batch 8 over 40 clips (5 steps per
/// epoch), 2 epochs, LARS.
fn pretrain_args(exp: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
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

const BIN: &str = env!("CARGO_BIN_EXE_esc50-audio");
const BRANCHES: &[&str] = &["wave", "spec"];
const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn two_ranks_with_half_batches_train_the_weights_of_one_process() {
    let one = exp_dir("one");
    must_succeed(single(BIN, &pretrain_args(&one)), LIMIT, "one process");
    let two = exp_dir("two");
    must_succeed(
        mpirun(2, BIN, &pretrain_args(&two), &[]),
        LIMIT,
        "mpirun -np 2",
    );

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
    assert!(
        two.join("pretrain_clips.txt").is_file(),
        "rank 0 lists the clips"
    );

    // Control: per-rank BatchNorm statistics give other weights.
    let local = exp_dir("local");
    let mut args = pretrain_args(&local);
    args.extend(["--sync-bn".to_string(), "false".to_string()]);
    must_succeed(mpirun(2, BIN, &args, &[]), LIMIT, "mpirun without sync-bn");
    let (d, _) = max_rel_diff(
        &encoder_weights(&one, BRANCHES),
        &encoder_weights(&local, BRANCHES),
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

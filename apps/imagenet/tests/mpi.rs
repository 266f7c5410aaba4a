//! Data-parallel pretraining under `mpirun` (cargo feature `mpi`; needs Open
//! MPI's `mpirun` on the PATH):
//!
//! - `mpirun -np 2` with the global batch split in two (synchronized
//!   BatchNorm, the default with several processes) ends with the weights of
//!   one process on the whole batch, within f32 tolerance; without
//!   synchronized BatchNorm it does not (so the comparison can fail);
//! - a rank that is killed, panics or hangs mid-run ends the whole job with a
//!   non-zero status and a clear message within a bounded time (the test-only
//!   fault hook `VICREG_MPI_FAULT=RANK:CALL:KIND` of the MPI backend);
//! - a 2-rank job killed mid-run and started again with the same command
//!   resumes from rank 0's checkpoint and ends with the weights of the
//!   uninterrupted 2-rank job; resuming with another world size is refused.
#![cfg(feature = "mpi")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use candle_core::Tensor;
use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_tests::bad_input::fresh_dir;
use vicreg_tests::mpi_run::{
    self, data_once, encoder_weights, max_rel_diff, run_bounded, with_dirs, Finished,
};

/// The generated image folder, shared by every test.
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    data_once(&DATA, "imagenet-mpi-data", |d| {
        let cfg = SynthImageConfig {
            train_per_class: 4,
            val_per_class: 1,
            num_classes: 4,
            image_size: 24,
            ..SynthImageConfig::default()
        };
        generate_image_folder(d, &cfg).unwrap();
    })
}

fn exp_dir(name: &str) -> PathBuf {
    fresh_dir("imagenet-mpi", name)
}

/// `pretrain` arguments of the tiny run: ResNet-18, 16 px crops, global
/// batch 8 over 16 images (2 steps per epoch), 2 epochs, f32 on the CPU.
fn pretrain_args(exp: &Path) -> Vec<String> {
    with_dirs(
        &[
            "pretrain",
            "--arch",
            "resnet18",
            "--mlp",
            "32-32",
            "--batch-size",
            "8",
            "--image-size",
            "16",
            "--epochs",
            "2",
            "--warmup-epochs",
            "0",
            "--num-workers",
            "1",
            "--quiet",
        ],
        data(),
        exp,
    )
}

const BIN: &str = env!("CARGO_BIN_EXE_imagenet");

/// The app alone (one process).
fn single(args: &[String]) -> Command {
    mpi_run::single(BIN, args)
}

/// `mpirun -np 2` of the app with `env` added.
fn mpirun2(args: &[String], env: &[(&str, &str)]) -> Command {
    mpi_run::mpirun(2, BIN, args, env)
}

fn must_succeed(f: &Finished, what: &str) {
    assert!(f.success, "{what} failed; output:\n{}", f.output);
}

fn weights(exp: &Path) -> HashMap<String, Tensor> {
    encoder_weights(exp, &["resnet18"])
}

/// The uninterrupted 2-rank run (synchronized BatchNorm), shared by the tests
/// that compare against it.
fn two_rank_run() -> &'static Path {
    static TWO: OnceLock<PathBuf> = OnceLock::new();
    TWO.get_or_init(|| {
        let two = exp_dir("two");
        let f = run_bounded(mpirun2(&pretrain_args(&two), &[]), Duration::from_secs(240));
        must_succeed(&f, "mpirun -np 2");
        println!("mpirun -np 2 took {:.1} s", f.seconds);
        two
    })
}

/// The `global_step` recorded in a run directory's checkpoint.json.
fn checkpoint_step(exp: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(exp.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("global_step")?.as_u64()
}

#[test]
fn two_ranks_with_half_batches_train_the_weights_of_one_process() {
    let limit = Duration::from_secs(240);
    let one = exp_dir("one");
    must_succeed(
        &run_bounded(single(&pretrain_args(&one)), limit),
        "one process",
    );

    let two = two_rank_run();
    let (d, name) = max_rel_diff(&weights(&one), &weights(two));
    println!("2 ranks vs 1 process: max relative weight difference {d:.2e} ({name})");
    assert!(
        d < 1e-4,
        "2 ranks vs 1 process: {name} differs by {d:.3e} (relative)"
    );
    let cfg = std::fs::read_to_string(two.join("config.toml")).unwrap();
    assert!(cfg.contains("sync-bn = true"), "{cfg}");
    let ckpt = std::fs::read_to_string(two.join("checkpoint.json")).unwrap_or_default();
    assert!(
        ckpt.contains("\"world_size\": 2") || ckpt.contains("\"world_size\":2"),
        "{ckpt}"
    );

    // Control: per-rank BatchNorm statistics give other weights.
    let local = exp_dir("local");
    let mut args = pretrain_args(&local);
    args.extend(["--sync-bn".to_string(), "false".to_string()]);
    must_succeed(
        &run_bounded(mpirun2(&args, &[]), limit),
        "mpirun without sync-bn",
    );
    let (d, _) = max_rel_diff(&weights(&one), &weights(&local));
    println!("2 ranks without sync-bn vs 1 process: {d:.2e}");
    assert!(
        d > 1e-3,
        "without sync-bn the weights should differ, max relative diff {d:.3e}"
    );
}

/// Runs the tiny pretraining with a fault on rank 1 at its `call`-th
/// collective; returns the job's stderr after checking it failed in time.
fn faulty_run(name: &str, kind: &str, extra: &[&str], within: Duration) -> Finished {
    let exp = exp_dir(name);
    let mut args = pretrain_args(&exp);
    args.extend(extra.iter().map(|s| s.to_string()));
    let fault = format!("1:150:{kind}");
    let f = run_bounded(mpirun2(&args, &[("VICREG_MPI_FAULT", &fault)]), within);
    assert!(
        !f.success,
        "{kind}: the job should fail; stderr:\n{}",
        f.output
    );
    assert!(
        f.output.contains("VICREG_MPI_FAULT"),
        "{kind}: the fault was not injected; stderr:\n{}",
        f.output
    );
    f
}

#[test]
fn a_killed_rank_ends_the_job() {
    let f = faulty_run("kill", "kill", &[], Duration::from_secs(120));
    assert!(
        f.output.contains("signal 9") || f.output.contains("Killed"),
        "mpirun should report the killed rank; stderr:\n{}",
        f.output
    );
    println!("killed rank: job ended in {:.1} s", f.seconds);
}

#[test]
fn a_panicking_rank_aborts_the_job() {
    let f = faulty_run("panic", "panic", &[], Duration::from_secs(120));
    assert!(
        f.output
            .contains("rank 1 of 2 panicked; aborting the MPI job"),
        "stderr:\n{}",
        f.output
    );
    println!("panicking rank: job ended in {:.1} s", f.seconds);
}

#[test]
fn a_hung_rank_trips_the_collective_timeout_of_the_others() {
    let f = faulty_run(
        "hang",
        "hang",
        // 10 s: long enough that a rank merely slowed down by the other
        // tests running in parallel does not trip it before the injected hang.
        &["--collective-timeout", "10"],
        Duration::from_secs(120),
    );
    assert!(
        f.output.contains("rank 0 of 2: MPI")
            && f.output
                .contains("did not complete within 10 s (collective timeout)"),
        "stderr:\n{}",
        f.output
    );
    println!("hung rank: job ended in {:.1} s", f.seconds);
}

#[test]
fn a_killed_two_rank_job_resumes_to_the_weights_of_the_uninterrupted_one() {
    let limit = Duration::from_secs(240);
    let exp = exp_dir("resume");
    let mut args = pretrain_args(&exp);
    args.extend(["--checkpoint-every".to_string(), "1".to_string()]);
    // Rank 1 SIGKILLs itself at its 300th collective: a few steps in (a step
    // of this tiny run takes 100-200 collectives with synchronized BatchNorm).
    let f = run_bounded(mpirun2(&args, &[("VICREG_MPI_FAULT", "1:300:kill")]), limit);
    assert!(
        !f.success,
        "the killed job should fail; stderr:\n{}",
        f.output
    );
    let at_kill = checkpoint_step(&exp).expect("a checkpoint written before the kill");
    assert!(
        (1..4).contains(&at_kill),
        "the kill should come mid-run (4 steps), checkpoint at step {at_kill}"
    );

    // The same command again (without --quiet, to see its resume line)
    // resumes from rank 0's checkpoint.
    let loud: Vec<String> = args.iter().filter(|a| *a != "--quiet").cloned().collect();
    let f = run_bounded(mpirun2(&loud, &[]), limit);
    must_succeed(&f, "resumed mpirun -np 2");
    assert!(
        f.output.contains("resuming from") && f.output.contains(&format!("at step {at_kill}")),
        "the second job should resume at step {at_kill}; stderr:\n{}",
        f.output
    );
    assert_eq!(checkpoint_step(&exp), Some(4));
    let (d, name) = max_rel_diff(&weights(two_rank_run()), &weights(&exp));
    println!("killed at step {at_kill} and resumed vs uninterrupted 2 ranks: {d:.2e} ({name})");
    assert!(
        d < 1e-6,
        "resumed 2-rank run: {name} differs from the uninterrupted one by {d:.3e} (relative)"
    );

    // Another world size cannot continue the 2-rank checkpoint (the data
    // positions would not match): a clear error naming the file.
    let f = run_bounded(single(&args), limit);
    assert!(!f.success, "one process should refuse a 2-rank checkpoint");
    assert!(
        f.output.contains("checkpoint.safetensors")
            && f.output
                .contains("written by a run with 2 ranks, this run has 1"),
        "stderr:\n{}",
        f.output
    );
}

#[test]
fn two_ranks_train_the_vicregl_weights_of_one_process() {
    // ConvNeXt VICRegL (global + local criterion, statistics over the
    // gathered batch), drop path off: its masks follow each process's batch.
    let limit = Duration::from_secs(240);
    let args = |exp: &Path| {
        let mut a = pretrain_args(exp);
        let pos = a.iter().position(|s| s == "resnet18").unwrap();
        a[pos] = "convnext_atto".into();
        a.extend(
            [
                "--loss",
                "vicregl",
                "--multi-crop",
                "2x64+2x32",
                "--maps-mlp",
                "16-16",
                "--num-matches",
                "3,1",
                "--drop-path-rate",
                "0",
            ]
            .map(String::from),
        );
        a
    };
    let one = exp_dir("vicregl-one");
    must_succeed(&run_bounded(single(&args(&one)), limit), "one process");
    let two = exp_dir("vicregl-two");
    must_succeed(
        &run_bounded(mpirun2(&args(&two), &[]), limit),
        "mpirun -np 2",
    );
    let w = |exp: &Path| encoder_weights(exp, &["convnext_atto"]);
    let (d, name) = max_rel_diff(&w(&one), &w(&two));
    println!("VICRegL, 2 ranks vs 1 process: max relative weight difference {d:.2e} ({name})");
    assert!(d < 1e-4, "{name} differs by {d:.3e} (relative)");
}

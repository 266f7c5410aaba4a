//! A run killed with SIGKILL mid-epoch and resumed ends with bit-identical
//! weights (and identical logged losses) to an uninterrupted run.

mod engine_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Tensor;
use engine_support::*;
use serde_json::Value;
use vicreg_core::engine::{
    read_metrics, FnSource, OnlineProbeConfig, PairBatch, ResumeMode, TrainConfig, TrainSummary,
};
use vicreg_core::optim::OptimizerKind;

const CHILD_ENV: &str = "VICREG_ENGINE_RESUME_CHILD_DIR";
const BATCHES: usize = 8;

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 2 * BATCH,
        base_lr: 0.3,
        weight_decay: 1e-6,
        optimizer: OptimizerKind::Lars,
        warmup_epochs: 1,
        clip_grad: Some(5.0),
        accumulate: 2,
        log_every: 1,
        checkpoint_every_steps: 1,
        rank_every: 2,
        seed: 5,
        quiet: true,
        resume: ResumeMode::Auto,
        plot: false,
        online_probe: Some(OnlineProbeConfig {
            num_classes: CLASSES,
            lr: 0.05,
            weight_decay: 0.0,
        }),
    }
}

/// Trains in `dir` (resuming if it holds a checkpoint); `delay` slows every batch down.
fn train(dir: &Path, delay: Option<Duration>) -> (HashMap<String, Tensor>, TrainSummary) {
    let (model, store) = tiny_model(3);
    let cfg = config();
    let mut src = FnSource::new(
        BATCHES,
        move |e: usize, i: usize| -> vicreg_core::Result<PairBatch<Tensor, Tensor>> {
            if let Some(d) = delay {
                std::thread::sleep(d);
            }
            make_batch(e, i)
        },
    );
    let mut t = trainer(&model, &store, &cfg, dir).with_encoder_export("a", "a.encoder.");
    let summary = t.fit(&mut src).unwrap();
    (store.tensors(), summary)
}

/// Runs only inside the child process started by the test below.
#[test]
fn child_train() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        train(Path::new(&dir), Some(Duration::from_millis(120)));
    }
}

fn checkpoint_position(dir: &Path) -> Option<(usize, usize, u64)> {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some((
        v["epoch"].as_u64()? as usize,
        v["batch_in_epoch"].as_u64()? as usize,
        v["global_step"].as_u64()?,
    ))
}

fn step_losses(dir: &Path) -> Vec<(u64, String)> {
    read_metrics(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "step")
        .map(|r| {
            (
                r["step"].as_u64().unwrap(),
                format!("{} {}", r["loss"], r["online_probe_acc"]),
            )
        })
        .collect()
}

#[test]
fn sigkill_mid_epoch_then_resume_is_bit_identical() {
    let killed = fresh_dir("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_train", "--exact", "--test-threads=1"])
        .env(CHILD_ENV, &killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child checkpointed in the middle of the second epoch.
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended ({status}) before it could be killed");
        }
        if let Some((epoch, batch, _)) = checkpoint_position(&killed) {
            if epoch == 1 && batch >= 2 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never reached epoch 2"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (epoch, batch, step) = checkpoint_position(&killed).unwrap();
    assert!(
        epoch == 1 && batch > 0 && batch < BATCHES,
        "killed at epoch {epoch} batch {batch}"
    );
    assert!(
        !killed.join("a-encoder.safetensors").exists(),
        "the child must not have finished"
    );

    let (resumed, summary) = train(&killed, None);
    assert_eq!(summary.resumed_from, Some(step));
    assert_eq!(summary.global_step, 12);

    let reference_dir = fresh_dir("uninterrupted");
    let (reference, ref_summary) = train(&reference_dir, None);
    assert_eq!(ref_summary.resumed_from, None);

    assert_eq!(resumed.len(), reference.len());
    for (name, t) in &reference {
        assert_eq!(
            bits(t),
            bits(&resumed[name]),
            "{name} differs after kill + resume"
        );
    }
    // The exported encoders are identical too.
    let a = std::fs::read(killed.join("a-encoder.safetensors")).unwrap();
    let b = std::fs::read(reference_dir.join("a-encoder.safetensors")).unwrap();
    assert_eq!(a, b);
    // metrics.jsonl: lines the killed run wrote after its checkpoint were dropped,
    // so both runs logged the same steps with the same losses.
    assert_eq!(step_losses(&killed), step_losses(&reference_dir));
    // Resuming a finished run trains nothing more.
    let (again, s) = train(&killed, None);
    assert_eq!(s.global_step, 12);
    for (name, t) in &reference {
        assert_eq!(bits(t), bits(&again[name]));
    }
    let _ = std::fs::remove_dir_all(&killed);
    let _ = std::fs::remove_dir_all(&reference_dir);
}

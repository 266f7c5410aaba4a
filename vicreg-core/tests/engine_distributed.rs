//! Data-parallel semantics: two ranks (threads) with half batches train the
//! same weights as one process with the whole batch (the expander has no
//! BatchNorm here, since per-rank BatchNorm statistics legitimately differ);
//! every rank ends with identical weights and only rank 0 writes files.

mod engine_support;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use engine_support::*;
use vicreg_core::collective::{Collective, ThreadGroup};
use vicreg_core::engine::{read_metrics, FnSource, PairBatch, TrainConfig, Trainer};
use vicreg_core::optim::OptimizerKind;

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: BATCH,
        base_lr: 1.0,
        optimizer: OptimizerKind::Sgd,
        checkpoint_every_steps: 2,
        ..TrainConfig::smoke()
    }
}

/// Rows `[lo, lo + n)` of the full synthetic batch.
fn part(e: usize, i: usize, lo: usize, n: usize) -> vicreg_core::Result<PairBatch<Tensor, Tensor>> {
    let b = make_batch(e, i)?;
    let labels = b.labels.unwrap()[lo..lo + n].to_vec();
    Ok(PairBatch::new(b.a.narrow(0, lo, n)?, b.b.narrow(0, lo, n)?, n).with_labels(labels))
}

fn run(dir: &std::path::Path, collective: Arc<dyn Collective>) -> HashMap<String, Tensor> {
    let (model, store) = tiny_model_with(8, false);
    let world = collective.world_size();
    let rank = collective.rank();
    let n = BATCH / world;
    let mut src = FnSource::new(3, move |e: usize, i: usize| part(e, i, rank * n, n));
    let cfg = cfg();
    let mut t = Trainer::new(&model, &store, vicreg(), collective, cfg.clone(), dir, &cfg).unwrap();
    let s = t.fit(&mut src).unwrap();
    assert_eq!(s.global_step, 6);
    store.tensors()
}

#[test]
fn two_ranks_match_one_process() {
    let single_dir = fresh_dir("dp-single");
    let reference = run(&single_dir, single());

    let dp_dir = fresh_dir("dp-two");
    let handles: Vec<_> = ThreadGroup::new(2)
        .into_iter()
        .map(|c| {
            let dir = dp_dir.clone();
            std::thread::spawn(move || run(&dir, Arc::new(c)))
        })
        .collect();
    let ranks: Vec<HashMap<String, Tensor>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    for (name, t) in &reference {
        assert_eq!(
            bits(&ranks[0][name]),
            bits(&ranks[1][name]),
            "{name}: ranks disagree"
        );
        let diff = (t - &ranks[0][name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let scale = t
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .max(1e-3);
        assert!(
            diff <= 1e-4 * scale,
            "{name}: 2 ranks vs 1 process differ by {diff}"
        );
    }
    // Only rank 0 wrote metrics: one record per step, with the global throughput.
    let records = read_metrics(&dp_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(records.iter().filter(|r| r["type"] == "step").count(), 6);
    let ckpt =
        vicreg_core::engine::load_checkpoint(&dp_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ckpt.meta.world_size, 2);
    let _ = std::fs::remove_dir_all(&single_dir);
    let _ = std::fs::remove_dir_all(&dp_dir);
}

//! Fine-tuning an encoder with a linear head (semi-supervised protocol) on a
//! problem whose answer is known: classes that a small MLP separates.

use candle_core::{DType, Device, Module, Tensor};
use vicreg_core::eval::{finetune, FinetuneConfig, LabelledBatches};
use vicreg_core::model::{linear_torch_init, Encoder};
use vicreg_core::{ParamStore, Result, SeededRng};

struct Mlp(candle_nn::Linear);
impl Encoder for Mlp {
    type Input = Tensor;
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.0.forward(x)?.relu()?)
    }
    fn repr_dim(&self) -> usize {
        16
    }
}

/// Points around 4 class centres in 6-d.
fn batches(seed: u64, n_batches: usize) -> Vec<(Tensor, Vec<usize>)> {
    let mut rng = SeededRng::new(seed);
    let centres: Vec<Vec<f64>> = {
        let mut c = SeededRng::new(99);
        (0..4)
            .map(|_| (0..6).map(|_| 3.0 * c.normal()).collect())
            .collect()
    };
    (0..n_batches)
        .map(|_| {
            let labels: Vec<usize> = (0..32).map(|_| rng.below(4)).collect();
            let x: Vec<f32> = labels
                .iter()
                .flat_map(|&y| {
                    centres[y]
                        .iter()
                        .map(|c| (c + rng.normal()) as f32)
                        .collect::<Vec<_>>()
                })
                .collect();
            (Tensor::from_vec(x, (32, 6), &Device::Cpu).unwrap(), labels)
        })
        .collect()
}

#[test]
fn finetuning_learns_separable_classes_and_reports_every_epoch() {
    let store = ParamStore::new(0);
    let enc = Mlp(linear_torch_init(
        6,
        16,
        true,
        store.var_builder(DType::F32, &Device::Cpu).pp("enc"),
    )
    .unwrap());
    let before: Vec<f32> = store.tensors()["enc.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut train = |epoch: usize| -> Result<LabelledBatches<'static, Tensor>> {
        Ok(Box::new(batches(epoch as u64, 8).into_iter().map(Ok)))
    };
    let mut eval = || -> Result<LabelledBatches<'static, Tensor>> {
        Ok(Box::new(batches(1000, 4).into_iter().map(Ok)))
    };
    let mut seen = Vec::new();
    let cfg = FinetuneConfig {
        epochs: 5,
        lr_backbone: 0.05,
        lr_head: 0.1,
        ..FinetuneConfig::default()
    };
    let last = finetune(
        &enc,
        store.trainable_vars(),
        4,
        8,
        &mut train,
        &mut eval,
        &cfg,
        &mut |a| {
            seen.push(*a);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(seen.len(), 5);
    assert!(last.top1 > 95.0, "{last:?}");
    assert_eq!(last.top5, 100.0);
    assert!(seen[4].train_loss < seen[0].train_loss);
    // The encoder itself was trained (not only the head).
    let after: Vec<f32> = store.tensors()["enc.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(before, after);
}

#[test]
fn frozen_backbone_when_its_lr_is_zero() {
    let store = ParamStore::new(0);
    let enc = Mlp(linear_torch_init(
        6,
        16,
        true,
        store.var_builder(DType::F32, &Device::Cpu).pp("enc"),
    )
    .unwrap());
    let before: Vec<f32> = store.tensors()["enc.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut train = |epoch: usize| -> Result<LabelledBatches<'static, Tensor>> {
        Ok(Box::new(batches(epoch as u64, 4).into_iter().map(Ok)))
    };
    let mut eval = || -> Result<LabelledBatches<'static, Tensor>> {
        Ok(Box::new(batches(1000, 2).into_iter().map(Ok)))
    };
    let cfg = FinetuneConfig {
        epochs: 2,
        lr_backbone: 0.0,
        lr_head: 0.1,
        ..FinetuneConfig::default()
    };
    finetune(
        &enc,
        store.trainable_vars(),
        4,
        4,
        &mut train,
        &mut eval,
        &cfg,
        &mut |_| Ok(()),
    )
    .unwrap();
    let after: Vec<f32> = store.tensors()["enc.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(before, after);
}

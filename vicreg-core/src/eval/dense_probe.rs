//! Linear segmentation probe on frozen feature maps: every cell of the final
//! feature map is one sample whose label is the majority class of the pixels
//! it covers; a linear classifier trained on the training images' cells is
//! scored on the test images' cells by cell accuracy and mean IoU (the
//! linear-probe protocol of dense SSL evaluations, at feature-map
//! resolution).

use candle_core::Tensor;

use super::linear_probe::train_classifier;
use super::{Features, LinearProbeConfig};
use crate::{Error, Result};

/// What the dense probe measured on the test cells.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseProbeResult {
    /// Cells whose predicted class is their label (%).
    pub cell_accuracy: f64,
    /// Mean over classes present in the test labels or predictions of
    /// `TP / (TP + FP + FN)` (%).
    pub miou: f64,
    /// IoU of every class (%; `None`: the class is absent from the test
    /// labels and never predicted).
    pub per_class_iou: Vec<Option<f64>>,
    /// Cell accuracy on the training cells (%).
    pub train_accuracy: f64,
}

/// Mean IoU of `pred` against `truth` over `num_classes` classes (classes
/// that appear in neither are left out), with every class's IoU.
pub fn mean_iou(pred: &[usize], truth: &[usize], num_classes: usize) -> (f64, Vec<Option<f64>>) {
    let mut tp = vec![0usize; num_classes];
    let mut fp = vec![0usize; num_classes];
    let mut fn_ = vec![0usize; num_classes];
    for (&p, &t) in pred.iter().zip(truth) {
        if p == t {
            tp[t] += 1;
        } else {
            if p < num_classes {
                fp[p] += 1;
            }
            if t < num_classes {
                fn_[t] += 1;
            }
        }
    }
    let ious: Vec<Option<f64>> = (0..num_classes)
        .map(|c| {
            let d = tp[c] + fp[c] + fn_[c];
            (d > 0).then(|| 100.0 * tp[c] as f64 / d as f64)
        })
        .collect();
    let present: Vec<f64> = ious.iter().flatten().copied().collect();
    let miou = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    (miou, ious)
}

fn predictions(model: &candle_nn::Linear, x: &Tensor) -> Result<Vec<usize>> {
    let logits = candle_core::Module::forward(model, x)?;
    Ok(logits
        .argmax(1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

/// Trains a linear classifier on the `train` cells (features `(cells, dim)`,
/// one class per cell) and scores it on the `test` cells.
pub fn dense_probe(
    train: &Features,
    test: &Features,
    num_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<DenseProbeResult> {
    cfg.validate()?;
    if num_classes < 2 {
        return Err(Error::invalid("dense probe needs at least 2 classes"));
    }
    if train.dim() != test.dim() {
        return Err(Error::invalid(format!(
            "train cells have dim {}, test cells {}",
            train.dim(),
            test.dim()
        )));
    }
    for (f, what) in [(train, "train"), (test, "test")] {
        if let Some(&bad) = f.labels.iter().find(|&&l| l >= num_classes) {
            return Err(Error::invalid(format!(
                "{what} cell label {bad} is not below {num_classes} classes"
            )));
        }
    }
    let test = test.to_device(train.x.device())?;
    let (model, _) = train_classifier(&train.x, &train.labels, num_classes, cfg)?;
    let acc = |p: &[usize], t: &[usize]| {
        100.0 * p.iter().zip(t).filter(|(a, b)| a == b).count() as f64 / t.len().max(1) as f64
    };
    let pred = predictions(&model, &test.x)?;
    let train_pred = predictions(&model, &train.x)?;
    let (miou, per_class_iou) = mean_iou(&pred, &test.labels, num_classes);
    Ok(DenseProbeResult {
        cell_accuracy: acc(&pred, &test.labels),
        miou,
        per_class_iou,
        train_accuracy: acc(&train_pred, &train.labels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn iou_counts_hits_and_misses() {
        // class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: tp 1, fp 1, fn 1 -> 1/3; class 2 absent.
        let (m, per) = mean_iou(&[0, 1, 1, 0], &[0, 0, 1, 1], 3);
        assert!((m - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(per[2], None);
        let (m, _) = mean_iou(&[2, 2], &[2, 2], 3);
        assert_eq!(m, 100.0);
    }

    #[test]
    fn separable_cells_are_segmented() {
        let dev = Device::Cpu;
        let make = |n: usize| {
            let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
            let x: Vec<f32> = labels
                .iter()
                .enumerate()
                .flat_map(|(i, &l)| {
                    let mut v = vec![0.1 * ((i * 7 % 5) as f32); 4];
                    v[l] += 3.0;
                    v
                })
                .collect();
            Features::new(Tensor::from_vec(x, (n, 4), &dev).unwrap(), labels).unwrap()
        };
        let r = dense_probe(
            &make(60),
            &make(30),
            3,
            &LinearProbeConfig {
                epochs: 30,
                lr: 0.5,
                batch_size: 16,
                ..LinearProbeConfig::default()
            },
        )
        .unwrap();
        assert!(r.cell_accuracy > 95.0 && r.miou > 90.0, "{r:?}");
    }
}

//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

/// Linear warmup from 0 then cosine decay to `end_factor * peak`, per step:
/// the official VICReg schedule with `peak = base_lr * batch_size / 256`,
/// `end_factor = 0.001`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate (reached at the end of warmup).
    pub peak_lr: f64,
    /// Steps of linear warmup (lr is 0 at step 0).
    pub warmup_steps: u64,
    /// Total number of steps.
    pub total_steps: u64,
    /// Final learning rate as a fraction of the peak.
    pub end_factor: f64,
}

impl LrSchedule {
    /// The official schedule: `peak = base_lr * batch_size / 256`, `warmup_epochs`
    /// of linear warmup (10 in the official code), cosine to `0.001 * peak`.
    pub fn official(
        base_lr: f64,
        batch_size: usize,
        epochs: usize,
        steps_per_epoch: usize,
        warmup_epochs: usize,
    ) -> Self {
        Self {
            peak_lr: base_lr * batch_size as f64 / 256.0,
            warmup_steps: (warmup_epochs * steps_per_epoch) as u64,
            total_steps: (epochs * steps_per_epoch) as u64,
            end_factor: 0.001,
        }
    }

    /// Plain cosine decay from `lr` to 0 over `total_steps` (linear evaluation).
    pub fn cosine(lr: f64, total_steps: u64) -> Self {
        Self {
            peak_lr: lr,
            warmup_steps: 0,
            total_steps,
            end_factor: 0.0,
        }
    }

    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        Self {
            peak_lr: lr,
            warmup_steps: 0,
            total_steps: 0,
            end_factor: 1.0,
        }
    }

    /// Learning rate at global `step` (0-based, set before each optimizer step).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps);
        if span == 0 {
            return self.peak_lr
                * if self.total_steps == 0 {
                    1.0
                } else {
                    self.end_factor
                };
        }
        let t = (step - self.warmup_steps).min(span) as f64;
        let q = 0.5 * (1.0 + (std::f64::consts::PI * t / span as f64).cos());
        self.peak_lr * q + self.end_factor * self.peak_lr * (1.0 - q)
    }
}

/// The paper's base learning rates for small batches (appendix C.4):
/// 0.8 for batch <= 128, 0.5 for <= 256, 0.4 for <= 512, otherwise the official 0.2.
pub fn paper_small_batch_base_lr(batch_size: usize) -> f64 {
    match batch_size {
        0..=128 => 0.8,
        129..=256 => 0.5,
        257..=512 => 0.4,
        _ => 0.2,
    }
}

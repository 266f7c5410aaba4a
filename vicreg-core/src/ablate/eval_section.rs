//! `[eval]` of a grid file: the evaluation after each run of an ablation
//! (linear probe on standardised frozen features, then weighted k-NN).

use serde::{Deserialize, Serialize};

use crate::eval::{KnnConfig, LinearProbeConfig};
use crate::limits::{check_float, check_int, FloatRange, BATCH_SIZE, EPOCHS};
use crate::Result;

/// Neighbour counts accepted for `knn-k`.
pub const KNN_K: std::ops::RangeInclusive<u64> = 1..=100_000;

/// `[eval]`: probe and k-NN settings of every run of a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EvalSection {
    /// Linear-probe epochs (SGD, cosine, standardised features).
    pub probe_epochs: usize,
    /// Linear-probe peak learning rate.
    pub probe_lr: f64,
    /// Linear-probe batch size.
    pub probe_batch_size: usize,
    /// k of the weighted k-NN.
    pub knn_k: usize,
    /// k-NN temperature.
    pub knn_temperature: f64,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            probe_epochs: 100,
            probe_lr: 0.1,
            probe_batch_size: 256,
            knn_k: 20,
            knn_temperature: 0.07,
        }
    }
}

impl EvalSection {
    /// Checks every key's range (the error names the key).
    pub fn validate(&self) -> Result<()> {
        check_int("probe-epochs", self.probe_epochs, &EPOCHS)?;
        check_float("probe-lr", self.probe_lr, FloatRange::NON_NEGATIVE)?;
        check_int("probe-batch-size", self.probe_batch_size, &BATCH_SIZE)?;
        check_int("knn-k", self.knn_k, &KNN_K)?;
        check_float(
            "knn-temperature",
            self.knn_temperature,
            FloatRange::POSITIVE,
        )
    }

    /// The linear probe of these settings (the paper's otherwise), seeded.
    pub fn probe(&self, seed: u64) -> LinearProbeConfig {
        LinearProbeConfig {
            epochs: self.probe_epochs,
            lr: self.probe_lr,
            batch_size: self.probe_batch_size,
            seed,
            ..LinearProbeConfig::paper()
        }
    }

    /// The k-NN of these settings.
    pub fn knn(&self) -> KnnConfig {
        KnnConfig {
            ks: vec![self.knn_k],
            temperature: self.knn_temperature,
            ..KnnConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_key_and_configs_carry_the_values() {
        let e = EvalSection {
            knn_temperature: 0.0,
            ..EvalSection::default()
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("knn-temperature"));
        let e = EvalSection {
            probe_epochs: 7,
            knn_k: 5,
            ..EvalSection::default()
        };
        e.validate().unwrap();
        assert_eq!((e.probe(3).epochs, e.probe(3).seed), (7, 3));
        assert_eq!(e.knn().ks, vec![5]);
    }
}

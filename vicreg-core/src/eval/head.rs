//! A linear classifier on frozen features that an app keeps after
//! evaluation and uses to classify new inputs: per-dimension
//! standardisation with the training features' moments, then a linear layer.
//!
//! [`linear_probe`](super::linear_probe) reports accuracies but does not hand
//! back its trained layer; [`LinearHead::fit`] trains one with the same code
//! (the [`linear_classifier`](super::linear_classifier) init, SGD momentum
//! 0.9, per-step cosine schedule, the same seeded shuffles) on features it
//! standardises itself,
//! so that a head fitted with the configuration a probe used reaches that
//! probe's accuracy.
//!
//! Saved as safetensors with `mean` and `std` `(dim,)`, `weight`
//! `(classes, dim)` and `bias` `(classes,)` (f32).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vicreg_core::eval::{Features, LinearHead, LinearProbeConfig};
//!
//! let x = Tensor::new(&[[10f32, 0.1], [9.0, -0.1], [-10.0, 0.2], [-8.0, -0.1]], &Device::Cpu)?;
//! let f = Features::new(x, vec![0, 0, 1, 1])?;
//! let cfg = LinearProbeConfig { epochs: 50, lr: 0.5, batch_size: 4, ..Default::default() };
//! let head = LinearHead::fit(&f, 2, &cfg)?;
//! assert_eq!(head.accuracy(&f)?, 100.0);
//! assert_eq!(head.probabilities(&f.x)?.dims(), &[4, 2]);
//! # Ok::<(), vicreg_core::Error>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Module, Tensor, D};
use candle_nn::Linear;

use super::features::Features;
use super::linear_probe::{train_classifier, LinearProbeConfig, ProbeOptimizer};
use crate::{Error, Result};

/// The largest head file read, in bytes (1 GiB: 1000 classes x 8192-d is 33 MB).
pub const MAX_HEAD_BYTES: u64 = 1 << 30;

/// Per-dimension mean and standard deviation (`(1, dim)` each; the variance
/// is floored by `1e-6` under the root) of `x` `(n, dim)`.
pub fn moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = x.mean_keepdim(0)?;
    let std = (x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-6)?.sqrt()?;
    Ok((mean, std))
}

/// Standardises train and test features with the training set's
/// [`moments`] (a BatchNorm without affine in front of a linear probe).
pub fn standardize(train: &Features, test: &Features) -> Result<(Features, Features)> {
    let (mean, std) = moments(&train.x)?;
    let f = |x: &Features| -> Result<Features> {
        Features::new(
            x.x.broadcast_sub(&mean)?.broadcast_div(&std)?,
            x.labels.clone(),
        )
    };
    Ok((f(train)?, f(test)?))
}

/// Standardisation + linear layer (see the module docs).
pub struct LinearHead {
    mean: Tensor,
    std: Tensor,
    linear: Linear,
}

impl LinearHead {
    /// Trains the head on raw (unstandardised) `train` features with the
    /// epochs, rate, weight decay, batch size and seed of `cfg` (always SGD);
    /// a non-finite loss is an error.
    pub fn fit(train: &Features, num_classes: usize, cfg: &LinearProbeConfig) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(Error::config("linear head: batch_size must be at least 1"));
        }
        let (mean, std) = moments(&train.x)?;
        let x = train.x.broadcast_sub(&mean)?.broadcast_div(&std)?;
        let sgd = LinearProbeConfig {
            optimizer: ProbeOptimizer::Sgd,
            ..cfg.clone()
        };
        let (linear, _) = train_classifier(&x, &train.labels, num_classes, &sgd)?;
        Ok(Self { mean, std, linear })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.linear.weight().dims().first().copied().unwrap_or(0)
    }

    /// `(n, classes)` class probabilities of raw features `(n, dim)`.
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        let z = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        Ok(candle_nn::ops::softmax(
            &self.linear.forward(&z)?,
            D::Minus1,
        )?)
    }

    /// Top-1 accuracy (%) on raw features.
    pub fn accuracy(&self, f: &Features) -> Result<f64> {
        let pred: Vec<u32> = self.probabilities(&f.x)?.argmax(D::Minus1)?.to_vec1()?;
        let ok = pred
            .iter()
            .zip(&f.labels)
            .filter(|(p, y)| **p as usize == **y)
            .count();
        Ok(100.0 * ok as f64 / f.len().max(1) as f64)
    }

    /// Writes the head to `file` atomically (`mean`, `std`, `weight`, `bias`).
    pub fn save(&self, file: &Path) -> Result<()> {
        let mut t = HashMap::new();
        t.insert("mean".to_string(), self.mean.squeeze(0)?);
        t.insert("std".to_string(), self.std.squeeze(0)?);
        t.insert("weight".to_string(), self.linear.weight().clone());
        if let Some(b) = self.linear.bias() {
            t.insert("bias".to_string(), b.clone());
        }
        crate::io::save_safetensors_atomic(&t, file)
    }

    /// Reads a head written by [`save`](Self::save); a missing tensor, a
    /// `mean` / `std` that does not match `weight`'s width or a file over
    /// [`MAX_HEAD_BYTES`] is an error naming the file.
    pub fn load(file: &Path) -> Result<Self> {
        let size = std::fs::metadata(file)
            .map_err(|e| Error::io(file, e))?
            .len();
        if size > MAX_HEAD_BYTES {
            return Err(Error::bad_file(
                file,
                format!("{size} bytes; a classifier head is at most {MAX_HEAD_BYTES}"),
            ));
        }
        let t = crate::io::load_safetensors(file)?;
        let get = |k: &str| {
            t.get(k)
                .cloned()
                .ok_or_else(|| Error::bad_file(file, format!("no tensor {k:?}")))
        };
        let weight = get("weight")?;
        let (_, dim) = weight.dims2()?;
        let mean = get("mean")?.reshape((1, dim))?;
        let std = get("std")?.reshape((1, dim))?;
        Ok(Self {
            mean,
            std,
            linear: Linear::new(weight, Some(get("bias")?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn toy() -> Features {
        let x = Tensor::new(
            &[[10f32, 0.1], [9.0, -0.1], [-10.0, 0.2], [-8.0, -0.1]],
            &Device::Cpu,
        )
        .unwrap();
        Features::new(x, vec![0, 0, 1, 1]).unwrap()
    }

    #[test]
    fn standardized_training_features_have_zero_mean_and_unit_std() {
        let f = toy();
        let (tr, te) = standardize(&f, &f).unwrap();
        let (m, s) = moments(&tr.x).unwrap();
        for v in m.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
            assert!(v.abs() < 1e-5, "{v}");
        }
        for v in s.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
            assert!((v - 1.0).abs() < 1e-3, "{v}");
        }
        assert_eq!(te.labels, f.labels);
    }

    #[test]
    fn a_saved_head_loads_with_the_same_probabilities() {
        let f = toy();
        let cfg = LinearProbeConfig {
            epochs: 20,
            lr: 0.5,
            batch_size: 2,
            ..Default::default()
        };
        let head = LinearHead::fit(&f, 2, &cfg).unwrap();
        assert_eq!(head.num_classes(), 2);
        assert_eq!(head.accuracy(&f).unwrap(), 100.0);
        let dir = std::env::temp_dir().join(format!("vicreg-head-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("head.safetensors");
        head.save(&file).unwrap();
        let back = LinearHead::load(&file).unwrap();
        let a: Vec<Vec<f32>> = head.probabilities(&f.x).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f32>> = back.probabilities(&f.x).unwrap().to_vec2().unwrap();
        assert_eq!(a, b);
        // A file without the bias is refused, naming the file and the tensor.
        let mut t = crate::io::load_safetensors(&file).unwrap();
        t.remove("bias");
        crate::io::save_safetensors_atomic(&t, &file).unwrap();
        let e = LinearHead::load(&file).err().unwrap().to_string();
        assert!(e.contains("head.safetensors") && e.contains("bias"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! Feature standardisation with the training set's moments: a BatchNorm
//! without affine in front of a linear probe (the MAE linear-probing recipe),
//! so the probe's learning rate and weight decay mean the same thing for
//! every encoder, trained or random.

use candle_core::Tensor;

use super::Features;
use crate::Result;

/// Per-dimension mean and std (`(1, dim)` each; the variance floored by 1e-6
/// under the root) of `x` `(n, dim)`.
pub fn moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = x.mean_keepdim(0)?;
    let std = (x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)? + 1e-6)?.sqrt()?;
    Ok((mean, std))
}

/// `train` and `other` standardised with `train`'s [`moments`].
pub fn standardize(train: &Features, other: &Features) -> Result<(Features, Features)> {
    let (mean, std) = moments(&train.x)?;
    let f = |x: &Features| -> Result<Features> {
        Features::new(
            x.x.broadcast_sub(&mean)?.broadcast_div(&std)?,
            x.labels.clone(),
        )
    };
    Ok((f(train)?, f(other)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn training_moments_become_zero_and_one() -> Result<()> {
        let x = Tensor::new(&[[1f32, 10.0], [3.0, 30.0], [5.0, 20.0]], &Device::Cpu)?;
        let tr = Features::new(x, vec![0, 1, 0])?;
        let te = Features::new(Tensor::new(&[[3f32, 20.0]], &Device::Cpu)?, vec![1])?;
        let (a, b) = standardize(&tr, &te)?;
        let (m, s) = moments(&a.x)?;
        for v in m.flatten_all()?.to_vec1::<f32>()? {
            assert!(v.abs() < 1e-5);
        }
        for v in s.flatten_all()?.to_vec1::<f32>()? {
            assert!((v - 1.0).abs() < 1e-4);
        }
        assert_eq!(b.x.flatten_all()?.to_vec1::<f32>()?, [0.0, 0.0]);
        assert_eq!((a.labels, b.labels), (vec![0, 1, 0], vec![1]));
        Ok(())
    }
}

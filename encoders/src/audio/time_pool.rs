//! Pooling of an audio feature map over time into one vector per clip.
//!
//! `mean` averages every frame: a clip padded with silence dilutes its sound
//! by the padding's share. `mean-max` adds the maximum over time to the mean
//! (the pooling of PANNs, Kong et al. 2020): a short event keeps its peak
//! activations whatever the clip length, so the representation of a 0.5 s
//! sound in a 5 s clip looks like that of the sound alone. The max over time is
//! computed with candle's `max_keepdim`, whose backward sends the gradient to
//! the maximal frame (every maximal frame on ties); gradient-checked in
//! `tests/audio_gradcheck.rs`.

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How an audio encoder pools its last feature map over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TimePool {
    /// Mean over frames.
    #[default]
    Mean,
    /// Mean over frames plus maximum over frames (same width as `mean`).
    MeanMax,
}

impl std::str::FromStr for TimePool {
    type Err = String;

    /// `mean` or `mean-max`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mean" => Ok(Self::Mean),
            "mean-max" => Ok(Self::MeanMax),
            _ => Err(format!("unknown time pooling `{s}` (mean or mean-max)")),
        }
    }
}

impl TimePool {
    /// `(batch, channels, frames)` -> `(batch, channels)`.
    pub fn pool(self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 3 {
            return Err(Error::invalid(format!(
                "time pooling expects (batch, channels, frames), got {:?}",
                x.dims()
            )));
        }
        let mean = x.mean(D::Minus1)?;
        Ok(match self {
            TimePool::Mean => mean,
            TimePool::MeanMax => (mean + x.max_keepdim(D::Minus1)?.squeeze(D::Minus1)?)?,
        })
    }
}

//! A small convolutional network on log-mel spectrograms that keeps the
//! frequency axis: the audio encoder of BYOL-A (Niizumi et al. 2021,
//! "AudioNTT2020"), for the spectrogram branch of small-data runs.
//!
//! `(batch, 1, n_mels, frames)` -> `blocks` x [3x3 convolution (stride 1,
//! padding 1) -> BatchNorm -> ReLU -> 2x2 max pool] -> per frame, the
//! `channels x n_mels / 2^blocks` map column flattened (mel-major, as
//! BYOL-A's `permute(0, 3, 2, 1)`) -> `fc.0` linear -> ReLU -> `fc.3` linear
//! -> ReLU -> `(batch, dim, frames / 2^blocks)` -> [`TimePool`] over time
//! (BYOL-A: mean + max, [`TimePool::MeanMax`]) -> `(batch, dim)`.
//!
//! Unlike a ResNet, whose five stride-2 stages leave one or two mel rows,
//! the representation of each frame still sees where energy sits in
//! frequency: on the real check sets of `docs/real-data.md` this network at
//! random initialisation is already above log-mel statistics, where a
//! randomly initialised ResNet-18 is far below them.
//!
//! Tensor names follow BYOL-A's `nn.Sequential` indices: block `i`'s
//! convolution is `features.{4i}.weight`, its BatchNorm `features.{4i+1}.*`;
//! the linears are `fc.0.*` and `fc.3.*`. Differences from BYOL-A: the
//! convolutions have no bias (each is followed by BatchNorm, which removes
//! it) and there is no dropout between the linears (BYOL-A: p = 0.3).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use vicreg_core::ops::linear_layer;

use super::time_pool::TimePool;
use crate::resnet::ops::{BatchNorm2d, Conv2d};
use crate::resnet::pool::max_pool2d_any;
use crate::{Error, Result};

/// Largest channel count / representation width accepted (bounds allocations
/// from a config file).
const MAX_WIDTH: usize = 16_384;

/// Architecture of a [`MelCnn`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MelCnnConfig {
    /// Channels of every convolution block (BYOL-A: 64).
    pub channels: usize,
    /// Convolution blocks, each halving the mel and frame axes (BYOL-A: 3).
    pub blocks: usize,
    /// Width of the two linear layers = representation width (BYOL-A: 2048).
    pub dim: usize,
}

impl Default for MelCnnConfig {
    /// The CPU size: 64 channels, 3 blocks, 512-d.
    fn default() -> Self {
        Self {
            channels: 64,
            blocks: 3,
            dim: 512,
        }
    }
}

impl MelCnnConfig {
    /// BYOL-A's size: 64 channels, 3 blocks, 2048-d.
    pub fn byol_a() -> Self {
        Self {
            dim: 2048,
            ..Self::default()
        }
    }

    /// Mel rows left after the blocks for `n_mels` input rows.
    pub fn out_mels(&self, n_mels: usize) -> usize {
        n_mels >> self.blocks.min(usize::BITS as usize - 1)
    }

    /// Checks the sizes against `n_mels` input rows.
    pub fn validate(&self, n_mels: usize) -> Result<()> {
        if self.channels == 0 || self.channels > MAX_WIDTH || self.dim == 0 || self.dim > MAX_WIDTH
        {
            return Err(Error::config(format!(
                "mel-cnn: channels ({}) and dim ({}) must be in 1..={MAX_WIDTH}",
                self.channels, self.dim
            )));
        }
        if self.blocks == 0 || self.blocks > 8 {
            return Err(Error::config(format!(
                "mel-cnn: blocks must be in 1..=8, got {}",
                self.blocks
            )));
        }
        if self.out_mels(n_mels) == 0 {
            return Err(Error::config(format!(
                "mel-cnn: {n_mels} mel bands are too few for {} blocks (each halves them; at least {} needed)",
                self.blocks,
                1usize << self.blocks
            )));
        }
        Ok(())
    }
}

/// One convolution block: conv 3x3 -> BatchNorm -> ReLU -> max pool 2x2.
#[derive(Clone, Debug)]
struct ConvBlock {
    conv: Conv2d,
    bn: BatchNorm2d,
}

/// The network; see the module docs.
#[derive(Clone, Debug)]
pub struct MelCnn {
    blocks: Vec<ConvBlock>,
    fc1: candle_nn::Linear,
    fc2: candle_nn::Linear,
    time_pool: TimePool,
    cfg: MelCnnConfig,
}

impl MelCnn {
    /// Builds the network for `n_mels`-row spectrograms under `vb`
    /// (convolutions Kaiming-normal fan-out, linears PyTorch's default init).
    pub fn new(
        cfg: &MelCnnConfig,
        n_mels: usize,
        time_pool: TimePool,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate(n_mels)?;
        let f = vb.pp("features");
        let blocks = (0..cfg.blocks)
            .map(|i| -> Result<ConvBlock> {
                let in_c = if i == 0 { 1 } else { cfg.channels };
                Ok(ConvBlock {
                    conv: Conv2d::new(in_c, cfg.channels, 3, 1, 1, f.pp(4 * i))?,
                    bn: BatchNorm2d::new(cfg.channels, false, f.pp(4 * i + 1))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let flat = cfg.channels * cfg.out_mels(n_mels);
        let fc = vb.pp("fc");
        Ok(Self {
            blocks,
            fc1: candle_nn::linear(flat, cfg.dim, fc.pp(0))?,
            fc2: candle_nn::linear(cfg.dim, cfg.dim, fc.pp(3))?,
            time_pool,
            cfg: cfg.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &MelCnnConfig {
        &self.cfg
    }

    /// Representation width.
    pub fn repr_dim(&self) -> usize {
        self.cfg.dim
    }

    /// The fewest input frames the blocks accept (`2^blocks`).
    pub fn min_frames(&self) -> usize {
        1 << self.cfg.blocks
    }

    /// `(batch, 1, n_mels, frames)` -> per-frame features `(batch, dim,
    /// frames / 2^blocks)`. Errors when the clip has fewer than `2^blocks`
    /// frames.
    pub fn frame_features(&self, spec: &Tensor, train: bool) -> Result<Tensor> {
        let (_, c, _, frames) = spec.dims4()?;
        let need = self.min_frames();
        if c != 1 || frames < need {
            return Err(Error::invalid(format!(
                "mel-cnn: expects (batch, 1, n_mels, frames) with at least {need} frames, got {:?}",
                spec.dims()
            )));
        }
        let mut h = spec.clone();
        for (i, block) in self.blocks.iter().enumerate() {
            h = if i == 0 && !h.track_op() {
                block.conv.forward_no_input_grad(&h)?
            } else {
                block.conv.forward(&h)?
            };
            h = max_pool2d_any(&block.bn.forward_relu_t(&h, train)?, 2, 2, 0)?;
        }
        // (B, C, F', T') -> (B, T', F', C) -> (B, T', F' * C).
        let (b, ch, fm, t) = h.dims4()?;
        let h = h.permute((0, 3, 2, 1))?.reshape((b, t, fm * ch))?;
        let h = linear_layer(&self.fc1, &h)?.relu()?;
        let h = linear_layer(&self.fc2, &h)?.relu()?;
        Ok(h.transpose(1, 2)?.contiguous()?)
    }

    /// `(batch, 1, n_mels, frames)` -> `(batch, dim)`.
    pub fn features(&self, spec: &Tensor, train: bool) -> Result<Tensor> {
        self.time_pool.pool(&self.frame_features(spec, train)?)
    }
}

//! The spectrogram branch: waveforms -> log-mel images in [0, 1] -> 2-D
//! ResNet-18 with one input channel (the paper's ESC-50 spectrogram encoder,
//! 512-d representation).
//!
//! The front end ([`LogMelSpectrogram`]) runs on the CPU and is not
//! differentiated: gradients stop at the spectrogram. The ResNet is the
//! image encoder of [`crate::resnet`] built with `in_channels = 1`; its
//! tensors are named as torchvision's (`conv1.weight` of shape
//! `(64, 1, 7, 7)`, ...).
//!
//! With `mel_cnn` set, the network is a [`MelCnn`] instead (BYOL-A's audio
//! encoder: stride-1 convolutions and 2x2 pooling that keep the mel axis,
//! `mel_cnn.dim`-d); `resnet` is then unused and its tensors are
//! `features.*` / `fc.*`.
//!
//! Clips shorter than the [`MelCnn`]'s `2^blocks` frames are padded with
//! their floor value up to it.
//!
//! Frame alignment (`align_frames`, on by default, ResNet only): the spectrogram is padded
//! at the end of the time axis with each clip's minimum value (0 after
//! min-max normalisation, i.e. the dB floor) up to the first frame count `W'`
//! with `W' = n_mels (mod 32)` (431 -> 448 frames for 128 mels). Every stride-2
//! layer of the ResNet then sees height and width with the same parity, which
//! candle 0.11's conv2d backward needs: it sizes the input gradient's
//! `output_padding` from the height alone, so e.g. 64 x 9 or 128 x 431 inputs
//! fail in `backward()` with a shape mismatch. Turn it off only with a
//! convolution that handles non-square remainders.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use vicreg_core::model::Encoder;

use super::logmel::{LogMelConfig, LogMelSpectrogram};
use super::mel_cnn::{MelCnn, MelCnnConfig};
use super::time_pool::TimePool;
use crate::resnet::{ResNet, ResNetConfig};
use crate::{Error, Result};

/// Configuration of a [`SpectrogramEncoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpectrogramEncoderConfig {
    /// The log-mel front end.
    pub mel: LogMelConfig,
    /// The 2-D ResNet; `in_channels` must be 1.
    pub resnet: ResNetConfig,
    /// The network instead of the ResNet: BYOL-A's convolutional encoder
    /// (`None`: the ResNet).
    pub mel_cnn: Option<MelCnnConfig>,
    /// Pad the frame axis to `n_mels (mod 32)` frames (see the module docs;
    /// the ResNet only).
    pub align_frames: bool,
    /// Pooling of the ResNet's last feature map: mean over frequency, then
    /// [`TimePool`] over time (`mean`: the plain global average).
    pub time_pool: TimePool,
}

impl Default for SpectrogramEncoderConfig {
    fn default() -> Self {
        Self::esc50()
    }
}

impl SpectrogramEncoderConfig {
    /// The paper's spectrogram branch for 44.1 kHz ESC-50 clips:
    /// [`LogMelConfig::esc50`] (128 mels x 431 frames for 5 s) -> ResNet-18, 1 channel, 512-d.
    pub fn esc50() -> Self {
        Self {
            mel: LogMelConfig::esc50(),
            resnet: ResNetConfig::resnet18().with_in_channels(1),
            mel_cnn: None,
            align_frames: true,
            time_pool: TimePool::Mean,
        }
    }

    /// The same for 16 kHz audio ([`LogMelConfig::esc50_16k`]: 64 mels).
    pub fn esc50_16k() -> Self {
        Self {
            mel: LogMelConfig::esc50_16k(),
            ..Self::esc50()
        }
    }
}

/// The network after the front end.
enum Backbone {
    ResNet(ResNet),
    MelCnn(MelCnn),
}

/// Waveforms -> log-mel spectrogram -> ResNet (or [`MelCnn`]) features.
pub struct SpectrogramEncoder {
    front_end: LogMelSpectrogram,
    backbone: Backbone,
    align_frames: bool,
    time_pool: TimePool,
    dtype: DType,
    device: Device,
}

impl SpectrogramEncoder {
    /// Builds the front end and the ResNet (variables under `vb`, torchvision
    /// names) or, with `mel_cnn` set, the [`MelCnn`].
    pub fn new(cfg: &SpectrogramEncoderConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.mel_cnn.is_none() && cfg.resnet.in_channels != 1 {
            return Err(Error::config(format!(
                "spectrogram encoder: the ResNet must take 1 input channel (a mel spectrogram), got in_channels = {}",
                cfg.resnet.in_channels
            )));
        }
        let front_end = LogMelSpectrogram::new(&cfg.mel)?;
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let backbone = match &cfg.mel_cnn {
            Some(net) => Backbone::MelCnn(MelCnn::new(net, cfg.mel.n_mels, cfg.time_pool, vb)?),
            None => Backbone::ResNet(ResNet::new(&cfg.resnet, vb)?),
        };
        Ok(Self {
            front_end,
            align_frames: cfg.align_frames,
            backbone,
            time_pool: cfg.time_pool,
            dtype,
            device,
        })
    }

    /// The log-mel front end.
    pub fn front_end(&self) -> &LogMelSpectrogram {
        &self.front_end
    }

    /// The 2-D ResNet (`None` for a [`MelCnn`] encoder).
    pub fn resnet(&self) -> Option<&ResNet> {
        match &self.backbone {
            Backbone::ResNet(r) => Some(r),
            Backbone::MelCnn(_) => None,
        }
    }

    /// The [`MelCnn`] (`None` for a ResNet encoder).
    pub fn mel_cnn(&self) -> Option<&MelCnn> {
        match &self.backbone {
            Backbone::MelCnn(m) => Some(m),
            Backbone::ResNet(_) => None,
        }
    }

    /// Frames the network sees for clips of `samples` samples (after
    /// ResNet frame alignment, or padding to the [`MelCnn`]'s minimum).
    pub fn input_frames(&self, samples: usize) -> usize {
        self.target_frames(self.front_end.num_frames(samples))
    }

    /// Frames after alignment (ResNet) or padding to the [`MelCnn`]'s minimum.
    fn target_frames(&self, frames: usize) -> usize {
        match &self.backbone {
            Backbone::MelCnn(net) => frames.max(net.min_frames()),
            Backbone::ResNet(_) if self.align_frames => {
                aligned_frames(frames, self.front_end.config().n_mels)
            }
            Backbone::ResNet(_) => frames,
        }
    }

    /// `(batch, samples)` waveforms -> `(batch, 1, n_mels, input_frames)`
    /// network input in the model's dtype, on the model's device (no gradient).
    pub fn spectrogram(&self, waves: &Tensor) -> Result<Tensor> {
        let spec = self.front_end.forward(waves)?;
        let (b, c, h, w) = spec.dims4()?;
        let target = self.target_frames(w);
        let spec = if target > w {
            let floor = spec
                .min_keepdim(3)?
                .min_keepdim(2)?
                .broadcast_as((b, c, h, target - w))?;
            Tensor::cat(&[&spec, &floor], 3)?
        } else {
            spec
        };
        Ok(spec.to_dtype(self.dtype)?.to_device(&self.device)?)
    }
}

/// The smallest `w' >= frames` with `w' = n_mels (mod 32)`.
fn aligned_frames(frames: usize, n_mels: usize) -> usize {
    frames + (n_mels % 32 + 32 - frames % 32) % 32
}

impl Encoder for SpectrogramEncoder {
    /// `(batch, samples)` float waveforms in [-1, 1] at the configured sample rate.
    type Input = Tensor;

    fn forward_t(&self, waves: &Tensor, train: bool) -> vicreg_core::Result<Tensor> {
        let spec = self.spectrogram(waves)?;
        let resnet = match &self.backbone {
            Backbone::MelCnn(net) => return Ok(net.features(&spec, train)?),
            Backbone::ResNet(r) => r,
        };
        match self.time_pool {
            TimePool::Mean => Ok(resnet.features(&spec, train)?),
            pool => {
                // (B, C, mels, frames) -> mean over mels -> (B, C, frames) -> pool over time.
                let map = resnet.feature_map(&spec, train)?;
                Ok(pool.pool(&map.mean(2)?)?)
            }
        }
    }

    fn repr_dim(&self) -> usize {
        match &self.backbone {
            Backbone::ResNet(r) => r.repr_dim(),
            Backbone::MelCnn(m) => m.repr_dim(),
        }
    }
}

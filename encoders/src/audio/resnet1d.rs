//! 1-D ResNet-18 on raw waveforms (the paper's ESC-50 waveform branch).
//!
//! Architecture (torchvision ResNet v1.5 with every 2-D op made 1-D):
//!
//! ```text
//! (B, samples) -> (B, 1, samples)
//! stem:   conv1 (kernel 49, stride 4, padding 24, 1 -> widths[0]) -> bn1 -> ReLU
//!         -> max pool (kernel 3, stride 2, padding 1)
//! layer1..layer4: blocks [2, 2, 2, 2] BasicBlocks, widths [48, 96, 192, 384],
//!         stride 1 in the first stage and 2 in the first block of the others;
//!         BasicBlock = conv (k 3, stride s, pad 1) -> BN -> ReLU -> conv (k 3, pad 1) -> BN,
//!         plus identity or downsample (1x1 conv stride s -> BN), add, ReLU
//! head:   mean over time -> (B, widths[3]) = (B, 384)
//! ```
//!
//! The 49-tap stride-4 stem (about 3 ms at 16 kHz) plays the role of the 7x7
//! stride-2 image stem: it is long enough to learn band-pass filters and
//! brings the sample rate down by 4 before the residual stages; with the max
//! pool and the three strided stages the total hop is 4 * 2 * 8 = 64 samples.
//! The widths 48-96-192-384 are three quarters of ResNet-18's 64-128-256-512,
//! chosen so that the representation is the paper's 384-d (Table 6 / appendix
//! D.2); [`ResNet1dConfig::resnet18_wide`] gives the standard widths (512-d).
//! All convolutions are bias-free and Kaiming-normal (fan_out, ReLU)
//! initialised; BatchNorm has eps 1e-5, momentum 0.1, gamma 1 and beta 0,
//! except the last BN of each block, whose gamma starts at 0 when
//! `zero_init_residual` is set (the official VICReg backbone setting).
//! Tensor names follow torchvision (`conv1.weight`, `bn1.*`,
//! `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`, ...), with
//! `(out, in, kernel)` conv weights as PyTorch's `nn.Conv1d`.

use candle_core::{DType, Device, Module, ModuleT, Tensor};

use super::time_pool::TimePool;
use candle_nn::{BatchNormConfig, Init, VarBuilder};
use serde::{Deserialize, Serialize};
use vicreg_core::collective::SyncBatchNorm;
use vicreg_core::model::Encoder;

use super::conv1d::{conv_out_len, Conv1d};
use super::pool1d::max_pool1d;
use crate::{Error, Result};

/// Configuration of a [`ResNet1d`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNet1dConfig {
    /// BasicBlocks per stage (`[2, 2, 2, 2]` for ResNet-18).
    pub blocks: Vec<usize>,
    /// Output channels per stage; the last one is the representation size.
    pub widths: Vec<usize>,
    /// Stride of the first block of each stage (`[1, 2, 2, 2]`).
    pub stage_strides: Vec<usize>,
    /// Stem convolution length in samples (odd; padding is `kernel / 2`).
    pub stem_kernel: usize,
    /// Stem convolution stride.
    pub stem_stride: usize,
    /// Stem max-pool window (odd; padding `kernel / 2`); 0 disables the pool.
    pub pool_kernel: usize,
    /// Stem max-pool stride.
    pub pool_stride: usize,
    /// Length of the convolutions inside the BasicBlocks (odd; padding `kernel / 2`).
    pub block_kernel: usize,
    /// Start the last BatchNorm gamma of every block at 0, so each block starts as the identity.
    pub zero_init_residual: bool,
    /// Pooling of the last feature map over time (see [`TimePool`]).
    #[serde(default)]
    pub time_pool: TimePool,
}

impl Default for ResNet1dConfig {
    fn default() -> Self {
        Self::resnet18()
    }
}

impl ResNet1dConfig {
    /// The paper's waveform encoder: ResNet-18 layout, widths 48-96-192-384
    /// (384-d output, 2.17 M parameters). Cost grows with the clip length:
    /// about 8 GFLOP per 5 s clip at 16 kHz for the forward pass (most of it in
    /// layer4 at 1/64 of the sample rate); on the shared 2-core CPU, 8 such
    /// clips took ~10 s forward and ~28 s forward + backward (~113 s at 44.1 kHz).
    /// Raise `stem_stride` / `pool_stride` for cheaper runs.
    pub fn resnet18() -> Self {
        Self {
            blocks: vec![2, 2, 2, 2],
            widths: vec![48, 96, 192, 384],
            stage_strides: vec![1, 2, 2, 2],
            stem_kernel: 49,
            stem_stride: 4,
            pool_kernel: 3,
            pool_stride: 2,
            block_kernel: 3,
            zero_init_residual: true,
            time_pool: TimePool::Mean,
        }
    }

    /// ResNet-18 layout with the standard 64-128-256-512 widths (512-d output).
    pub fn resnet18_wide() -> Self {
        Self {
            widths: vec![64, 128, 256, 512],
            ..Self::resnet18()
        }
    }

    /// A two-stage, one-block-per-stage network (8-d output) for tests and examples.
    pub fn tiny() -> Self {
        Self {
            blocks: vec![1, 1],
            widths: vec![4, 8],
            stage_strides: vec![1, 2],
            stem_kernel: 9,
            stem_stride: 2,
            pool_kernel: 3,
            pool_stride: 2,
            block_kernel: 3,
            zero_init_residual: false,
            time_pool: TimePool::Mean,
        }
    }

    /// Checks that the stage lists agree and every size is usable.
    pub fn validate(&self) -> Result<()> {
        let n = self.blocks.len();
        if n == 0 || self.widths.len() != n || self.stage_strides.len() != n {
            return Err(Error::config(format!(
                "resnet1d: blocks ({}), widths ({}) and stage_strides ({}) must be non-empty lists of the same length",
                self.blocks.len(),
                self.widths.len(),
                self.stage_strides.len()
            )));
        }
        let zero = |v: &[usize]| v.contains(&0);
        if zero(&self.blocks) || zero(&self.widths) || zero(&self.stage_strides) {
            return Err(Error::config(format!(
                "resnet1d: blocks {:?}, widths {:?} and stage_strides {:?} must all be positive",
                self.blocks, self.widths, self.stage_strides
            )));
        }
        for (name, k) in [
            ("stem_kernel", self.stem_kernel),
            ("block_kernel", self.block_kernel),
        ] {
            if k.is_multiple_of(2) {
                return Err(Error::config(format!(
                    "resnet1d: {name} must be odd, got {k}"
                )));
            }
        }
        if self.pool_kernel > 0 && self.pool_kernel.is_multiple_of(2) {
            return Err(Error::config(format!(
                "resnet1d: pool_kernel must be odd (or 0 for no pool), got {}",
                self.pool_kernel
            )));
        }
        if self.stem_stride == 0 || (self.pool_kernel > 0 && self.pool_stride == 0) {
            return Err(Error::config(
                "resnet1d: stem_stride and pool_stride must be positive",
            ));
        }
        Ok(())
    }

    /// Number of time steps left after the last stage for an input of
    /// `samples` samples, or `None` when the input is too short for some layer.
    pub fn output_frames(&self, samples: usize) -> Option<usize> {
        let mut t = conv_out_len(
            samples,
            self.stem_kernel,
            self.stem_stride,
            self.stem_kernel / 2,
        )?;
        if self.pool_kernel > 0 {
            t = conv_out_len(t, self.pool_kernel, self.pool_stride, self.pool_kernel / 2)?;
        }
        for &s in &self.stage_strides {
            t = conv_out_len(t, self.block_kernel, s, self.block_kernel / 2)?;
        }
        Some(t)
    }

    /// The shortest input (in samples) that the network accepts.
    pub fn min_samples(&self) -> usize {
        (1..)
            .find(|&n| self.output_frames(n).is_some())
            .unwrap_or(1)
    }
}

/// BatchNorm with PyTorch defaults (eps 1e-5, momentum 0.1, beta 0) and a chosen initial gamma.
/// Synchronized over the thread's BatchNorm sync group when one is set
/// ([`vicreg_core::collective::set_sync_batchnorm`]), plain BatchNorm otherwise.
fn batch_norm(channels: usize, gamma: f64, vb: VarBuilder) -> candle_core::Result<SyncBatchNorm> {
    // Creating `weight` first fixes its initial value; `batch_norm` then fetches the same variable.
    vb.get_with_hints(channels, "weight", Init::Const(gamma))?;
    SyncBatchNorm::new(candle_nn::batch_norm(
        channels,
        BatchNormConfig::default(),
        vb,
    )?)
}

/// The ResNet BasicBlock with 1-D convolutions; input and output `(batch, channels, time)`.
#[derive(Clone, Debug)]
pub struct BasicBlock1d {
    conv1: Conv1d,
    bn1: SyncBatchNorm,
    conv2: Conv1d,
    bn2: SyncBatchNorm,
    downsample: Option<(Conv1d, SyncBatchNorm)>,
}

impl BasicBlock1d {
    /// A block from `in_channels` to `out_channels`, striding by `stride` in its
    /// first convolution, with `kernel`-tap convolutions (odd, padding `kernel / 2`).
    /// A 1x1 downsample branch is added when the stride or channel count changes.
    /// `zero_init_residual` starts `bn2`'s gamma at 0.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        kernel: usize,
        zero_init_residual: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let pad = kernel / 2;
        let conv1 = Conv1d::new(
            in_channels,
            out_channels,
            kernel,
            stride,
            pad,
            vb.pp("conv1"),
        )?;
        let bn1 = batch_norm(out_channels, 1.0, vb.pp("bn1"))?;
        let conv2 = Conv1d::new(out_channels, out_channels, kernel, 1, pad, vb.pp("conv2"))?;
        let bn2 = batch_norm(
            out_channels,
            if zero_init_residual { 0.0 } else { 1.0 },
            vb.pp("bn2"),
        )?;
        let downsample = if stride != 1 || in_channels != out_channels {
            let vb = vb.pp("downsample");
            Some((
                Conv1d::new(in_channels, out_channels, 1, stride, 0, vb.pp("0"))?,
                batch_norm(out_channels, 1.0, vb.pp("1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample,
        })
    }
}

impl ModuleT for BasicBlock1d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let y = self.bn2.forward_t(&self.conv2.forward(&y)?, train)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

/// The 1-D ResNet waveform encoder: `(batch, samples)` waveforms in [-1, 1]
/// -> `(batch, widths.last())` representations.
#[derive(Clone, Debug)]
pub struct ResNet1d {
    cfg: ResNet1dConfig,
    conv1: Conv1d,
    bn1: SyncBatchNorm,
    layers: Vec<Vec<BasicBlock1d>>,
    repr_dim: usize,
    dtype: DType,
    device: Device,
}

impl ResNet1d {
    /// Builds the network under `vb` (dtype and device of the variables are `vb`'s).
    pub fn new(cfg: &ResNet1dConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let conv1 = Conv1d::new(
            1,
            cfg.widths[0],
            cfg.stem_kernel,
            cfg.stem_stride,
            cfg.stem_kernel / 2,
            vb.pp("conv1"),
        )?;
        let bn1 = batch_norm(cfg.widths[0], 1.0, vb.pp("bn1"))?;
        let mut layers = Vec::with_capacity(cfg.blocks.len());
        let mut in_ch = cfg.widths[0];
        for (i, ((&n, &w), &s)) in cfg
            .blocks
            .iter()
            .zip(&cfg.widths)
            .zip(&cfg.stage_strides)
            .enumerate()
        {
            let vbl = vb.pp(format!("layer{}", i + 1));
            let mut blocks = Vec::with_capacity(n);
            for j in 0..n {
                let stride = if j == 0 { s } else { 1 };
                blocks.push(BasicBlock1d::new(
                    in_ch,
                    w,
                    stride,
                    cfg.block_kernel,
                    cfg.zero_init_residual,
                    vbl.pp(j.to_string()),
                )?);
                in_ch = w;
            }
            layers.push(blocks);
        }
        Ok(Self {
            cfg: cfg.clone(),
            conv1,
            bn1,
            layers,
            repr_dim: in_ch,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &ResNet1dConfig {
        &self.cfg
    }

    /// `(batch, channels, frames)` features of the last stage, before pooling
    /// (`frames` = [`ResNet1dConfig::output_frames`]). Fails on inputs that are
    /// not `(batch, samples)`, shorter than [`ResNet1dConfig::min_samples`],
    /// or (in train mode) leave a single value per channel for BatchNorm.
    pub fn features_t(&self, waves: &Tensor, train: bool) -> Result<Tensor> {
        let (batch, samples) = waves.dims2().map_err(|_| {
            Error::invalid(format!(
                "resnet1d: expected (batch, samples) waveforms, got shape {:?}",
                waves.dims()
            ))
        })?;
        let min = self.cfg.min_samples();
        if samples < min {
            return Err(Error::invalid(format!(
                "resnet1d: waveforms of {samples} samples are shorter than the {min} this network needs"
            )));
        }
        let frames = self.cfg.output_frames(samples).unwrap_or(0);
        if train && batch * frames < 2 {
            return Err(Error::invalid(format!(
                "resnet1d: train-mode BatchNorm needs more than one value per channel, but a batch of {batch} \
                 waveforms of {samples} samples leaves {frames} frame(s) in the last stage; use a batch of at least 2"
            )));
        }
        let x = waves
            .to_dtype(self.dtype)?
            .to_device(&self.device)?
            .unsqueeze(1)?;
        let mut x = self
            .bn1
            .forward_t(&self.conv1.forward(&x)?, train)?
            .relu()?;
        if self.cfg.pool_kernel > 0 {
            x = max_pool1d(
                &x,
                self.cfg.pool_kernel,
                self.cfg.pool_stride,
                self.cfg.pool_kernel / 2,
            )?;
        }
        for block in self.layers.iter().flatten() {
            x = block.forward_t(&x, train)?;
        }
        Ok(x)
    }
}

impl Encoder for ResNet1d {
    /// `(batch, samples)` float waveforms, nominally in [-1, 1]; any float
    /// dtype and device (converted to the network's).
    type Input = Tensor;

    fn forward_t(&self, waves: &Tensor, train: bool) -> vicreg_core::Result<Tensor> {
        Ok(self.cfg.time_pool.pool(&self.features_t(waves, train)?)?)
    }

    fn repr_dim(&self) -> usize {
        self.repr_dim
    }
}

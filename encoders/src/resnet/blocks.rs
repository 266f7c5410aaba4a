//! Residual blocks of torchvision's ResNet (v1.5: the stride of a bottleneck
//! sits on its 3x3 convolution), with torchvision's tensor names.

use candle_core::{ModuleT, Tensor};
use candle_nn::VarBuilder;

use super::ops::{BatchNorm2d, Conv2d};

/// The projection shortcut `downsample.0` (1x1 conv, stride s) -> `downsample.1` (BN),
/// used when a block changes resolution or channel count.
#[derive(Clone, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl Downsample {
    /// `in_c` -> `out_c` channels, spatial stride `stride`.
    pub fn new(
        in_c: usize,
        out_c: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            conv: Conv2d::new(in_c, out_c, 1, stride, 0, vb.pp("0"))?,
            bn: BatchNorm2d::new(out_c, false, vb.pp("1"))?,
        })
    }

    fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        self.conv.collect(&format!("{prefix}0."), out);
        self.bn.collect(&format!("{prefix}1."), out);
    }
}

impl ModuleT for Downsample {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.bn.forward_t(&self.conv.forward(x)?, train)
    }
}

fn needs_downsample(in_c: usize, out_c: usize, stride: usize) -> bool {
    stride != 1 || in_c != out_c
}

/// `conv1` 3x3 (stride s) -> `bn1` -> ReLU -> `conv2` 3x3 -> `bn2`, plus the
/// shortcut, then ReLU. `(N, in_c, H, W)` -> `(N, planes, H/s, W/s)`.
#[derive(Clone, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    /// A block from `in_c` to `planes` channels; `zero_init_residual` sets
    /// `bn2.weight` to 0.
    pub fn new(
        in_c: usize,
        planes: usize,
        stride: usize,
        zero_init_residual: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: Conv2d::new(in_c, planes, 3, stride, 1, vb.pp("conv1"))?,
            bn1: BatchNorm2d::new(planes, false, vb.pp("bn1"))?,
            conv2: Conv2d::new(planes, planes, 3, 1, 1, vb.pp("conv2"))?,
            bn2: BatchNorm2d::new(planes, zero_init_residual, vb.pp("bn2"))?,
            downsample: if needs_downsample(in_c, planes, stride) {
                Some(Downsample::new(in_c, planes, stride, vb.pp("downsample"))?)
            } else {
                None
            },
        })
    }

    /// Appends every tensor under `prefix` (e.g. `"layer1.0."`).
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        self.conv1.collect(&format!("{prefix}conv1."), out);
        self.bn1.collect(&format!("{prefix}bn1."), out);
        self.conv2.collect(&format!("{prefix}conv2."), out);
        self.bn2.collect(&format!("{prefix}bn2."), out);
        if let Some(d) = &self.downsample {
            d.collect(&format!("{prefix}downsample."), out);
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let out = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let out = self.bn2.forward_t(&self.conv2.forward(&out)?, train)?;
        let identity = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        (out + identity)?.relu()
    }
}

/// `conv1` 1x1 -> `bn1` -> ReLU -> `conv2` 3x3 (stride s) -> `bn2` -> ReLU ->
/// `conv3` 1x1 -> `bn3`, plus the shortcut, then ReLU.
/// `(N, in_c, H, W)` -> `(N, 4 planes, H/s, W/s)`; the inner width is `planes`.
#[derive(Clone, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 4;

    /// A block from `in_c` to `4 planes` channels; `zero_init_residual` sets
    /// `bn3.weight` to 0.
    pub fn new(
        in_c: usize,
        planes: usize,
        stride: usize,
        zero_init_residual: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let out_c = planes * Self::EXPANSION;
        Ok(Self {
            conv1: Conv2d::new(in_c, planes, 1, 1, 0, vb.pp("conv1"))?,
            bn1: BatchNorm2d::new(planes, false, vb.pp("bn1"))?,
            conv2: Conv2d::new(planes, planes, 3, stride, 1, vb.pp("conv2"))?,
            bn2: BatchNorm2d::new(planes, false, vb.pp("bn2"))?,
            conv3: Conv2d::new(planes, out_c, 1, 1, 0, vb.pp("conv3"))?,
            bn3: BatchNorm2d::new(out_c, zero_init_residual, vb.pp("bn3"))?,
            downsample: if needs_downsample(in_c, out_c, stride) {
                Some(Downsample::new(in_c, out_c, stride, vb.pp("downsample"))?)
            } else {
                None
            },
        })
    }

    /// Appends every tensor under `prefix` (e.g. `"layer1.0."`).
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        self.conv1.collect(&format!("{prefix}conv1."), out);
        self.bn1.collect(&format!("{prefix}bn1."), out);
        self.conv2.collect(&format!("{prefix}conv2."), out);
        self.bn2.collect(&format!("{prefix}bn2."), out);
        self.conv3.collect(&format!("{prefix}conv3."), out);
        self.bn3.collect(&format!("{prefix}bn3."), out);
        if let Some(d) = &self.downsample {
            d.collect(&format!("{prefix}downsample."), out);
        }
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let out = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let out = self.bn2.forward_relu_t(&self.conv2.forward(&out)?, train)?;
        let out = self.bn3.forward_t(&self.conv3.forward(&out)?, train)?;
        let identity = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        (out + identity)?.relu()
    }
}

/// Either block type.
#[derive(Clone, Debug)]
pub enum Block {
    /// ResNet-18/34 block.
    Basic(BasicBlock),
    /// ResNet-50+ block.
    Bottleneck(Bottleneck),
}

impl Block {
    /// Appends every tensor under `prefix`.
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        match self {
            Block::Basic(b) => b.collect(prefix, out),
            Block::Bottleneck(b) => b.collect(prefix, out),
        }
    }
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            Block::Basic(b) => b.forward_t(x, train),
            Block::Bottleneck(b) => b.forward_t(x, train),
        }
    }
}

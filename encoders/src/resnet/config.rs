//! Configuration of the ResNet family: depth, width multiplier, input
//! channels, zero-initialised residual branches.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The residual block type of a ResNet depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1x1 -> 3x3 (stride here, torchvision v1.5) -> 1x1 convolutions (ResNet-50 and deeper), expansion 4.
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block divided by its `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The depths that exist, with their block type and number of blocks per stage.
const DEPTHS: [(usize, BlockKind, [usize; 4]); 6] = [
    (18, BlockKind::Basic, [2, 2, 2, 2]),
    (34, BlockKind::Basic, [3, 4, 6, 3]),
    (50, BlockKind::Bottleneck, [3, 4, 6, 3]),
    (101, BlockKind::Bottleneck, [3, 4, 23, 3]),
    (152, BlockKind::Bottleneck, [3, 8, 36, 3]),
    (200, BlockKind::Bottleneck, [3, 24, 36, 3]),
];

/// Channels of the stem and of the first stage's `planes` at width 1.
pub const BASE_WIDTH: usize = 64;

/// A ResNet encoder (no classification head).
///
/// Width `w` multiplies every channel count as in the official VICReg
/// `resnet.py` (`widen`): the stem has `64 w` channels, stage `i` uses
/// `64 w 2^i` planes, and the representation has `512 w` (basic blocks) or
/// `2048 w` (bottleneck blocks) dimensions. `resnet50x2` is depth 50, width 2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    /// 18, 34, 50, 101, 152 or 200.
    pub depth: usize,
    /// Width multiplier (1 = standard ResNet).
    pub width: usize,
    /// Channels of the input image (3 for RGB, 1 for spectrograms).
    pub in_channels: usize,
    /// Zero-initialise the last BatchNorm weight of every residual branch so
    /// each block starts as the identity (official VICReg: on).
    pub zero_init_residual: bool,
}

impl Default for ResNetConfig {
    /// The official VICReg backbone: ResNet-50, RGB, zero-initialised residuals.
    fn default() -> Self {
        Self::resnet50()
    }
}

impl ResNetConfig {
    fn with_depth(depth: usize) -> Self {
        Self {
            depth,
            width: 1,
            in_channels: 3,
            zero_init_residual: true,
        }
    }
    /// ResNet-18 (basic blocks, 512-d representation).
    pub fn resnet18() -> Self {
        Self::with_depth(18)
    }
    /// ResNet-34 (basic blocks, 512-d representation).
    pub fn resnet34() -> Self {
        Self::with_depth(34)
    }
    /// ResNet-50 (bottleneck blocks, 2048-d representation).
    pub fn resnet50() -> Self {
        Self::with_depth(50)
    }
    /// ResNet-101.
    pub fn resnet101() -> Self {
        Self::with_depth(101)
    }
    /// ResNet-152.
    pub fn resnet152() -> Self {
        Self::with_depth(152)
    }
    /// ResNet-50 x2 of the official code (4096-d representation).
    pub fn resnet50x2() -> Self {
        Self::resnet50().widen(2)
    }

    /// The same network with width multiplier `width`.
    pub fn widen(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// The same network for `in_channels`-channel inputs.
    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// The same network with zero-initialised residual branches on or off.
    pub fn with_zero_init_residual(mut self, on: bool) -> Self {
        self.zero_init_residual = on;
        self
    }

    /// Parses an architecture name: `resnet18`, `resnet34`, `resnet50`,
    /// `resnet101`, `resnet152`, `resnet200`, each optionally followed by a
    /// width multiplier `xN` (`resnet50x2`, `resnet200x2`). Case-insensitive.
    pub fn from_name(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        let bad = || {
            Error::config(format!(
                "unknown ResNet architecture {name:?}; valid names: {} (optionally with a width multiplier xN, e.g. resnet50x2)",
                valid_names().join(", ")
            ))
        };
        let rest = lower.strip_prefix("resnet").ok_or_else(bad)?;
        let (depth, width) = match rest.split_once('x') {
            Some((d, w)) => (d, Some(w)),
            None => (rest, None),
        };
        let depth: usize = depth.parse().map_err(|_| bad())?;
        let width: usize = match width {
            Some(w) => w.parse().ok().filter(|&w| w >= 1).ok_or_else(bad)?,
            None => 1,
        };
        if !DEPTHS.iter().any(|(d, _, _)| *d == depth) {
            return Err(bad());
        }
        Ok(Self::with_depth(depth).widen(width))
    }

    /// The canonical name (`resnet50`, `resnet50x2`).
    pub fn name(&self) -> String {
        if self.width == 1 {
            format!("resnet{}", self.depth)
        } else {
            format!("resnet{}x{}", self.depth, self.width)
        }
    }

    /// Checks that every field has a usable value.
    pub fn validate(&self) -> Result<()> {
        if !DEPTHS.iter().any(|(d, _, _)| *d == self.depth) {
            let ds: Vec<String> = DEPTHS.iter().map(|(d, _, _)| d.to_string()).collect();
            return Err(Error::config(format!(
                "ResNet depth {} does not exist; valid depths: {}",
                self.depth,
                ds.join(", ")
            )));
        }
        if self.width == 0 {
            return Err(Error::config("ResNet width multiplier must be >= 1, got 0"));
        }
        if self.in_channels == 0 {
            return Err(Error::config("ResNet in_channels must be >= 1, got 0"));
        }
        Ok(())
    }

    /// Block type of this depth.
    pub fn block_kind(&self) -> Result<BlockKind> {
        Ok(self.depth_entry()?.1)
    }

    /// Blocks in each of the four stages.
    pub fn stage_blocks(&self) -> Result<[usize; 4]> {
        Ok(self.depth_entry()?.2)
    }

    /// The table row of this depth, after [`validate`](Self::validate).
    fn depth_entry(&self) -> Result<(usize, BlockKind, [usize; 4])> {
        self.validate()?;
        DEPTHS
            .iter()
            .find(|(d, _, _)| *d == self.depth)
            .copied()
            .ok_or_else(|| Error::config(format!("ResNet depth {} does not exist", self.depth)))
    }

    /// Channels of the stem output (`64 * width`).
    pub fn stem_channels(&self) -> usize {
        BASE_WIDTH * self.width
    }

    /// Size of the representation: `512 * width` (basic) or `2048 * width` (bottleneck).
    pub fn repr_dim(&self) -> Result<usize> {
        Ok(BASE_WIDTH * self.width * 8 * self.block_kind()?.expansion())
    }

    /// Spatial size `(h, w)` of the last stage's feature map for an `(h, w)`
    /// input: five halvings (stem conv, maxpool, stages 2-4), each
    /// `floor((n - 1) / 2) + 1` as in PyTorch with the padding used here.
    pub fn final_spatial(h: usize, w: usize) -> (usize, usize) {
        let halve = |n: usize| (n.saturating_sub(1)) / 2 + 1;
        let (mut h, mut w) = (h, w);
        for _ in 0..5 {
            h = halve(h);
            w = halve(w);
        }
        (h, w)
    }
}

/// Every architecture name [`ResNetConfig::from_name`] accepts with width 1.
pub fn valid_names() -> Vec<String> {
    DEPTHS
        .iter()
        .map(|(d, _, _)| format!("resnet{d}"))
        .collect()
}

impl std::str::FromStr for ResNetConfig {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

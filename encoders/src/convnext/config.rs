//! Configuration of the ConvNeXt family: blocks and channels per stage,
//! stochastic depth, layer scale, input channels.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Named sizes: `(name, blocks per stage, channels per stage)`. tiny / small
/// / base / large / xlarge are the paper's (Liu et al. 2022, official
/// `convnext.py`); atto ... nano are timm's small variants, for CPU runs.
const SIZES: [(&str, [usize; 4], [usize; 4]); 9] = [
    ("atto", [2, 2, 6, 2], [40, 80, 160, 320]),
    ("femto", [2, 2, 6, 2], [48, 96, 192, 384]),
    ("pico", [2, 2, 6, 2], [64, 128, 256, 512]),
    ("nano", [2, 2, 8, 2], [80, 160, 320, 640]),
    ("tiny", [3, 3, 9, 3], [96, 192, 384, 768]),
    ("small", [3, 3, 27, 3], [96, 192, 384, 768]),
    ("base", [3, 3, 27, 3], [128, 256, 512, 1024]),
    ("large", [3, 3, 27, 3], [192, 384, 768, 1536]),
    ("xlarge", [3, 3, 27, 3], [256, 512, 1024, 2048]),
];

/// Most blocks in one stage and most channels of one stage (bounds on
/// values read from a config file).
pub const MAX_BLOCKS: usize = 64;
/// See [`MAX_BLOCKS`].
pub const MAX_CHANNELS: usize = 8192;

/// A ConvNeXt encoder (no classification head), in the layout of the
/// official `convnext.py` of ConvNeXt and VICRegL: a 4x4 stride-4 stem
/// convolution + channels-first LayerNorm, then four stages of blocks
/// (7x7 depthwise conv -> LayerNorm -> Linear 4C -> GELU -> Linear C ->
/// layer scale -> drop path, residual), stages joined by LayerNorm + 2x2
/// stride-2 convolutions, and a final LayerNorm on every feature-map vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvNeXtConfig {
    /// Blocks in each of the four stages.
    pub depths: [usize; 4],
    /// Channels of each stage; the representation has `dims[3]` dimensions.
    pub dims: [usize; 4],
    /// Channels of the input image.
    pub in_channels: usize,
    /// Stochastic depth: the drop probability grows linearly from 0 at the
    /// first block to this value at the last (VICRegL default 0.1).
    pub drop_path_rate: f64,
    /// Initial value of the per-channel layer scale `gamma`; 0 means no
    /// layer scale (VICRegL default 0; ConvNeXt classification, timm and
    /// torchvision use 1e-6).
    pub layer_scale_init_value: f64,
    /// Seed of the drop-path masks (apps set the run's seed).
    pub drop_path_seed: u64,
}

impl Default for ConvNeXtConfig {
    /// ConvNeXt-Tiny with VICRegL's settings (drop path 0.1, no layer scale).
    fn default() -> Self {
        Self::tiny()
    }
}

impl ConvNeXtConfig {
    fn sized(depths: [usize; 4], dims: [usize; 4]) -> Self {
        Self {
            depths,
            dims,
            in_channels: 3,
            drop_path_rate: 0.1,
            layer_scale_init_value: 0.0,
            drop_path_seed: 0,
        }
    }

    /// ConvNeXt-Atto (3.4 M parameters, 320-d representation).
    pub fn atto() -> Self {
        Self::sized(SIZES[0].1, SIZES[0].2)
    }
    /// ConvNeXt-Tiny (28 M parameters, 768-d representation).
    pub fn tiny() -> Self {
        Self::sized(SIZES[4].1, SIZES[4].2)
    }
    /// ConvNeXt-Small (50 M parameters, 768-d representation).
    pub fn small() -> Self {
        Self::sized(SIZES[5].1, SIZES[5].2)
    }
    /// ConvNeXt-Base (89 M parameters, 1024-d representation).
    pub fn base() -> Self {
        Self::sized(SIZES[6].1, SIZES[6].2)
    }

    /// Any depths and channels (e.g. a tiny network for tests).
    pub fn custom(depths: [usize; 4], dims: [usize; 4]) -> Self {
        Self::sized(depths, dims)
    }

    /// The same network with drop-path rate `rate`.
    pub fn with_drop_path_rate(mut self, rate: f64) -> Self {
        self.drop_path_rate = rate;
        self
    }

    /// The same network with drop-path masks seeded by `seed`.
    pub fn with_drop_path_seed(mut self, seed: u64) -> Self {
        self.drop_path_seed = seed;
        self
    }

    /// The same network with layer scale initialised to `value` (0: none).
    pub fn with_layer_scale(mut self, value: f64) -> Self {
        self.layer_scale_init_value = value;
        self
    }

    /// The same network for `in_channels`-channel inputs.
    pub fn with_in_channels(mut self, in_channels: usize) -> Self {
        self.in_channels = in_channels;
        self
    }

    /// Parses `convnext_<size>` (also `convnext-<size>`, `convnext<size>`),
    /// size one of atto, femto, pico, nano, tiny, small, base, large, xlarge.
    /// Case-insensitive.
    pub fn from_name(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        let size = lower
            .strip_prefix("convnext")
            .map(|r| r.trim_start_matches(['_', '-']));
        SIZES
            .iter()
            .find(|(n, _, _)| Some(*n) == size)
            .map(|(_, d, c)| Self::sized(*d, *c))
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown ConvNeXt architecture {name:?}; valid names: {}",
                    valid_names().join(", ")
                ))
            })
    }

    /// `convnext_<size>` when the depths and channels are a named size,
    /// else `convnext(depths=.., dims=..)`.
    pub fn name(&self) -> String {
        SIZES
            .iter()
            .find(|(_, d, c)| *d == self.depths && *c == self.dims)
            .map(|(n, _, _)| format!("convnext_{n}"))
            .unwrap_or_else(|| format!("convnext(depths={:?}, dims={:?})", self.depths, self.dims))
    }

    /// Checks that every field has a usable value.
    pub fn validate(&self) -> Result<()> {
        if self.depths.iter().any(|&d| d == 0 || d > MAX_BLOCKS) {
            return Err(Error::config(format!(
                "ConvNeXt depths must be 1..={MAX_BLOCKS} blocks per stage, got {:?}",
                self.depths
            )));
        }
        if self.dims.iter().any(|&c| c == 0 || c > MAX_CHANNELS) {
            return Err(Error::config(format!(
                "ConvNeXt dims must be 1..={MAX_CHANNELS} channels per stage, got {:?}",
                self.dims
            )));
        }
        if self.in_channels == 0 || self.in_channels > MAX_CHANNELS {
            return Err(Error::config(format!(
                "ConvNeXt in_channels must be 1..={MAX_CHANNELS}, got {}",
                self.in_channels
            )));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return Err(Error::config(format!(
                "ConvNeXt drop_path_rate must be in [0, 1), got {}",
                self.drop_path_rate
            )));
        }
        if !self.layer_scale_init_value.is_finite() || self.layer_scale_init_value < 0.0 {
            return Err(Error::config(format!(
                "ConvNeXt layer_scale_init_value must be finite and >= 0, got {}",
                self.layer_scale_init_value
            )));
        }
        Ok(())
    }

    /// Size of the representation (`dims[3]`).
    pub fn repr_dim(&self) -> usize {
        self.dims[3]
    }

    /// Drop-path probability of every block, in order: `linspace(0, rate,
    /// total blocks)` as the official code.
    pub fn drop_path_rates(&self) -> Vec<f64> {
        let total: usize = self.depths.iter().sum();
        (0..total)
            .map(|i| {
                if total <= 1 {
                    0.0
                } else {
                    self.drop_path_rate * i as f64 / (total - 1) as f64
                }
            })
            .collect()
    }

    /// Spatial size `(h, w)` of the last feature map for an `(h, w)` input:
    /// the stem divides by 4 and each of three downsamplings by 2 (floor),
    /// i.e. `floor(n / 32)` for sizes that are multiples of 4.
    pub fn final_spatial(h: usize, w: usize) -> (usize, usize) {
        let f = |n: usize| n / 4 / 2 / 2 / 2;
        (f(h), f(w))
    }
}

/// Every architecture name [`ConvNeXtConfig::from_name`] accepts.
pub fn valid_names() -> Vec<String> {
    SIZES
        .iter()
        .map(|(n, _, _)| format!("convnext_{n}"))
        .collect()
}

impl std::str::FromStr for ConvNeXtConfig {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for n in valid_names() {
            let cfg: ConvNeXtConfig = n.parse().unwrap();
            assert_eq!(cfg.name(), n);
            cfg.validate().unwrap();
        }
        assert_eq!(
            ConvNeXtConfig::from_name("ConvNeXt-Tiny").unwrap(),
            ConvNeXtConfig::tiny()
        );
        assert_eq!(ConvNeXtConfig::tiny().repr_dim(), 768);
        assert!(ConvNeXtConfig::from_name("convnext_huge").is_err());
        assert!(ConvNeXtConfig::from_name("resnet50").is_err());
    }

    #[test]
    fn drop_path_rates_are_linear_and_validation_bounds_values() {
        let cfg = ConvNeXtConfig::custom([1, 1, 2, 1], [8, 16, 32, 64]).with_drop_path_rate(0.4);
        let r = cfg.drop_path_rates();
        assert_eq!(r.len(), 5);
        assert!(
            (r[0] - 0.0).abs() < 1e-12 && (r[4] - 0.4).abs() < 1e-12 && (r[2] - 0.2).abs() < 1e-12
        );
        assert!(cfg.clone().with_drop_path_rate(1.0).validate().is_err());
        assert!(cfg.clone().with_layer_scale(-1.0).validate().is_err());
        assert!(ConvNeXtConfig::custom([0, 1, 1, 1], [8, 8, 8, 8])
            .validate()
            .is_err());
        assert!(ConvNeXtConfig::custom([1, 1, 1, 1], [8, 8, 8, 1 << 20])
            .validate()
            .is_err());
        assert_eq!(ConvNeXtConfig::final_spatial(224, 224), (7, 7));
        assert_eq!(ConvNeXtConfig::final_spatial(96, 64), (3, 2));
    }
}

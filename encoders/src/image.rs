//! One image encoder type for apps that let the user pick the architecture
//! by name: a ResNet (`resnet50`, ...) or a ConvNeXt (`convnext_tiny`, ...),
//! both with their feature maps for dense criteria (VICRegL).

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use vicreg_core::model::{DenseEncoder, Encoder};

use crate::convnext::{ConvNeXt, ConvNeXtConfig};
use crate::resnet::{ResNet, ResNetConfig};
use crate::{Error, Result};

/// Architecture options that only some families use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageEncoderOptions {
    /// ResNet: zero-initialised last BatchNorm of every residual branch.
    pub zero_init_residual: bool,
    /// ConvNeXt: stochastic-depth rate (VICRegL default 0.1).
    pub drop_path_rate: f64,
    /// ConvNeXt: layer-scale init value, 0 = none (VICRegL default 0).
    pub layer_scale_init_value: f64,
    /// ConvNeXt: seed of the drop-path masks.
    pub seed: u64,
}

impl Default for ImageEncoderOptions {
    fn default() -> Self {
        Self {
            zero_init_residual: true,
            drop_path_rate: 0.1,
            layer_scale_init_value: 0.0,
            seed: 0,
        }
    }
}

/// A ResNet or a ConvNeXt, chosen by architecture name.
#[derive(Clone, Debug)]
pub enum ImageEncoder {
    /// torchvision-layout ResNet.
    ResNet(ResNet),
    /// Official-layout ConvNeXt.
    ConvNeXt(ConvNeXt),
}

/// Whether `arch` names a ConvNeXt (`convnext_*`).
pub fn is_convnext(arch: &str) -> bool {
    arch.trim().to_ascii_lowercase().starts_with("convnext")
}

/// Checks that `arch` is a known ResNet or ConvNeXt name (error lists both families).
pub fn check_arch(arch: &str) -> Result<()> {
    if is_convnext(arch) {
        ConvNeXtConfig::from_name(arch).map(|_| ())
    } else {
        ResNetConfig::from_name(arch).map(|_| ()).map_err(|e| {
            Error::config(format!(
                "{e}; ConvNeXts: {}",
                crate::convnext::valid_names().join(", ")
            ))
        })
    }
}

impl ImageEncoder {
    /// Builds the network `arch` under `vb` (seeded init from a
    /// [`vicreg_core::ParamStore`]).
    pub fn from_arch(arch: &str, opts: &ImageEncoderOptions, vb: VarBuilder) -> Result<Self> {
        check_arch(arch)?;
        if is_convnext(arch) {
            let cfg = ConvNeXtConfig::from_name(arch)?
                .with_drop_path_rate(opts.drop_path_rate)
                .with_layer_scale(opts.layer_scale_init_value)
                .with_drop_path_seed(opts.seed);
            Ok(Self::ConvNeXt(ConvNeXt::new(&cfg, vb)?))
        } else {
            let cfg =
                ResNetConfig::from_name(arch)?.with_zero_init_residual(opts.zero_init_residual);
            Ok(Self::ResNet(ResNet::new(&cfg, vb)?))
        }
    }

    /// Builds `arch` and loads its weights from `path` (safetensors or
    /// `.pth`; see each family's `load_weights`). A ConvNeXt gets layer scale
    /// when the file has `gamma` / `layer_scale` tensors, whatever
    /// `opts.layer_scale_init_value` says.
    pub fn from_weights(
        arch: &str,
        path: &Path,
        opts: &ImageEncoderOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let raw = crate::resnet::read_checkpoint(path)?;
        if is_convnext(arch) {
            let tensors = crate::convnext::convnext_state_dict(raw)?;
            let has_gamma = tensors.keys().any(|k| k.ends_with(".gamma"));
            let opts = ImageEncoderOptions {
                layer_scale_init_value: if has_gamma { 1e-6 } else { 0.0 },
                ..opts.clone()
            };
            let net = Self::from_arch(arch, &opts, vb)?;
            if let Self::ConvNeXt(n) = &net {
                n.load_state_dict(&tensors, path)?;
            }
            Ok(net)
        } else {
            let net = Self::from_arch(arch, opts, vb)?;
            if let Self::ResNet(n) = &net {
                n.load_state_dict(&crate::resnet::resnet_state_dict(raw), path)?;
            }
            Ok(net)
        }
    }

    /// The canonical architecture name.
    pub fn name(&self) -> String {
        match self {
            Self::ResNet(n) => n.config().name(),
            Self::ConvNeXt(n) => n.config().name(),
        }
    }

    /// `(N, C, H, W)` images -> `(N, repr_dim)` features.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::ResNet(n) => n.features(x, train),
            Self::ConvNeXt(n) => n.features(x, train),
        }
    }

    /// Every tensor under its checkpoint name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        match self {
            Self::ResNet(n) => n.named_tensors(),
            Self::ConvNeXt(n) => n.named_tensors(),
        }
    }

    /// Loads weights from a safetensors or `.pth` file (each family's
    /// loader: names, prefixes and torchvision translation as documented there).
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        match self {
            Self::ResNet(n) => n.load_weights(path),
            Self::ConvNeXt(n) => n.load_weights(path),
        }
    }

    /// A deep copy of every tensor under its checkpoint name.
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        match self {
            Self::ResNet(n) => n.state_dict(),
            Self::ConvNeXt(n) => n.state_dict(),
        }
    }

    /// Number of trainable values.
    pub fn num_parameters(&self) -> usize {
        match self {
            Self::ResNet(n) => n.num_parameters(),
            Self::ConvNeXt(n) => n.num_parameters(),
        }
    }
}

impl Encoder for ImageEncoder {
    /// `(batch, channels, height, width)` images.
    type Input = Tensor;

    fn forward_t(&self, input: &Tensor, train: bool) -> vicreg_core::Result<Tensor> {
        Ok(self.features(input, train)?)
    }

    fn repr_dim(&self) -> usize {
        match self {
            Self::ResNet(n) => n.repr_dim(),
            Self::ConvNeXt(n) => n.repr_dim(),
        }
    }
}

impl DenseEncoder for ResNet {
    /// The last stage's map `(N, C, h, w)` as `(N, h * w, C)` vectors (no
    /// norm: the ResNet has none after its last block), grid `(h, w)`, and
    /// their mean.
    fn forward_maps(
        &self,
        x: &Tensor,
        train: bool,
    ) -> vicreg_core::Result<(Tensor, (usize, usize), Tensor)> {
        let fmap = self.feature_map(x, train)?;
        let (n, c, h, w) = fmap.dims4()?;
        let maps = fmap.reshape((n, c, h * w))?.transpose(1, 2)?.contiguous()?;
        let pooled = maps.mean(1)?;
        Ok((maps, (h, w), pooled))
    }
}

impl DenseEncoder for ConvNeXt {
    fn forward_maps(
        &self,
        x: &Tensor,
        train: bool,
    ) -> vicreg_core::Result<(Tensor, (usize, usize), Tensor)> {
        let (maps, pooled) = ConvNeXt::forward_maps(self, x, train)?;
        let (_, _, h, w) = x.dims4()?;
        Ok((maps, ConvNeXtConfig::final_spatial(h, w), pooled))
    }
}

impl DenseEncoder for ImageEncoder {
    fn forward_maps(
        &self,
        x: &Tensor,
        train: bool,
    ) -> vicreg_core::Result<(Tensor, (usize, usize), Tensor)> {
        match self {
            Self::ResNet(n) => n.forward_maps(x, train),
            Self::ConvNeXt(n) => DenseEncoder::forward_maps(n, x, train),
        }
    }
}

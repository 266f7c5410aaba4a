//! The ResNet encoder: stem, four stages of residual blocks, global average
//! pooling, no classification head.

use candle_core::{DType, ModuleT, Tensor};
use candle_nn::VarBuilder;
use vicreg_core::model::Encoder;

use super::blocks::{BasicBlock, Block, Bottleneck};
use super::config::{BlockKind, ResNetConfig};
use super::ops::{BatchNorm2d, Conv2d};
use super::pool::{global_avg_pool, stem_max_pool};
use crate::{Error, Result};

/// A torchvision-layout ResNet without `fc`: `(N, C, H, W)` images ->
/// `(N, repr_dim)` globally average-pooled features.
///
/// Tensor names are torchvision's (`conv1.weight`, `bn1.running_mean`,
/// `layer2.0.downsample.0.weight`, ...), relative to the `VarBuilder` given
/// to [`ResNet::new`].
#[derive(Clone, Debug)]
pub struct ResNet {
    cfg: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    stages: Vec<Vec<Block>>,
    repr_dim: usize,
}

impl ResNet {
    /// Builds the network under `vb` (usually from
    /// [`vicreg_core::ParamStore::var_builder`], which gives seeded Kaiming
    /// fan-out conv weights, BN weight 1 / bias 0, and BN weight 0 at the end
    /// of each residual branch when `cfg.zero_init_residual`).
    pub fn new(cfg: &ResNetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let kind = cfg.block_kind()?;
        let blocks = cfg.stage_blocks()?;
        let stem = cfg.stem_channels();
        let conv1 = Conv2d::new(cfg.in_channels, stem, 7, 2, 3, vb.pp("conv1"))?;
        let bn1 = BatchNorm2d::new(stem, false, vb.pp("bn1"))?;
        let mut in_c = stem;
        let mut stages = Vec::with_capacity(4);
        for (i, &n) in blocks.iter().enumerate() {
            let planes = stem << i;
            let stage_vb = vb.pp(format!("layer{}", i + 1));
            let mut stage = Vec::with_capacity(n);
            for j in 0..n {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let bvb = stage_vb.pp(j.to_string());
                let block = match kind {
                    BlockKind::Basic => Block::Basic(BasicBlock::new(
                        in_c,
                        planes,
                        stride,
                        cfg.zero_init_residual,
                        bvb,
                    )?),
                    BlockKind::Bottleneck => Block::Bottleneck(Bottleneck::new(
                        in_c,
                        planes,
                        stride,
                        cfg.zero_init_residual,
                        bvb,
                    )?),
                };
                stage.push(block);
                in_c = planes * kind.expansion();
            }
            stages.push(stage);
        }
        Ok(Self {
            cfg: cfg.clone(),
            conv1,
            bn1,
            stages,
            repr_dim: in_c,
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }

    /// Checks an input batch: rank 4, the configured channel count, a float
    /// dtype, and (in train mode) more than one value per channel at the last
    /// BatchNorm.
    pub fn check_input(&self, x: &Tensor, train: bool) -> Result<()> {
        let dims = x.dims();
        if dims.len() != 4 {
            return Err(Error::invalid(format!(
                "{} expects images of shape (batch, {}, height, width), got {:?}",
                self.cfg.name(),
                self.cfg.in_channels,
                dims
            )));
        }
        let (n, c, h, w) = (dims[0], dims[1], dims[2], dims[3]);
        if c != self.cfg.in_channels {
            return Err(Error::invalid(format!(
                "{} was built for {} input channels, got images of shape {:?}",
                self.cfg.name(),
                self.cfg.in_channels,
                dims
            )));
        }
        if n == 0 || h == 0 || w == 0 {
            return Err(Error::invalid(format!(
                "empty image batch of shape {dims:?}"
            )));
        }
        if !x.dtype().is_float() {
            return Err(Error::invalid(format!(
                "images must be floating point, got {:?}",
                x.dtype()
            )));
        }
        let (fh, fw) = ResNetConfig::final_spatial(h, w);
        if train && n * fh * fw < 2 {
            return Err(Error::invalid(format!(
                "train-mode BatchNorm needs more than one value per channel: a batch of {n} images of {h}x{w} \
                 gives {fh}x{fw} feature maps in the last stage; use a batch of at least 2"
            )));
        }
        Ok(())
    }

    /// The last stage's feature map `(N, repr_dim, H/32, W/32)` (rounded up).
    /// No gradient is computed for `x` unless `x` itself is tracked by autograd.
    pub fn feature_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(x, train)?;
        let dtype: DType = self.conv1.weight().dtype();
        let x = x.to_dtype(dtype)?;
        let h = if x.track_op() {
            self.conv1.forward(&x)?
        } else {
            self.conv1.forward_no_input_grad(&x)?
        };
        let mut h = stem_max_pool(&self.bn1.forward_relu_t(&h, train)?)?;
        for stage in &self.stages {
            for block in stage {
                h = block.forward_t(&h, train)?;
            }
        }
        Ok(h)
    }

    /// `(N, C, H, W)` images -> `(N, repr_dim)` features (mean over the last
    /// feature map). `train` selects BatchNorm batch statistics (and updates
    /// the running statistics).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(global_avg_pool(&self.feature_map(x, train)?)?)
    }

    /// Every tensor of the network (parameters and BatchNorm running
    /// statistics) under its torchvision name, in `state_dict` order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.conv1.collect("conv1.", &mut out);
        self.bn1.collect("bn1.", &mut out);
        for (i, stage) in self.stages.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                block.collect(&format!("layer{}.{}.", i + 1, j), &mut out);
            }
        }
        out
    }

    /// The tensor called `name` (torchvision naming), if it exists.
    pub fn tensor(&self, name: &str) -> Option<Tensor> {
        self.named_tensors()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// Number of trainable values (BatchNorm running statistics excluded).
    pub fn num_parameters(&self) -> usize {
        self.named_tensors()
            .iter()
            .filter(|(n, _)| !vicreg_core::is_buffer_name(n))
            .map(|(_, t)| t.elem_count())
            .sum()
    }
}

impl Encoder for ResNet {
    /// `(batch, in_channels, height, width)` images (f32 for an f32 model).
    type Input = Tensor;

    fn forward_t(&self, input: &Tensor, train: bool) -> vicreg_core::Result<Tensor> {
        Ok(self.features(input, train)?)
    }

    fn repr_dim(&self) -> usize {
        self.repr_dim
    }
}

//! The ConvNeXt encoder: stem, four stages joined by downsampling layers, a
//! final LayerNorm on every feature-map vector, global average pooling, no
//! classification head (VICRegL's `forward_features`).

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use vicreg_core::model::Encoder;

use super::block::{
    batch_key, collect_norm, layer_norm_channels_first, ConvNeXtBlock, DropPath, PatchConv, LN_EPS,
};
use super::config::ConvNeXtConfig;
use crate::text::LayerNorm;
use crate::{Error, Result};

/// One downsampling layer: the stem (`conv` then `norm`, names
/// `downsample_layers.0.{0,1}`) or a later one (`norm` then `conv`, names
/// `downsample_layers.<i>.{0,1}`).
#[derive(Clone, Debug)]
struct Downsample {
    norm: LayerNorm,
    conv: PatchConv,
    stem: bool,
}

impl Downsample {
    fn forward(&self, x: &Tensor, input_grad: bool) -> candle_core::Result<Tensor> {
        if self.stem {
            layer_norm_channels_first(&self.norm, &self.conv.forward(x, input_grad)?)
        } else {
            self.conv
                .forward(&layer_norm_channels_first(&self.norm, x)?, true)
        }
    }

    fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        if self.stem {
            self.conv.collect(&format!("{prefix}0."), out);
            collect_norm(&self.norm, &format!("{prefix}1."), out);
        } else {
            collect_norm(&self.norm, &format!("{prefix}0."), out);
            self.conv.collect(&format!("{prefix}1."), out);
        }
    }
}

/// A ConvNeXt without classification head: `(N, C, H, W)` images ->
/// `(N, dims[3])` features, the mean over the final feature map of its
/// LayerNorm-ed vectors (VICRegL's `x_avg`); [`ConvNeXt::feature_maps`]
/// gives the `(N, H/32 * W/32, dims[3])` vectors themselves for local
/// criteria.
///
/// Tensor names are those of the official ConvNeXt / VICRegL `convnext.py`
/// (`downsample_layers.0.0.weight`, `stages.2.4.pwconv1.weight`,
/// `norm.bias`, ...), relative to the `VarBuilder` given to
/// [`ConvNeXt::new`]; [`ConvNeXt::load_weights`] also reads torchvision's.
#[derive(Clone, Debug)]
pub struct ConvNeXt {
    cfg: ConvNeXtConfig,
    downsample: Vec<Downsample>,
    stages: Vec<Vec<ConvNeXtBlock>>,
    norm: LayerNorm,
}

impl ConvNeXt {
    /// Builds the network under `vb` (from [`vicreg_core::ParamStore`]: seeded
    /// normal(0, 0.02) conv and linear weights, zero biases, LayerNorm weight
    /// 1 / bias 0, layer scale at its init value). Drop-path masks derive
    /// from `cfg.drop_path_seed`, the block and the batch ([`DropPath`]).
    pub fn new(cfg: &ConvNeXtConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let dvb = vb.pp("downsample_layers");
        let mut downsample = Vec::with_capacity(4);
        downsample.push(Downsample {
            conv: PatchConv::new(cfg.in_channels, cfg.dims[0], 4, dvb.pp("0").pp("0"))?,
            norm: LayerNorm::new(cfg.dims[0], LN_EPS, dvb.pp("0").pp("1"))?,
            stem: true,
        });
        for i in 1..4 {
            let lvb = dvb.pp(i.to_string());
            downsample.push(Downsample {
                norm: LayerNorm::new(cfg.dims[i - 1], LN_EPS, lvb.pp("0"))?,
                conv: PatchConv::new(cfg.dims[i - 1], cfg.dims[i], 2, lvb.pp("1"))?,
                stem: false,
            });
        }
        let rates = cfg.drop_path_rates();
        let mut next_rate = rates.into_iter().enumerate();
        let svb = vb.pp("stages");
        let mut stages = Vec::with_capacity(4);
        for (i, (&depth, &dim)) in cfg.depths.iter().zip(&cfg.dims).enumerate() {
            let mut stage = Vec::with_capacity(depth);
            for j in 0..depth {
                let (index, p) = next_rate.next().unwrap_or((0, 0.0));
                stage.push(ConvNeXtBlock::new(
                    dim,
                    cfg.layer_scale_init_value,
                    DropPath::new(p, cfg.drop_path_seed, index as u64),
                    svb.pp(i.to_string()).pp(j.to_string()),
                )?);
            }
            stages.push(stage);
        }
        Ok(Self {
            cfg: cfg.clone(),
            downsample,
            stages,
            norm: LayerNorm::new(cfg.dims[3], LN_EPS, vb.pp("norm"))?,
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &ConvNeXtConfig {
        &self.cfg
    }

    /// Checks an input batch: rank 4, the configured channel count, a float
    /// dtype, and at least 32 pixels each way (one final feature-map cell).
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let dims = x.dims();
        let name = self.cfg.name();
        let &[n, c, h, w] = dims else {
            return Err(Error::invalid(format!(
                "{name} expects images of shape (batch, {}, height, width), got {dims:?}",
                self.cfg.in_channels
            )));
        };
        if c != self.cfg.in_channels {
            return Err(Error::invalid(format!(
                "{name} was built for {} input channels, got images of shape {dims:?}",
                self.cfg.in_channels
            )));
        }
        if n == 0 || h < 32 || w < 32 {
            return Err(Error::invalid(format!(
                "{name} needs a non-empty batch of images of at least 32x32 pixels (total stride 32), got {dims:?}"
            )));
        }
        if !x.dtype().is_float() {
            return Err(Error::invalid(format!(
                "images must be floating point, got {:?}",
                x.dtype()
            )));
        }
        Ok(())
    }

    /// The final feature map as `(N, H/32 * W/32, dims[3])` vectors (row-major
    /// over the grid, each LayerNorm-ed), and their mean `(N, dims[3])`: the
    /// official `forward_features`. `train` enables drop path. No gradient
    /// is computed for `x` unless `x` itself is tracked by autograd.
    pub fn forward_maps(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        self.check_input(x)?;
        let dtype: DType = self.norm.parameters().0.dtype();
        let key = if train && self.cfg.drop_path_rate > 0.0 {
            batch_key(x)?
        } else {
            0
        };
        let mut h = x.to_dtype(dtype)?;
        for (i, (down, stage)) in self.downsample.iter().zip(&self.stages).enumerate() {
            h = down.forward(&h, i > 0 || x.track_op())?;
            for block in stage {
                h = block.forward_t(&h, train, key)?;
            }
        }
        let (n, c, gh, gw) = h.dims4()?;
        let maps = h.reshape((n, c, gh * gw))?.transpose(1, 2)?.contiguous()?;
        let maps = self.norm.forward(&maps)?;
        let pooled = maps.mean(1)?;
        Ok((maps, pooled))
    }

    /// The final LayerNorm-ed feature-map vectors `(N, H/32 * W/32, dims[3])`.
    pub fn feature_maps(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_maps(x, train)?.0)
    }

    /// `(N, C, H, W)` images -> `(N, dims[3])` features.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_maps(x, train)?.1)
    }

    /// Every tensor of the network under its official name, in `state_dict`
    /// order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (down, stage)) in self.downsample.iter().zip(&self.stages).enumerate() {
            down.collect(&format!("downsample_layers.{i}."), &mut out);
            for (j, block) in stage.iter().enumerate() {
                block.collect(&format!("stages.{i}.{j}."), &mut out);
            }
        }
        collect_norm(&self.norm, "norm.", &mut out);
        // state_dict order: all downsample layers, then all stages, then norm.
        let rank = |n: &str| {
            if n.starts_with("downsample_layers.") {
                0
            } else if n.starts_with("stages.") {
                1
            } else {
                2
            }
        };
        out.sort_by_key(|(n, _)| rank(n));
        out
    }

    /// The tensor called `name` (official naming), if it exists.
    pub fn tensor(&self, name: &str) -> Option<Tensor> {
        self.named_tensors()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// Number of trainable values.
    pub fn num_parameters(&self) -> usize {
        self.named_tensors()
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum()
    }
}

impl Encoder for ConvNeXt {
    /// `(batch, in_channels, height, width)` images, height and width >= 32.
    type Input = Tensor;

    fn forward_t(&self, input: &Tensor, train: bool) -> vicreg_core::Result<Tensor> {
        Ok(self.features(input, train)?)
    }

    fn repr_dim(&self) -> usize {
        self.cfg.repr_dim()
    }
}

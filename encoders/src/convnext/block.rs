//! The pieces of a ConvNeXt: the residual block, stochastic depth (drop
//! path) from a seeded stream, channels-first LayerNorm, and the
//! convolution / linear layers with the official initialisation
//! (truncated normal std 0.02, bias 0).

use candle_core::{Device, Tensor};
use candle_nn::{Init, VarBuilder};
use vicreg_core::SeededRng;

use crate::ops::depthwise_conv2d;
use crate::resnet::ops::{conv2d, conv2d_no_input_grad};
use crate::text::{gelu_exact, LayerNorm};

/// LayerNorm epsilon of every ConvNeXt norm (official code: 1e-6).
pub const LN_EPS: f64 = 1e-6;

/// The official `trunc_normal_(std=0.02)` (cut at +-2, i.e. +-100 std: a
/// plain normal in practice).
fn weight_init() -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    }
}

/// A key for the drop-path masks of one forward pass, from the content of
/// the input batch: the per-image sums of `x (N, ...)`. The same batch gets
/// the same masks whenever it is seen (a resumed run replays a killed one
/// exactly, since the loader's batch at a position never changes); different
/// batches and views get different masks.
pub fn batch_key(x: &Tensor) -> candle_core::Result<u64> {
    let sums = x
        .flatten_from(1)?
        .sum(1)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok(sums
        .iter()
        .fold(vicreg_core::mix64(sums.len() as u64), |h, s| {
            vicreg_core::mix64(h ^ s.to_bits() as u64)
        }))
}

/// Stochastic depth: in train mode each sample's residual branch is zeroed
/// with probability `p` and survivors are scaled by `1 / (1 - p)` (timm
/// `DropPath`, `scale_by_keep`); identity in eval mode. The mask of a call
/// is drawn from `SeededRng::derive(seed, [index, key])`: deterministic
/// given the model's seed, the block's index and the batch key.
#[derive(Clone, Debug)]
pub struct DropPath {
    p: f64,
    seed: u64,
    index: u64,
}

impl DropPath {
    /// Drop path with probability `p` in `[0, 1)` for block number `index`
    /// of a model seeded with `seed`.
    pub fn new(p: f64, seed: u64, index: u64) -> Self {
        Self { p, seed, index }
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// `x (N, ...)` times a per-sample mask when `train` and `p > 0`; `key`
    /// identifies the batch (see [`batch_key`]).
    pub fn forward(&self, x: &Tensor, train: bool, key: u64) -> candle_core::Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        let n = x.dim(0)?;
        let keep = 1.0 - self.p;
        let mut rng = SeededRng::derive(self.seed, &[self.index, key]);
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.uniform() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mut shape = vec![1usize; x.rank()];
        shape[0] = n;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        x.broadcast_mul(&mask)
    }
}

/// A linear layer `weight (out, in)`, `bias (out)` with the official init.
pub fn linear(
    in_dim: usize,
    out_dim: usize,
    vb: VarBuilder,
) -> candle_core::Result<candle_nn::Linear> {
    let w = vb.get_with_hints((out_dim, in_dim), "weight", weight_init())?;
    let b = vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?;
    Ok(candle_nn::Linear::new(w, Some(b)))
}

/// A convolution with bias, square kernel `k` and stride `k` (the stem's 4x4
/// and the downsamplings' 2x2 "patchify" layers), no padding.
#[derive(Clone, Debug)]
pub struct PatchConv {
    weight: Tensor,
    bias: Tensor,
    k: usize,
}

impl PatchConv {
    /// `weight (out_c, in_c, k, k)` and `bias (out_c)` under `vb`.
    pub fn new(in_c: usize, out_c: usize, k: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints((out_c, in_c, k, k), "weight", weight_init())?,
            bias: vb.get_with_hints(out_c, "bias", Init::Const(0.0))?,
            k,
        })
    }

    /// `(N, in_c, H, W)` -> `(N, out_c, H / k, W / k)` (floor). With
    /// `input_grad = false` no gradient is computed for `x` (the images).
    pub fn forward(&self, x: &Tensor, input_grad: bool) -> candle_core::Result<Tensor> {
        let y = if input_grad {
            conv2d(x, &self.weight, self.k, 0)?
        } else {
            conv2d_no_input_grad(x, &self.weight, self.k, 0)?
        };
        y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }

    /// Appends `(prefix + "weight" | "bias", tensor)`.
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((format!("{prefix}weight"), self.weight.clone()));
        out.push((format!("{prefix}bias"), self.bias.clone()));
    }
}

/// LayerNorm over the channel axis of `(N, C, H, W)` maps (the official
/// `LayerNorm(data_format="channels_first")`), through the gradient-checked
/// [`crate::text::layer_norm`].
pub fn layer_norm_channels_first(norm: &LayerNorm, x: &Tensor) -> candle_core::Result<Tensor> {
    norm.forward(&x.permute((0, 2, 3, 1))?)?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

/// Appends a [`LayerNorm`]'s `weight` and `bias` under `prefix`.
pub fn collect_norm(norm: &LayerNorm, prefix: &str, out: &mut Vec<(String, Tensor)>) {
    let (w, b) = norm.parameters();
    out.push((format!("{prefix}weight"), w.clone()));
    out.push((format!("{prefix}bias"), b.clone()));
}

/// One ConvNeXt block (`stages.<s>.<j>`): `dwconv` (7x7 depthwise, bias),
/// `norm` (LayerNorm), `pwconv1` (Linear C -> 4C), GELU, `pwconv2` (Linear
/// 4C -> C), optional `gamma` (layer scale), drop path, residual.
#[derive(Clone, Debug)]
pub struct ConvNeXtBlock {
    dw_weight: Tensor,
    dw_bias: Tensor,
    norm: LayerNorm,
    pwconv1: candle_nn::Linear,
    pwconv2: candle_nn::Linear,
    gamma: Option<Tensor>,
    drop_path: DropPath,
}

impl ConvNeXtBlock {
    /// A block of `dim` channels under `vb`; `layer_scale` 0 means no `gamma`.
    pub fn new(
        dim: usize,
        layer_scale: f64,
        drop_path: DropPath,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let dvb = vb.pp("dwconv");
        Ok(Self {
            dw_weight: dvb.get_with_hints((dim, 1, 7, 7), "weight", weight_init())?,
            dw_bias: dvb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            norm: LayerNorm::new(dim, LN_EPS, vb.pp("norm"))?,
            pwconv1: linear(dim, 4 * dim, vb.pp("pwconv1"))?,
            pwconv2: linear(4 * dim, dim, vb.pp("pwconv2"))?,
            gamma: if layer_scale > 0.0 {
                Some(vb.get_with_hints(dim, "gamma", Init::Const(layer_scale))?)
            } else {
                None
            },
            drop_path,
        })
    }

    /// `(N, C, H, W)` -> `(N, C, H, W)`; `key` identifies the batch for
    /// drop path ([`batch_key`]).
    pub fn forward_t(&self, x: &Tensor, train: bool, key: u64) -> candle_core::Result<Tensor> {
        let h = depthwise_conv2d(x, &self.dw_weight)?.broadcast_add(&self.dw_bias.reshape((
            1,
            (),
            1,
            1,
        ))?)?;
        let h = h.permute((0, 2, 3, 1))?.contiguous()?; // (N, H, W, C)
        let h = self.norm.forward(&h)?;
        let h = vicreg_core::ops::linear_layer(&self.pwconv1, &h)?;
        let h = gelu_exact(&h)?;
        let mut h = vicreg_core::ops::linear_layer(&self.pwconv2, &h)?;
        if let Some(g) = &self.gamma {
            h = h.broadcast_mul(g)?;
        }
        let h = h.permute((0, 3, 1, 2))?;
        x + self.drop_path.forward(&h, train, key)?
    }

    /// Appends every tensor under the official names, prefixed by `prefix`.
    pub fn collect(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((format!("{prefix}dwconv.weight"), self.dw_weight.clone()));
        out.push((format!("{prefix}dwconv.bias"), self.dw_bias.clone()));
        collect_norm(&self.norm, &format!("{prefix}norm."), out);
        for (name, l) in [("pwconv1", &self.pwconv1), ("pwconv2", &self.pwconv2)] {
            out.push((format!("{prefix}{name}.weight"), l.weight().clone()));
            if let Some(b) = l.bias() {
                out.push((format!("{prefix}{name}.bias"), b.clone()));
            }
        }
        if let Some(g) = &self.gamma {
            out.push((format!("{prefix}gamma"), g.clone()));
        }
    }
}

//! The expander (projector) MLP of the official code.

use candle_core::{ModuleT, Tensor};
use candle_nn::{BatchNormConfig, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::linear::linear_torch_init;
use crate::collective::SyncBatchNorm;
use crate::ops::linear_layer;
use crate::{Error, Result};

/// Parses an `--mlp` spec such as `"8192-8192-8192"` into layer widths.
pub fn parse_mlp_spec(spec: &str) -> Result<Vec<usize>> {
    let widths: Vec<usize> = spec
        .split('-')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&w| w > 0)
                .ok_or_else(|| Error::config(format!("bad expander spec {spec:?}: {s:?} is not a positive integer (expected e.g. 8192-8192-8192)")))
        })
        .collect::<Result<_>>()?;
    if widths.is_empty() {
        return Err(Error::config(format!("empty expander spec {spec:?}")));
    }
    Ok(widths)
}

/// Expander configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpanderConfig {
    /// Layer widths as in the official `--mlp` flag, e.g. `"8192-8192-8192"`.
    pub mlp: String,
    /// BatchNorm after each hidden Linear (the paper's best setting; off for the D.5 ablation).
    pub hidden_batch_norm: bool,
    /// LayerNorm (eps 1e-5) instead of BatchNorm after each hidden Linear, as
    /// the official VICRegL uses with ConvNeXt backbones (only with
    /// `hidden_batch_norm`: the norm layer keeps the same index and names).
    pub layer_norm: bool,
}

impl Default for ExpanderConfig {
    fn default() -> Self {
        Self::official()
    }
}

impl ExpanderConfig {
    /// The official ImageNet expander: 8192-8192-8192.
    pub fn official() -> Self {
        Self {
            mlp: "8192-8192-8192".into(),
            hidden_batch_norm: true,
            layer_norm: false,
        }
    }
    /// A small expander for laptops and tests.
    pub fn small() -> Self {
        Self {
            mlp: "512-512-512".into(),
            hidden_batch_norm: true,
            layer_norm: false,
        }
    }
    /// An expander with the given spec string.
    pub fn with_mlp(mlp: &str) -> Self {
        Self {
            mlp: mlp.into(),
            hidden_batch_norm: true,
            layer_norm: false,
        }
    }
}

/// The norm after a hidden Linear.
#[derive(Clone, Debug)]
enum HiddenNorm {
    Batch(SyncBatchNorm),
    Layer { weight: Tensor, bias: Tensor },
}

/// LayerNorm over the last dimension of `(rows, n)` (biased variance, eps
/// 1e-5, PyTorch `nn.LayerNorm` defaults), from basic ops so autograd sees
/// every gradient (candle's fused LayerNorm records none).
fn layer_norm_rows(x: &Tensor, weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(candle_core::D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// `Linear -> BatchNorm (or LayerNorm) -> ReLU` for each hidden layer and a final `Linear`
/// without bias and without BatchNorm. Tensor names follow the official
/// `nn.Sequential` indices (`0` Linear, `1` BN, `3` Linear, ...), so official
/// projector weights load. The BatchNorms are [`SyncBatchNorm`]s: with a
/// BatchNorm sync group set on the thread
/// ([`crate::collective::set_sync_batchnorm`]) their train-mode statistics are
/// those of every rank's batch.
#[derive(Clone, Debug)]
pub struct Expander {
    hidden: Vec<(Linear, Option<HiddenNorm>)>,
    last: Linear,
    out_dim: usize,
}

impl Expander {
    /// Builds an expander from `in_dim` (the encoder's `repr_dim`).
    pub fn new(in_dim: usize, cfg: &ExpanderConfig, vb: VarBuilder) -> Result<Self> {
        let widths = parse_mlp_spec(&cfg.mlp)?;
        let mut dims = vec![in_dim];
        dims.extend_from_slice(&widths);
        let mut hidden = Vec::new();
        let mut idx = 0usize;
        for w in dims.windows(2).take(dims.len() - 2) {
            let lin = linear_torch_init(w[0], w[1], true, vb.pp(idx.to_string()))?;
            let bn = if cfg.hidden_batch_norm && cfg.layer_norm {
                let nvb = vb.pp((idx + 1).to_string());
                Some(HiddenNorm::Layer {
                    weight: nvb.get_with_hints(w[1], "weight", candle_nn::Init::Const(1.0))?,
                    bias: nvb.get_with_hints(w[1], "bias", candle_nn::Init::Const(0.0))?,
                })
            } else if cfg.hidden_batch_norm {
                let bn_cfg = BatchNormConfig {
                    eps: 1e-5,
                    remove_mean: true,
                    affine: true,
                    momentum: 0.1,
                };
                Some(HiddenNorm::Batch(SyncBatchNorm::new(
                    candle_nn::batch_norm(w[1], bn_cfg, vb.pp((idx + 1).to_string()))?,
                )?))
            } else {
                None
            };
            hidden.push((lin, bn));
            idx += 3;
        }
        let n = dims.len();
        let last = linear_torch_init(dims[n - 2], dims[n - 1], false, vb.pp(idx.to_string()))?;
        Ok(Self {
            hidden,
            last,
            out_dim: dims[n - 1],
        })
    }

    /// Embedding dimension.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

impl ModuleT for Expander {
    /// `(batch, in_dim)` -> `(batch, out_dim)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (lin, bn) in &self.hidden {
            h = linear_layer(lin, &h)?;
            match bn {
                Some(HiddenNorm::Batch(bn)) => h = bn.forward_t(&h, train)?,
                Some(HiddenNorm::Layer { weight, bias }) => {
                    h = layer_norm_rows(&h, weight, bias)?;
                }
                None => {}
            }
            h = h.relu()?;
        }
        linear_layer(&self.last, &h)
    }
}

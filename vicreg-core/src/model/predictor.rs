//! The predictor MLP of BYOL / SimSiam, put on the online branch.

use candle_core::{ModuleT, Tensor};
use candle_nn::{BatchNormConfig, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::expander::parse_mlp_spec;
use super::linear::linear_torch_init;
use crate::collective::SyncBatchNorm;
use crate::Result;

/// Predictor configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictorConfig {
    /// Layer widths after the input, `"hidden-...-out"` (e.g. BYOL's `"4096-256"`,
    /// SimSiam's `"512-2048"`); the last width must equal the embedding dimension.
    pub mlp: String,
    /// BatchNorm after each hidden Linear.
    pub hidden_batch_norm: bool,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        Self::byol()
    }
}

impl PredictorConfig {
    /// BYOL's predictor: `Linear(256, 4096) - BN - ReLU - Linear(4096, 256)`.
    pub fn byol() -> Self {
        Self {
            mlp: "4096-256".into(),
            hidden_batch_norm: true,
        }
    }

    /// A predictor with the given width spec and hidden BatchNorm.
    pub fn with_mlp(mlp: &str) -> Self {
        Self {
            mlp: mlp.into(),
            hidden_batch_norm: true,
        }
    }
}

/// `Linear -> BatchNorm -> ReLU` per hidden layer, then a final `Linear` with
/// bias (as BYOL's and SimSiam's predictors). Tensor names follow
/// `nn.Sequential` indices (`0` Linear, `1` BN, `3` Linear).
#[derive(Clone, Debug)]
pub struct Predictor {
    hidden: Vec<(Linear, Option<SyncBatchNorm>)>,
    last: Linear,
    in_dim: usize,
    out_dim: usize,
}

impl Predictor {
    /// The BYOL / SimSiam predictor of `(batch, dim)` embeddings:
    /// `dim -> hidden -> dim` (`hidden` defaults to `dim`), hidden BatchNorm.
    pub fn square(dim: usize, hidden: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let hidden = hidden.unwrap_or(dim);
        Self::new(
            dim,
            &PredictorConfig::with_mlp(&format!("{hidden}-{dim}")),
            vb,
        )
    }

    /// Builds a predictor taking `(batch, in_dim)` embeddings.
    pub fn new(in_dim: usize, cfg: &PredictorConfig, vb: VarBuilder) -> Result<Self> {
        let widths = parse_mlp_spec(&cfg.mlp)?;
        let mut dims = vec![in_dim];
        dims.extend_from_slice(&widths);
        let mut hidden = Vec::new();
        let mut idx = 0usize;
        for w in dims.windows(2).take(dims.len() - 2) {
            let lin = linear_torch_init(w[0], w[1], true, vb.pp(idx.to_string()))?;
            let bn = if cfg.hidden_batch_norm {
                let bn_cfg = BatchNormConfig {
                    eps: 1e-5,
                    remove_mean: true,
                    affine: true,
                    momentum: 0.1,
                };
                Some(SyncBatchNorm::new(candle_nn::batch_norm(
                    w[1],
                    bn_cfg,
                    vb.pp((idx + 1).to_string()),
                )?)?)
            } else {
                None
            };
            hidden.push((lin, bn));
            idx += 3;
        }
        let n = dims.len();
        let last = linear_torch_init(dims[n - 2], dims[n - 1], true, vb.pp(idx.to_string()))?;
        Ok(Self {
            hidden,
            last,
            in_dim,
            out_dim: dims[n - 1],
        })
    }

    /// Input dimension.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output dimension.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

impl ModuleT for Predictor {
    /// `(batch, in_dim)` -> `(batch, out_dim)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (lin, bn) in &self.hidden {
            h = crate::ops::linear_layer(lin, &h)?;
            if let Some(bn) = bn {
                h = bn.forward_t(&h, train)?;
            }
            h = h.relu()?;
        }
        crate::ops::linear_layer(&self.last, &h)
    }
}

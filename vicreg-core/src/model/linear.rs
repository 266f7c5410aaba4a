//! A linear layer initialised as PyTorch's `nn.Linear`.

use candle_nn::{Init, Linear, VarBuilder};

use crate::Result;

/// `nn.Linear(in_dim, out_dim, bias)` with PyTorch's default initialisation:
/// weight and bias uniform in `[-1/sqrt(in_dim), 1/sqrt(in_dim)]`
/// (kaiming-uniform with a = sqrt(5)). Tensors `weight` `(out, in)` and `bias` `(out)`.
pub fn linear_torch_init(
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    vb: VarBuilder,
) -> Result<Linear> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let b = if bias {
        Some(vb.get_with_hints(out_dim, "bias", init)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

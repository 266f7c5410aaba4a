//! The trait every modality implements.

use candle_core::Tensor;

use crate::Result;

/// Maps one batch of inputs of some modality to `(batch, repr_dim)` representations.
///
/// Implementing it for a new modality takes one small file: build the layers
/// with a `candle_nn::VarBuilder` (from [`ParamStore::var_builder`](crate::ParamStore::var_builder))
/// in the constructor, and run them in `forward_t`.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use vicreg_core::model::{linear_torch_init, Encoder};
/// use vicreg_core::ParamStore;
///
/// /// A two-layer MLP over (batch, features) rows of a table.
/// struct TabularEncoder { l1: candle_nn::Linear, l2: candle_nn::Linear, out: usize }
///
/// impl TabularEncoder {
///     fn new(features: usize, hidden: usize, vb: candle_nn::VarBuilder) -> vicreg_core::Result<Self> {
///         Ok(Self {
///             l1: linear_torch_init(features, hidden, true, vb.pp("l1"))?,
///             l2: linear_torch_init(hidden, hidden, true, vb.pp("l2"))?,
///             out: hidden,
///         })
///     }
/// }
///
/// impl Encoder for TabularEncoder {
///     type Input = Tensor; // (batch, features)
///     fn forward_t(&self, x: &Tensor, _train: bool) -> vicreg_core::Result<Tensor> {
///         Ok(self.l2.forward(&self.l1.forward(x)?.relu()?)?)
///     }
///     fn repr_dim(&self) -> usize { self.out }
/// }
///
/// let store = ParamStore::new(0);
/// let enc = TabularEncoder::new(5, 16, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
/// let x = Tensor::zeros((4, 5), DType::F32, &Device::Cpu).unwrap();
/// assert_eq!(enc.forward_t(&x, true).unwrap().dims(), &[4, 16]);
/// ```
pub trait Encoder: Send + Sync {
    /// One batch of this modality's input (an image tensor, token ids with a mask, a waveform...).
    type Input: ?Sized;

    /// `(batch, repr_dim)` representations. `train` selects BatchNorm batch
    /// statistics and active dropout.
    fn forward_t(&self, input: &Self::Input, train: bool) -> Result<Tensor>;

    /// Size of the representation.
    fn repr_dim(&self) -> usize;
}

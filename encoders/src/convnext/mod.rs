//! # ConvNeXt encoders (image branch, VICRegL's backbone)
//!
//! Trainable ConvNeXts (Liu et al. 2022) in the layout of the official
//! `convnext.py` of ConvNeXt and VICRegL, without classification head,
//! implementing [`vicreg_core::model::Encoder`] with `Input = Tensor`:
//! `(batch, in_channels, height, width)` -> `(batch, dims[3])`, the mean of
//! the final feature map's LayerNorm-ed vectors. [`ConvNeXt::feature_maps`]
//! returns those vectors, `(batch, H/32 * W/32, dims[3])`, for VICRegL's
//! local criterion.
//!
//! - Sizes atto / femto / pico / nano (timm's small variants, for CPU runs)
//!   and tiny / small / base / large / xlarge (the paper's); names parse
//!   with [`ConvNeXtConfig::from_name`] (`convnext_tiny`).
//! - Block: 7x7 depthwise conv ([`crate::ops::depthwise_conv2d`], a custom
//!   op with its own backward) -> LayerNorm -> Linear 4C -> exact GELU ->
//!   Linear C -> optional layer scale -> drop path -> residual. LayerNorm
//!   and GELU are the gradient-checked ops of [`crate::text`] (candle's
//!   fused LayerNorm records no gradient).
//! - Drop path (stochastic depth, linear in depth up to `drop_path_rate`)
//!   derives its masks from the config's seed, the block and the batch's
//!   content: the same seed gives the same run, and a resumed run the same
//!   masks as the run it resumes.
//! - Initialisation as the official code: normal(0, 0.02) conv and linear
//!   weights, zero biases; VICRegL's defaults: drop path 0.1, no layer scale.
//! - Weights: official / VICRegL names as they are, torchvision names
//!   translated ([`ConvNeXt::load_weights`]).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use encoders::convnext::{ConvNeXt, ConvNeXtConfig};
//! use vicreg_core::model::Encoder;
//! use vicreg_core::ParamStore;
//!
//! let store = ParamStore::new(0);
//! let cfg = ConvNeXtConfig::custom([1, 1, 2, 1], [8, 16, 32, 64]);
//! let net = ConvNeXt::new(&cfg, store.var_builder(DType::F32, &Device::Cpu))?;
//! assert_eq!(net.repr_dim(), 64);
//! let images = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu)?;
//! let (maps, pooled) = net.forward_maps(&images, true)?; // train: drop path on
//! assert_eq!(maps.dims(), &[2, 4, 64]); // a 2x2 grid of 64-d vectors per image
//! assert_eq!(pooled.dims(), &[2, 64]);
//! assert_eq!("convnext_tiny".parse::<ConvNeXtConfig>()?.repr_dim(), 768);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod block;
mod checkpoint;
mod config;
mod model;

pub use block::{batch_key, ConvNeXtBlock, DropPath, LN_EPS};
pub use checkpoint::convnext_state_dict;
pub use config::{valid_names, ConvNeXtConfig, MAX_BLOCKS, MAX_CHANNELS};
pub use model::ConvNeXt;

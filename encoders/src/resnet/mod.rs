//! # ResNet encoders (image and spectrogram branches)
//!
//! Trainable torchvision-layout ResNets (v1.5: the stride of a bottleneck is
//! on its 3x3 convolution) without the classification head, implementing
//! [`vicreg_core::model::Encoder`] with `Input = Tensor`:
//! `(batch, in_channels, height, width)` -> `(batch, repr_dim)`, the mean of
//! the last feature map over height and width.
//!
//! - Depths 18/34 (basic blocks, `repr_dim = 512 x width`) and
//!   50/101/152/200 (bottleneck blocks, `repr_dim = 2048 x width`); the width
//!   multiplier widens every layer as the official VICReg `resnet.py`
//!   (`resnet50x2`: 4096-d). Names parse with [`ResNetConfig::from_name`].
//! - Initialisation as torchvision / official VICReg: Kaiming-normal fan-out
//!   conv weights, BN weight 1 and bias 0, and (`zero_init_residual`, on by
//!   default) BN weight 0 at the end of each residual branch.
//! - BatchNorm: eps `1e-5`, momentum `0.1`; `forward_t(x, true)` normalises
//!   with batch statistics and updates the running statistics.
//! - Tensor names are torchvision's, so torchvision and official VICReg
//!   checkpoints (`.pth` or safetensors) load with [`ResNet::load_weights`].
//! - No gradient is computed for the input images.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use encoders::resnet::{ResNet, ResNetConfig};
//! use vicreg_core::model::Encoder;
//! use vicreg_core::ParamStore;
//!
//! let store = ParamStore::new(0);
//! let cfg: ResNetConfig = "resnet18".parse()?;
//! let net = ResNet::new(&cfg, store.var_builder(DType::F32, &Device::Cpu))?;
//! assert_eq!(net.repr_dim(), 512);
//! let images = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu)?;
//! let features = net.forward_t(&images, true)?; // train mode: batch statistics
//! assert_eq!(features.dims(), &[2, 512]);
//! // a spectrogram branch: one input channel
//! let spec = ResNet::new(&ResNetConfig::resnet18().with_in_channels(1), store.var_builder(DType::F32, &Device::Cpu).pp("audio"))?;
//! assert_eq!(spec.tensor("conv1.weight").unwrap().dims(), &[64, 1, 7, 7]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blocks;
mod checkpoint;
mod config;
mod model;
pub mod ops;
pub mod pool;

pub use blocks::{BasicBlock, Block, Bottleneck, Downsample};
pub use checkpoint::{
    read_checkpoint, resnet_state_dict, BACKBONE_PREFIXES, NESTED_STATE_DICT_KEYS,
};
pub use config::{valid_names, BlockKind, ResNetConfig, BASE_WIDTH};
pub use model::ResNet;

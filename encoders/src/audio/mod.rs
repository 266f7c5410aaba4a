//! Audio encoders for the paper's ESC-50 setting (appendix D.2, non-shared
//! branches): a 1-D ResNet-18 on raw waveforms ([`ResNet1d`], 384-d) and a
//! spectrogram encoder ([`SpectrogramEncoder`]: the log-mel front end
//! [`LogMelSpectrogram`] -> 2-D ResNet-18 with one input channel, 512-d).
//! Both take `(batch, samples)` waveforms.
//!
//! Every 1-D convolution is computed as a height-1 2-D convolution
//! ([`conv1d_via_conv2d`]) and max pooling is built from `narrow` + `maximum`
//! ([`max_pool1d`]), because candle's own `conv1d` and `max_pool` backward
//! passes are wrong; both are gradient-checked in `tests/audio_gradcheck.rs`.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use encoders::audio::{LogMelConfig, LogMelSpectrogram, ResNet1d, ResNet1dConfig};
//! use vicreg_core::model::Encoder;
//! use vicreg_core::ParamStore;
//!
//! // Two 0.1 s clips at 16 kHz: a 440 Hz sine and silence, shape (batch, samples).
//! let sr = 16_000usize;
//! let sine: Vec<f32> = (0..sr / 10)
//!     .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / sr as f32).sin())
//!     .collect();
//! let mut data = sine.clone();
//! data.extend(vec![0f32; sine.len()]);
//! let waves = Tensor::from_vec(data, (2, sr / 10), &Device::Cpu)?;
//!
//! // Raw-waveform branch (tiny config here; `ResNet1dConfig::default()` is the paper's 384-d one).
//! let store = ParamStore::new(0);
//! let net = ResNet1d::new(&ResNet1dConfig::tiny(), store.var_builder(DType::F32, &Device::Cpu))?;
//! let repr = net.forward_t(&waves, true)?;
//! assert_eq!(repr.dims(), &[2, net.repr_dim()]);
//!
//! // Spectrogram front end: (batch, 1, n_mels, frames) in [0, 1].
//! let mel = LogMelSpectrogram::new(&LogMelConfig::esc50_16k())?;
//! let img = mel.forward(&waves)?;
//! assert_eq!(img.dims(), &[2, 1, 64, mel.num_frames(sr / 10)]);
//! let max = img.max_all()?.to_scalar::<f32>()?;
//! assert_eq!(max, 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conv1d;
mod logmel;
mod logmel_stats;
mod mel;
mod mel_cnn;
mod pool1d;
mod resnet1d;
mod spectrogram;
mod stft;
mod time_pool;

pub use conv1d::{conv1d_via_conv2d, conv_out_len, Conv1d};
pub use logmel::{LogMelConfig, LogMelSpectrogram, Normalization};
pub use logmel_stats::logmel_statistics;
pub use mel::{MelFilterbank, MelNorm, MelScale};
pub use mel_cnn::{MelCnn, MelCnnConfig};
pub use pool1d::max_pool1d;
pub use resnet1d::{BasicBlock1d, ResNet1d, ResNet1dConfig};
pub use spectrogram::{SpectrogramEncoder, SpectrogramEncoderConfig};
pub use stft::PowerStft;
pub use time_pool::TimePool;

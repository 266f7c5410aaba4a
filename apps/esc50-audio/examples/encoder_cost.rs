//! Times one forward + backward pass of the audio encoders on a batch of
//! random clips, to size CPU runs: `cargo run --release -p esc50-audio --example encoder_cost -- [batch] [rate] [seconds] [n_mels]`.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use encoders::audio::{ResNet1d, ResNet1dConfig, SpectrogramEncoder, SpectrogramEncoderConfig};
use encoders::resnet::ResNetConfig;
use vicreg_core::model::Encoder;
use vicreg_core::ParamStore;

fn time<E: Encoder<Input = Tensor>>(name: &str, enc: &E, x: &Tensor) -> anyhow::Result<()> {
    for i in 0..2 {
        let t = Instant::now();
        let y = enc.forward_t(x, true)?;
        let f = t.elapsed().as_secs_f64();
        y.sqr()?.mean_all()?.backward()?;
        let all = t.elapsed().as_secs_f64();
        if i == 1 {
            println!("{name}: forward {f:.2} s, forward+backward {all:.2} s");
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: f64| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (b, sr, secs, mels) = (
        arg(1, 32.0) as usize,
        arg(2, 8000.0),
        arg(3, 1.0),
        arg(4, 32.0) as usize,
    );
    let len = (sr * secs) as usize;
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 0.3, (b, len), &dev)?;
    for (name, widths, k, s) in [
        ("wave small", vec![16, 32, 64, 128], 25, 4),
        ("wave micro", vec![8, 16, 32, 64], 25, 4),
        ("wave micro s8", vec![8, 16, 32, 64], 25, 8),
    ] {
        let store = ParamStore::new(0);
        let cfg = ResNet1dConfig {
            widths,
            stem_kernel: k,
            stem_stride: s,
            ..ResNet1dConfig::resnet18()
        };
        let net = ResNet1d::new(&cfg, store.var_builder(DType::F32, &dev))?;
        time(name, &net, &x)?;
    }
    let store = ParamStore::new(0);
    let n_fft = 2usize.pow((0.0464 * sr).log2().round() as u32);
    let mel = encoders::audio::LogMelConfig {
        sample_rate: sr,
        n_fft,
        hop_length: n_fft / 4,
        win_length: n_fft,
        n_mels: mels,
        ..encoders::audio::LogMelConfig::esc50()
    };
    let cfg = SpectrogramEncoderConfig {
        mel,
        resnet: ResNetConfig::resnet18().with_in_channels(1),
        ..SpectrogramEncoderConfig::esc50()
    };
    let net = SpectrogramEncoder::new(&cfg, store.var_builder(DType::F32, &dev))?;
    println!("spec input frames {}", net.input_frames(len));
    time("spec resnet18", &net, &x)?;
    Ok(())
}

//! Estimated GEMM work (multiply-accumulates) of the encoders, to turn step
//! times into achieved GFLOP/s. Counts convolutions, linear layers and
//! attention products; elementwise ops, normalisation and pooling are left
//! out (they are memory-bound, not FLOP-bound).

use anyhow::Result;
use encoders::audio::ResNet1dConfig;
use encoders::resnet::{BlockKind, ResNetConfig};

/// Multiply-accumulates of one forward pass of a ResNet's convolutions on one
/// `size x size` image, and those of the stem alone (which gets no input gradient).
pub fn resnet_macs(cfg: &ResNetConfig, size: usize) -> Result<(f64, f64)> {
    let half = |n: usize| (n - 1) / 2 + 1;
    let kind = cfg.block_kind()?;
    let mut macs = 0.0;
    let mut conv = |c: usize, o: usize, k: usize, out: usize| {
        macs += (c * o * k * k * out * out) as f64;
    };
    let mut s = half(size);
    let mut c = cfg.stem_channels();
    let stem = (cfg.in_channels * c * 49 * s * s) as f64;
    conv(cfg.in_channels, c, 7, s);
    s = half(s);
    for (stage, &blocks) in cfg.stage_blocks()?.iter().enumerate() {
        let planes = cfg.stem_channels() << stage;
        let out_c = planes * kind.expansion();
        for b in 0..blocks {
            let stride2 = stage > 0 && b == 0;
            let so = if stride2 { half(s) } else { s };
            match kind {
                BlockKind::Basic => {
                    conv(c, planes, 3, so);
                    conv(planes, planes, 3, so);
                }
                BlockKind::Bottleneck => {
                    conv(c, planes, 1, s);
                    conv(planes, planes, 3, so);
                    conv(planes, out_c, 1, so);
                }
            }
            if b == 0 && (stride2 || c != out_c) {
                conv(c, out_c, 1, so);
            }
            c = out_c;
            s = so;
        }
    }
    Ok((macs, stem))
}

/// Multiply-accumulates of one forward pass of a 1-D ResNet on one clip of
/// `samples` samples, and those of the stem alone.
pub fn resnet1d_macs(cfg: &ResNet1dConfig, samples: usize) -> (f64, f64) {
    let out = |t: usize, k: usize, s: usize| (t + 2 * (k / 2)).saturating_sub(k) / s.max(1) + 1;
    let mut t = out(samples, cfg.stem_kernel, cfg.stem_stride);
    let stem = (cfg.widths[0] * cfg.stem_kernel * t) as f64;
    let mut macs = stem;
    if cfg.pool_kernel > 0 {
        t = out(t, cfg.pool_kernel, cfg.pool_stride);
    }
    let mut c = cfg.widths[0];
    for ((&blocks, &w), &stride) in cfg.blocks.iter().zip(&cfg.widths).zip(&cfg.stage_strides) {
        for b in 0..blocks {
            let s = if b == 0 { stride } else { 1 };
            let to = out(t, cfg.block_kernel, s);
            let k = cfg.block_kernel;
            macs += (c * w * k * to + w * w * k * to) as f64;
            if s != 1 || c != w {
                macs += (c * w * to) as f64;
            }
            c = w;
            t = to;
        }
    }
    (macs, stem)
}

/// Multiply-accumulates of one forward pass of a transformer encoder on one
/// sequence of `tokens` tokens (projections, MLP and the two attention products).
pub fn transformer_macs(layers: usize, hidden: usize, mlp: usize, tokens: usize) -> f64 {
    let (l, h, i) = (tokens as f64, hidden as f64, mlp as f64);
    layers as f64 * (l * (4.0 * h * h + 2.0 * h * i) + 2.0 * l * l * h)
}

/// Multiply-accumulates of the expander's linear layers for one sample.
pub fn linear_macs(dims: &[usize]) -> f64 {
    dims.windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// FLOPs of one two-view training step: forward + input gradient + weight
/// gradient (3x the forward MACs) of encoder and expander, minus the stem's
/// input gradient (the raw inputs get none), 2 FLOPs per MAC.
pub fn step_flops(batch: usize, enc_macs: f64, stem_macs: f64, lin_macs: f64) -> f64 {
    2.0 * 2.0 * batch as f64 * (3.0 * enc_macs - stem_macs + 3.0 * lin_macs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet18_224_is_about_1_8_gmacs() {
        let cfg = ResNetConfig::from_name("resnet18").unwrap();
        let (m, stem) = resnet_macs(&cfg, 224).unwrap();
        // torchvision's published figure: 1.81 GMACs (conv layers dominate).
        assert!((m / 1e9 - 1.81).abs() < 0.05, "{m}");
        assert!((stem - 118_013_952.0).abs() < 1.0, "{stem}");
    }

    #[test]
    fn resnet50_224_is_about_4_1_gmacs() {
        let cfg = ResNetConfig::from_name("resnet50").unwrap();
        let (m, _) = resnet_macs(&cfg, 224).unwrap();
        assert!((m / 1e9 - 4.09).abs() < 0.1, "{m}");
    }

    #[test]
    fn linear_and_transformer_counts() {
        assert_eq!(
            linear_macs(&[512, 2048, 2048]),
            (512 * 2048 + 2048 * 2048) as f64
        );
        // one layer, hidden 2, mlp 4, 3 tokens: 3 * (16 + 16) + 2 * 9 * 2
        assert_eq!(transformer_macs(1, 2, 4, 3), 96.0 + 36.0);
    }
}

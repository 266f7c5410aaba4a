//! The siamese VICReg model: image backbone (ResNet or ConvNeXt) + expander,
//! shared by both views. Variables are named `backbone.*` (torchvision /
//! official ConvNeXt names) and `projector.*` (official `nn.Sequential`
//! indices), as in the official checkpoints.

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use encoders::{ImageEncoder, ImageEncoderOptions};
use vicreg_core::model::{Branch, ExpanderConfig, JointEmbedding};
use vicreg_core::ParamStore;

/// Prefix of the backbone's variables in the store.
pub const BACKBONE: &str = "backbone.";

/// Builds a ResNet or ConvNeXt by name with seeded initialisation.
pub fn backbone(
    arch: &str,
    opts: &ImageEncoderOptions,
    store: &ParamStore,
    device: &Device,
) -> Result<ImageEncoder> {
    let vb = store.var_builder(DType::F32, device);
    Ok(ImageEncoder::from_arch(arch, opts, vb.pp("backbone"))?)
}

/// The siamese joint-embedding model of the official code.
pub fn siamese(
    arch: &str,
    opts: &ImageEncoderOptions,
    mlp: &str,
    store: &ParamStore,
    device: &Device,
) -> Result<JointEmbedding<ImageEncoder>> {
    let net = backbone(arch, opts, store, device)?;
    let vb = store.var_builder(DType::F32, device);
    let branch = Branch::new(net, &ExpanderConfig::with_mlp(mlp), vb.pp("projector"))?;
    Ok(JointEmbedding::siamese(branch))
}

/// A backbone with weights from `path`: a safetensors or `.pth` file, or a run
/// directory holding `<arch>-encoder.safetensors`. Errors name the file and list
/// missing / unexpected tensors (e.g. a checkpoint of another architecture).
pub fn load_backbone(
    arch: &str,
    path: &std::path::Path,
    device: &Device,
) -> Result<(ImageEncoder, ParamStore)> {
    let store = ParamStore::new(0);
    let file = if path.is_dir() {
        let f = path.join(format!("{arch}-encoder.safetensors"));
        if !f.is_file() {
            anyhow::bail!(
                "{}: no {arch}-encoder.safetensors in this run directory (pretraining not finished, or another --arch?)",
                path.display()
            );
        }
        f
    } else {
        path.to_path_buf()
    };
    let opts = ImageEncoderOptions {
        zero_init_residual: false,
        ..ImageEncoderOptions::default()
    };
    let vb = store.var_builder(DType::F32, device);
    let net = ImageEncoder::from_weights(arch, &file, &opts, vb.pp("backbone"))
        .with_context(|| format!("loading {arch} weights from {}", file.display()))?;
    Ok((net, store))
}

/// The architecture recorded in a run directory's config.toml, if any.
pub fn arch_of_run(path: &std::path::Path) -> Option<String> {
    run_key(path, "arch").and_then(|a| a.as_str().map(String::from))
}

/// The crop size a pretraining run used (`image-size` of its config.toml), if
/// `path` is a run directory or a file inside one.
pub fn image_size_of_run(path: &std::path::Path) -> Option<u32> {
    run_key(path, "image-size")
        .and_then(|v| v.as_integer())
        .and_then(|v| u32::try_from(v).ok())
}

fn run_key(path: &std::path::Path, key: &str) -> Option<toml::Value> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let text = std::fs::read_to_string(dir.join("config.toml")).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get(key).cloned()
}

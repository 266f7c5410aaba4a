//! The image-text joint-embedding model: branch A = ResNet + expander on
//! images, branch B = text encoder + expander on captions, with their own
//! weights (non-shared). Variables: `image.encoder.*` (torchvision names),
//! `image.projector.*`, `text.encoder.*` (HF BERT names, or the GRU's
//! `embed.*` / `rnn.*`), `text.projector.*`. Retrieval compares the two
//! expanders' outputs (the space the loss aligns) by cosine similarity.

use std::path::Path;
use std::sync::OnceLock;
use vicreg_core::recipe::AppConfig;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use encoders::resnet::{ResNet, ResNetConfig};
use encoders::text::{FrozenTextTable, GruTextEncoder, TextBatch, TextTransformer};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::ParamStore;

use crate::config::PretrainConfig;
use crate::text::TextArch;

/// Prefix of the image encoder's variables.
pub const IMAGE_ENCODER: &str = "image.encoder.";
/// Prefix of the text encoder's variables.
pub const TEXT_ENCODER: &str = "text.encoder.";
/// File of the whole model (both encoders and expanders) at the end of pretraining.
pub const MODEL_FILE: &str = "model.safetensors";

/// An encoder that can be frozen: a frozen encoder always runs in eval mode
/// (BatchNorm running statistics, no dropout) and its output is detached, so
/// no gradient reaches its variables. A frozen encoder may also carry its
/// outputs precomputed for the training inputs ([`Freezable::precompute`]).
pub struct Freezable<E: Encoder> {
    /// The wrapped encoder.
    pub inner: E,
    /// Whether it is frozen.
    pub frozen: bool,
    table: OnceLock<Box<dyn Precomputed<E::Input>>>,
}

/// Outputs of a frozen encoder computed ahead of training.
pub trait Precomputed<I: ?Sized>: Send + Sync {
    /// The `(batch, repr_dim)` outputs for `input`, or `None` when some are missing.
    fn lookup(&self, input: &I) -> vicreg_core::Result<Option<Tensor>>;
}

impl Precomputed<TextBatch> for FrozenTextTable {
    fn lookup(&self, input: &TextBatch) -> vicreg_core::Result<Option<Tensor>> {
        Ok(FrozenTextTable::lookup(self, input)?)
    }
}

impl<E: Encoder> Freezable<E> {
    /// `inner`, frozen or not, with nothing precomputed.
    pub fn new(inner: E, frozen: bool) -> Self {
        Self {
            inner,
            frozen,
            table: OnceLock::new(),
        }
    }

    /// Serves the frozen encoder's outputs from `table` from now on (inputs
    /// it lacks are encoded as usual). Ignored unless the encoder is frozen,
    /// and after the first call.
    pub fn precompute(&self, table: Box<dyn Precomputed<E::Input>>) {
        if self.frozen {
            let _ = self.table.set(table);
        }
    }
}

impl<E: Encoder> Encoder for Freezable<E> {
    type Input = E::Input;

    fn forward_t(&self, input: &E::Input, train: bool) -> vicreg_core::Result<Tensor> {
        if !self.frozen {
            return self.inner.forward_t(input, train);
        }
        if let Some(t) = self.table.get() {
            if let Some(x) = t.lookup(input)? {
                return Ok(x);
            }
        }
        Ok(self.inner.forward_t(input, false)?.detach())
    }

    fn repr_dim(&self) -> usize {
        self.inner.repr_dim()
    }
}

/// Either text encoder, over [`TextBatch`]es.
pub enum TextEncoder {
    /// BERT-style transformer (mean pooling).
    Transformer(Box<TextTransformer>),
    /// GRU (last state).
    Gru(GruTextEncoder),
}

impl Encoder for TextEncoder {
    type Input = TextBatch;

    fn forward_t(&self, input: &TextBatch, train: bool) -> vicreg_core::Result<Tensor> {
        match self {
            TextEncoder::Transformer(t) => t.forward_t(input, train),
            TextEncoder::Gru(g) => g.forward_t(input, train),
        }
    }

    fn repr_dim(&self) -> usize {
        match self {
            TextEncoder::Transformer(t) => t.repr_dim(),
            TextEncoder::Gru(g) => g.repr_dim(),
        }
    }
}

/// The joint model: images `(B, 3, S, S)` on branch A, captions on branch B.
pub type ImageTextModel = JointEmbedding<Freezable<ResNet>, Freezable<TextEncoder>>;

/// Builds the model of `cfg` with a text encoder of architecture `text`,
/// variables created (seeded) in `store`.
pub fn build(
    cfg: &PretrainConfig,
    text: &TextArch,
    store: &ParamStore,
    device: &Device,
) -> Result<ImageTextModel> {
    let vb = store.var_builder(DType::F32, device);
    let rcfg =
        ResNetConfig::from_name(&cfg.image_arch)?.with_zero_init_residual(cfg.zero_init_residual);
    let resnet = ResNet::new(&rcfg, vb.pp("image").pp("encoder"))?;
    let image = Branch::new(
        Freezable::new(resnet, cfg.freeze_image),
        &ExpanderConfig::with_mlp(cfg.image_mlp()),
        vb.pp("image").pp("projector"),
    )?;
    let tvb = vb.pp("text").pp("encoder");
    let enc = match text {
        TextArch::Transformer(b) => {
            TextEncoder::Transformer(Box::new(TextTransformer::new(b, tvb)?))
        }
        TextArch::Gru(g) => TextEncoder::Gru(GruTextEncoder::new(g, tvb)?),
    };
    let text = Branch::new(
        Freezable::new(enc, cfg.freeze_text),
        &ExpanderConfig::with_mlp(cfg.text_mlp()),
        vb.pp("text").pp("projector"),
    )?;
    Ok(JointEmbedding::new(image, text))
}

/// The variables the optimizer updates: every trainable variable of `store`
/// except those of frozen encoders.
pub fn optimized_vars(cfg: &PretrainConfig, store: &ParamStore) -> Vec<(String, Var)> {
    store
        .trainable_vars()
        .into_iter()
        .filter(|(n, _)| {
            let frozen = (cfg.freeze_image && n.starts_with(IMAGE_ENCODER))
                || (cfg.freeze_text && n.starts_with(TEXT_ENCODER));
            !frozen
        })
        .collect()
}

/// Number of scalars in `vars`.
pub fn count(vars: &[(String, Var)]) -> usize {
    vars.iter().map(|(_, v)| v.elem_count()).sum()
}

/// A trained run: its configuration, model and tokenizer.
pub struct LoadedRun {
    /// The run's configuration.
    pub cfg: PretrainConfig,
    /// The model (weights from `<run>/model.safetensors`, or random init).
    pub model: ImageTextModel,
    /// The caption tokenizer.
    pub tokenizer: datasets::text::TextTokenizer,
}

/// Rebuilds the model of a run directory; `trained = false` keeps the seeded
/// random initialisation (the baseline), `true` loads `<run>/model.safetensors`.
pub fn load_run(exp_dir: &Path, trained: bool, device: &Device) -> Result<LoadedRun> {
    let cfg = PretrainConfig::of_run(exp_dir)?;
    let arch = TextArch::of_run(exp_dir)?;
    let tokenizer = crate::text::run_tokenizer(exp_dir, cfg.max_len)?;
    let store = ParamStore::new(cfg.train.seed);
    let model = build(&cfg, &arch, &store, device)?;
    if trained {
        let f = exp_dir.join(MODEL_FILE);
        if !f.is_file() {
            anyhow::bail!(
                "{}: no {MODEL_FILE} in this run directory (pretraining not finished? run `coco-retrieval pretrain --exp-dir {}` to resume it)",
                exp_dir.display(),
                exp_dir.display()
            );
        }
        store
            .load_safetensors(&f)
            .with_context(|| format!("loading {}", f.display()))?;
    }
    Ok(LoadedRun {
        cfg,
        model,
        tokenizer,
    })
}

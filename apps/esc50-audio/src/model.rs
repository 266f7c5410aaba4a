//! The encoders and the joint-embedding model.
//!
//! Variable names in the pretraining store: `wave.encoder.*` and
//! `wave.projector.*` (branch A, the 1-D ResNet on raw waveforms), and for
//! wave-spec also `spec.encoder.*` / `spec.projector.*` (branch B, log-mel ->
//! 2-D ResNet). The engine exports `wave-encoder.safetensors` and
//! `spec-encoder.safetensors` with the `<branch>.encoder.` prefix removed
//! (torchvision-style names), which is what [`Encoders::load`] reads.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use datasets::audio::EvalInput;
use encoders::audio::{ResNet1d, SpectrogramEncoder};
use vicreg_core::eval::{extract_with, Features};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::ParamStore;

use crate::config::{Pairing, PretrainConfig};

/// Store prefix of the waveform encoder.
pub const WAVE_PREFIX: &str = "wave.encoder.";
/// Store prefix of the spectrogram encoder.
pub const SPEC_PREFIX: &str = "spec.encoder.";

/// Builds the waveform encoder under `vb`.
pub fn wave_encoder(cfg: &PretrainConfig, vb: candle_nn::VarBuilder) -> Result<ResNet1d> {
    let net = encoders::audio::ResNet1dConfig {
        time_pool: cfg.time_pool,
        ..cfg.wave_arch.config()
    };
    Ok(ResNet1d::new(&net, vb)?)
}

/// Builds the spectrogram encoder under `vb`.
pub fn spec_encoder(cfg: &PretrainConfig, vb: candle_nn::VarBuilder) -> Result<SpectrogramEncoder> {
    Ok(SpectrogramEncoder::new(&cfg.spec_encoder()?, vb)?)
}

/// The two pretraining architectures (both take `(B, samples)` waveforms on each side).
pub enum Joint {
    /// Non-shared wave and spectrogram branches.
    WaveSpec(JointEmbedding<ResNet1d, SpectrogramEncoder>),
    /// One shared waveform branch.
    WaveWave(JointEmbedding<ResNet1d>),
    /// One shared spectrogram branch.
    SpecSpec(JointEmbedding<SpectrogramEncoder>),
}

/// The joint-embedding model of `cfg.pairing`, its variables created in `store`.
pub fn joint(cfg: &PretrainConfig, store: &ParamStore, device: &Device) -> Result<Joint> {
    let vb = store.var_builder(DType::F32, device);
    let exp = ExpanderConfig::with_mlp(&cfg.mlp);
    let wave = || -> Result<_> {
        Ok(Branch::new(
            wave_encoder(cfg, vb.pp("wave").pp("encoder"))?,
            &exp,
            vb.pp("wave").pp("projector"),
        )?)
    };
    let spec = || -> Result<_> {
        Ok(Branch::new(
            spec_encoder(cfg, vb.pp("spec").pp("encoder"))?,
            &exp,
            vb.pp("spec").pp("projector"),
        )?)
    };
    Ok(match cfg.pairing {
        Pairing::WaveWave => Joint::WaveWave(JointEmbedding::siamese(wave()?)),
        Pairing::SpecSpec => Joint::SpecSpec(JointEmbedding::siamese(spec()?)),
        Pairing::WaveSpec => Joint::WaveSpec(JointEmbedding::new(wave()?, spec()?)),
    })
}

/// Which representation evaluation uses.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum BranchSel {
    /// The 1-D waveform ResNet.
    Wave,
    /// The log-mel 2-D ResNet (wave-spec runs only).
    Spec,
    /// Both representations concatenated (wave-spec runs only).
    Both,
}

impl BranchSel {
    /// What evaluation looks at when no `--branch` is given: the waveform
    /// encoder of wave-spec and wave-wave runs, the spectrogram encoder of
    /// spec-spec runs.
    pub fn default_for(pairing: Pairing) -> Self {
        match pairing {
            Pairing::WaveSpec | Pairing::WaveWave => BranchSel::Wave,
            Pairing::SpecSpec => BranchSel::Spec,
        }
    }

    /// The name used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            BranchSel::Wave => "wave",
            BranchSel::Spec => "spec",
            BranchSel::Both => "both",
        }
    }
}

/// Frozen encoders for evaluation, each in its own store (names without prefix).
pub struct Encoders {
    /// The waveform encoder and its store.
    pub wave: Option<(ResNet1d, ParamStore)>,
    /// The spectrogram encoder and its store.
    pub spec: Option<(SpectrogramEncoder, ParamStore)>,
}

impl Encoders {
    /// The columns of `sel` in features extracted with a `Both` selection
    /// (wave first, then spec).
    pub fn select(&self, f: &Features, sel: BranchSel) -> Result<Features> {
        let (dw, ds) = self.dims();
        let (off, len) = match sel {
            BranchSel::Wave => (0, dw),
            BranchSel::Spec => (dw, ds),
            BranchSel::Both => (0, dw + ds),
        };
        if len == 0 || off + len > f.dim() {
            bail!("no {} representation among the loaded encoders", sel.name());
        }
        Ok(Features::new(f.x.narrow(1, off, len)?, f.labels.clone())?)
    }

    /// The selection covering all of `sels`.
    pub fn union(sels: &[BranchSel]) -> BranchSel {
        let wave = sels.iter().any(|&s| s != BranchSel::Spec);
        let spec = sels.iter().any(|&s| s != BranchSel::Wave);
        match (wave, spec) {
            (true, false) => BranchSel::Wave,
            (false, true) => BranchSel::Spec,
            _ => BranchSel::Both,
        }
    }

    /// Seeded random initialisation of the encoders `sel` needs (the random-init baseline).
    pub fn random(
        cfg: &PretrainConfig,
        sel: BranchSel,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut out = Self {
            wave: None,
            spec: None,
        };
        if sel != BranchSel::Spec {
            let s = ParamStore::new(seed);
            out.wave = Some((wave_encoder(cfg, s.var_builder(DType::F32, device))?, s));
        }
        if sel != BranchSel::Wave {
            let s = ParamStore::new(seed ^ 0x5bec);
            out.spec = Some((spec_encoder(cfg, s.var_builder(DType::F32, device))?, s));
        }
        Ok(out)
    }

    /// The encoders `sel` needs, with the weights of run directory `dir`
    /// (`wave-encoder.safetensors`, `spec-encoder.safetensors`).
    pub fn load(dir: &Path, cfg: &PretrainConfig, sel: BranchSel, device: &Device) -> Result<Self> {
        if sel != BranchSel::Wave
            && cfg.pairing == Pairing::WaveWave
            && !dir.join("spec-encoder.safetensors").is_file()
        {
            bail!(
                "{}: a wave-wave run has no spectrogram encoder; use --branch wave",
                dir.display()
            );
        }
        if sel != BranchSel::Spec
            && cfg.pairing == Pairing::SpecSpec
            && !dir.join("wave-encoder.safetensors").is_file()
        {
            bail!(
                "{}: a spec-spec run has no waveform encoder; use --branch spec",
                dir.display()
            );
        }
        let out = Self::random(cfg, sel, 0, device)?;
        if let Some((_, s)) = &out.wave {
            load_into(s, &dir.join("wave-encoder.safetensors"))?;
        }
        if let Some((_, s)) = &out.spec {
            load_into(s, &dir.join("spec-encoder.safetensors"))?;
        }
        Ok(out)
    }

    /// Representation size of the selection.
    pub fn dim(&self) -> usize {
        self.wave.as_ref().map_or(0, |w| w.0.repr_dim())
            + self.spec.as_ref().map_or(0, |s| s.0.repr_dim())
    }

    /// `(B, dim)` eval-mode representations of `(B, samples)` waveforms
    /// (wave first, then spec when both are selected).
    pub fn forward(&self, waves: &Tensor) -> vicreg_core::Result<Tensor> {
        let mut parts = Vec::new();
        if let Some((w, _)) = &self.wave {
            parts.push(w.forward_t(waves, false)?);
        }
        if let Some((s, _)) = &self.spec {
            parts.push(s.forward_t(waves, false)?);
        }
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// `(wave, spec)` representation sizes (0 when absent).
    pub fn dims(&self) -> (usize, usize) {
        (
            self.wave.as_ref().map_or(0, |w| w.0.repr_dim()),
            self.spec.as_ref().map_or(0, |s| s.0.repr_dim()),
        )
    }

    /// `(B, dim)` eval-mode representations of an evaluation batch: clips go
    /// through whole; windows go through as a batch of windows, and each clip's
    /// representation is the weighted mean of its windows' (weights `(B, W)`).
    pub fn forward_eval(&self, input: &EvalInput) -> vicreg_core::Result<Tensor> {
        match input {
            EvalInput::Clips(x) => self.forward(x),
            EvalInput::Windows(x, w) => {
                let (b, nw) = w.dims2()?;
                let r = self.forward(x)?; // (B * W, D)
                let d = r.dim(1)?;
                let r = r.reshape((b, nw, d))?;
                let w3 = w.unsqueeze(2)?;
                let total = w.sum_keepdim(1)?.clamp(1e-12, f64::INFINITY)?;
                Ok(r.broadcast_mul(&w3)?.sum(1)?.broadcast_div(&total)?)
            }
        }
    }

    /// Frozen features of labelled evaluation batches.
    pub fn features<I>(&self, batches: I) -> Result<Features>
    where
        I: IntoIterator<Item = vicreg_core::Result<(EvalInput, Vec<usize>)>>,
    {
        Ok(extract_with(|x: &EvalInput| self.forward_eval(x), batches)?)
    }
}

/// Loads an exported encoder file into `store`, naming the file on failure.
pub fn load_into(store: &ParamStore, file: &Path) -> Result<()> {
    if !file.is_file() {
        bail!(
            "{}: missing (pretraining not finished in this run directory?)",
            file.display()
        );
    }
    let tensors = vicreg_core::io::load_safetensors(file)
        .with_context(|| format!("reading {}", file.display()))?;
    store
        .load_tensors(&tensors, false, file)
        .with_context(|| format!("loading encoder weights from {}", file.display()))
}

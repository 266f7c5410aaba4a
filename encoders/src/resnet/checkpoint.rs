//! Reading, renaming and loading ResNet weights: safetensors files and
//! PyTorch `.pth` checkpoints (torchvision state dicts, official VICReg
//! `resnet50.pth` backbones and full `model.pth` training checkpoints).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use candle_core::{Tensor, Var};

use super::model::ResNet;
use crate::{Error, Result};

/// Keys under which a `.pth` file may nest its state dict, tried in order
/// when the top level holds no tensors.
pub const NESTED_STATE_DICT_KEYS: [&str; 3] = ["state_dict", "model", "module"];

/// Prefixes that select the backbone of a full training checkpoint
/// (official VICReg: `module.backbone.` under DDP). When one of them is
/// present, only the tensors under it are kept.
pub const BACKBONE_PREFIXES: [&str; 2] = ["module.backbone.", "backbone."];

/// Reads every tensor of `path` onto the CPU. The format is detected from the
/// content: a zip archive is a PyTorch `.pth` checkpoint (read with candle's
/// pickle reader; the state dict may sit at the top level or under one of
/// [`NESTED_STATE_DICT_KEYS`]), anything else must be safetensors.
/// Errors name the file.
pub fn read_checkpoint(path: &Path) -> Result<HashMap<String, Tensor>> {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    if n == 4 && magic == *b"PK\x03\x04" {
        return read_pth(path);
    }
    let is_pth_name = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "pth" | "pt" | "tar" | "ckpt" | "bin"
        )
    });
    if is_pth_name {
        return Err(Error::bad_file(
            path,
            "not a zip-based PyTorch checkpoint (the legacy pre-1.6 torch.save format is not supported; \
             re-save it with a recent PyTorch or convert it to safetensors)",
        ));
    }
    Ok(vicreg_core::io::load_safetensors(path)?)
}

fn read_pth(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bad = |e: candle_core::Error| {
        Error::bad_file(path, format!("cannot read PyTorch checkpoint: {e}"))
    };
    let top = candle_core::pickle::read_all_with_key(path, None).map_err(bad)?;
    if !top.is_empty() {
        return Ok(top.into_iter().collect());
    }
    for key in NESTED_STATE_DICT_KEYS {
        // A missing key is an error in candle; just try the next one.
        if let Ok(t) = candle_core::pickle::read_all_with_key(path, Some(key)) {
            if !t.is_empty() {
                return Ok(t.into_iter().collect());
            }
        }
    }
    Err(Error::bad_file(
        path,
        format!(
            "no tensors found in this PyTorch checkpoint, neither at the top level nor under {}",
            NESTED_STATE_DICT_KEYS.map(|k| format!("{k:?}")).join(", ")
        ),
    ))
}

/// Turns a raw checkpoint into torchvision ResNet names: keeps only the
/// backbone when a [`BACKBONE_PREFIXES`] prefix is present (dropping e.g. the
/// projector), otherwise strips a leading `module.` (DataParallel); then drops
/// `fc.*` (classifier head) and `*num_batches_tracked` tensors.
pub fn resnet_state_dict(raw: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let backbone = BACKBONE_PREFIXES
        .iter()
        .find(|p| raw.keys().any(|k| k.starts_with(*p)));
    let mut out = HashMap::new();
    for (key, t) in raw {
        let name = match backbone {
            Some(p) => match key.strip_prefix(*p) {
                Some(n) => n.to_string(),
                None => continue,
            },
            None => key.strip_prefix("module.").unwrap_or(&key).to_string(),
        };
        if name.starts_with("fc.") || name.ends_with("num_batches_tracked") {
            continue;
        }
        out.insert(name, t);
    }
    out
}

fn summarize(v: &[String]) -> String {
    const MAX: usize = 10;
    if v.len() <= MAX {
        v.join(", ")
    } else {
        format!("{}, ... ({} more)", v[..MAX].join(", "), v.len() - MAX)
    }
}

impl ResNet {
    /// Sets every tensor of the network from `tensors` (torchvision names, see
    /// [`ResNet::named_tensors`]). All-or-nothing: if a tensor is missing, has
    /// the wrong shape, or a name matches nothing, nothing is changed and the
    /// error (naming `source`) lists every problem. Values are converted to
    /// the model's dtype and device. The network must have been built from a
    /// [`vicreg_core::ParamStore`] (its tensors are then variables that can be
    /// overwritten in place).
    pub fn load_state_dict(&self, tensors: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
        let named = self.named_tensors();
        let mut missing = Vec::new();
        let mut bad_shape = Vec::new();
        for (name, t) in &named {
            match tensors.get(name) {
                None => missing.push(name.clone()),
                Some(v) if v.dims() != t.dims() => {
                    bad_shape.push(format!("{name}: file {:?}, model {:?}", v.dims(), t.dims()))
                }
                Some(_) => {}
            }
        }
        let known: HashSet<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        let mut unexpected: Vec<String> = tensors
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect();
        missing.sort();
        bad_shape.sort();
        unexpected.sort();
        if !missing.is_empty() || !bad_shape.is_empty() || !unexpected.is_empty() {
            let mut msg = format!("weights do not fit {}", self.config().name());
            if !missing.is_empty() {
                msg += &format!(
                    "; missing {} tensors: {}",
                    missing.len(),
                    summarize(&missing)
                );
            }
            if !bad_shape.is_empty() {
                msg += &format!("; wrong shape: {}", summarize(&bad_shape));
            }
            if !unexpected.is_empty() {
                msg += &format!(
                    "; unexpected {} tensors: {}",
                    unexpected.len(),
                    summarize(&unexpected)
                );
                if let Some(prefix) = unexpected
                    .iter()
                    .find_map(|k| k.strip_suffix("conv1.weight").filter(|p| !p.is_empty()))
                {
                    msg += &format!(
                        " (the weights seem to live under the prefix {prefix:?}; known prefixes {} and \"module.\" are removed automatically)",
                        BACKBONE_PREFIXES.map(|p| format!("{p:?}")).join(", ")
                    );
                }
            }
            return Err(Error::bad_file(source, msg));
        }
        let mut updates = Vec::with_capacity(named.len());
        for (name, t) in &named {
            if !t.is_variable() {
                return Err(Error::config(format!(
                    "cannot load {}: tensor {name} is not a variable (build the network from a ParamStore VarBuilder)",
                    source.display()
                )));
            }
            let v = tensors[name].to_dtype(t.dtype())?.to_device(t.device())?;
            updates.push((Var::from_tensor(t)?, v));
        }
        for (var, v) in updates {
            var.set(&v)?;
        }
        Ok(())
    }

    /// Loads weights from a safetensors or `.pth` file: [`read_checkpoint`],
    /// then [`resnet_state_dict`], then [`ResNet::load_state_dict`].
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let raw = read_checkpoint(path)?;
        self.load_state_dict(&resnet_state_dict(raw), path)
    }

    /// A snapshot (deep copy) of every tensor under its torchvision name.
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        self.named_tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.detach().copy()?)))
            .collect()
    }

    /// Saves [`ResNet::state_dict`] as safetensors (atomically), loadable by
    /// [`ResNet::load_weights`] and by `torchvision` via `safetensors.torch.load_file`.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(vicreg_core::io::save_safetensors_atomic(
            &self.state_dict()?,
            path.as_ref(),
        )?)
    }
}

//! Loading named tensors into a built network, shared by the image encoder
//! families: backbone extraction from training checkpoints and an
//! all-or-nothing load that lists every missing, misshapen or unexpected
//! tensor.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{Tensor, Var};

use crate::resnet::BACKBONE_PREFIXES;
use crate::{Error, Result};

/// Keeps only the backbone when a [`BACKBONE_PREFIXES`] prefix is present
/// (dropping e.g. the projector of a training checkpoint) and removes that
/// prefix; otherwise strips a leading `module.` (DataParallel).
pub(crate) fn backbone_state_dict(raw: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
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
        out.insert(name, t);
    }
    out
}

/// A deep copy of every tensor of `named`, keyed by name.
pub(crate) fn snapshot(named: Vec<(String, Tensor)>) -> Result<HashMap<String, Tensor>> {
    named
        .into_iter()
        .map(|(n, t)| Ok((n, t.detach().copy()?)))
        .collect()
}

/// Saves [`snapshot`]`(named)` as safetensors, atomically.
pub(crate) fn save_snapshot(named: Vec<(String, Tensor)>, path: &Path) -> Result<()> {
    Ok(vicreg_core::io::save_safetensors_atomic(
        &snapshot(named)?,
        path,
    )?)
}

fn summarize(v: &[String]) -> String {
    const MAX: usize = 10;
    if v.len() <= MAX {
        v.join(", ")
    } else {
        format!("{}, ... ({} more)", v[..MAX].join(", "), v.len() - MAX)
    }
}

/// Sets every tensor of `named` (a network's `(name, variable)` list) from
/// `tensors`. All-or-nothing: if a tensor is missing, has the wrong shape,
/// or a name matches nothing, nothing is changed and the error (naming
/// `source` and `model`) lists every problem; `anchor` (a tensor name every
/// checkpoint of this family has) lets the error point at a prefix the
/// weights may sit under. Values are converted to each variable's dtype and
/// device; every tensor of `named` must be a variable.
pub(crate) fn load_named(
    model: &str,
    named: &[(String, Tensor)],
    tensors: &HashMap<String, Tensor>,
    source: &Path,
    anchor: &str,
) -> Result<()> {
    let mut missing = Vec::new();
    let mut bad_shape = Vec::new();
    for (name, t) in named {
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
        let mut msg = format!("weights do not fit {model}");
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
                .find_map(|k| k.strip_suffix(anchor).filter(|p| !p.is_empty()))
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
    for (name, t) in named {
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

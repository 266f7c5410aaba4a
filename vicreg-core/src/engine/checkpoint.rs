//! Training checkpoints: one self-describing safetensors file.
//!
//! `checkpoint.safetensors` holds every tensor of the training state under a
//! namespace prefix (`model/`, `optim/`, `probe/`, `probe_optim/`) and, in its
//! header metadata, the [`CheckpointMeta`] as JSON plus a 64-bit hash of the
//! tensor data. Because everything lives in one file written atomically
//! (temporary file, fsync, rename), a kill at any moment leaves either the
//! previous checkpoint or the new one, never a mix. `checkpoint.json` is a
//! human-readable copy of the metadata written right after; the safetensors
//! header is the source of truth.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::metrics::EpochAccum;
use crate::{mix64, Error, Result, RngState};

/// Format version written into every checkpoint.
pub const CHECKPOINT_FORMAT: u32 = 1;

const META_KEY: &str = "vicreg_checkpoint";
const HASH_KEY: &str = "data_hash";
const HASH_PLACEHOLDER: &str = "0000000000000000";

/// Position and bookkeeping of a run at a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Format version ([`CHECKPOINT_FORMAT`]).
    pub format: u32,
    /// Epoch to continue in (0-based; equal to the number of epochs when the run is complete).
    pub epoch: usize,
    /// Index of the next micro-batch of `epoch` to consume (the data position).
    pub batch_in_epoch: usize,
    /// Optimizer steps completed since the start of the run.
    pub global_step: u64,
    /// The engine's random stream.
    pub rng: RngState,
    /// Number of ranks of the run that wrote it.
    pub world_size: usize,
    /// Seconds of training so far (all sessions).
    pub elapsed_s: f64,
    /// Running sums of the current epoch (so that its summary survives a resume).
    pub epoch_accum: EpochAccum,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Position and bookkeeping.
    pub meta: CheckpointMeta,
    /// Every tensor, by its prefixed name (`model/...`, `optim/...`).
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// The tensors under `prefix` (e.g. `"model/"`), with the prefix removed.
    pub fn section(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
            .collect()
    }
}

/// Hash of a byte slice, 8 bytes at a time (not cryptographic: it detects corruption).
pub fn data_hash(bytes: &[u8]) -> u64 {
    let mut h = mix64(bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let w = u64::from_le_bytes(b);
        h = mix64(h ^ w);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = mix64(h ^ u64::from_le_bytes(buf) ^ 0xff);
    }
    h
}

/// Serializes a checkpoint: `sections` are `(prefix, tensors)` pairs, stored as `prefix + name`.
pub fn checkpoint_bytes(
    meta: &CheckpointMeta,
    sections: &[(&str, &HashMap<String, Tensor>)],
) -> Result<Vec<u8>> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (prefix, tensors) in sections {
        for (name, t) in tensors.iter() {
            named.push((
                format!("{prefix}{name}"),
                t.to_device(&Device::Cpu)?.contiguous()?,
            ));
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for w in named.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(Error::invalid(format!(
                "checkpoint: tensor {} appears twice",
                w[0].0
            )));
        }
    }
    let json = serde_json::to_string(meta)
        .map_err(|e| Error::invalid(format!("checkpoint metadata: {e}")))?;
    let mut info = HashMap::new();
    info.insert(META_KEY.to_string(), json);
    info.insert(HASH_KEY.to_string(), HASH_PLACEHOLDER.to_string());
    let views: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut bytes = safetensors::tensor::serialize(views, Some(info))
        .map_err(|e| Error::invalid(format!("checkpoint serialization: {e}")))?;
    // Patch the hash of the data section into the header (same length, so no offset moves).
    let mut len = [0u8; 8];
    len.copy_from_slice(
        bytes
            .get(..8)
            .ok_or_else(|| Error::invalid("checkpoint: serialized header too short"))?,
    );
    let n = u64::from_le_bytes(len) as usize;
    let hash = format!("{:016x}", data_hash(&bytes[8 + n..]));
    let needle = format!("\"{HASH_KEY}\":\"{HASH_PLACEHOLDER}\"");
    let header = &bytes[8..8 + n];
    let pos = header
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .ok_or_else(|| Error::invalid("checkpoint: hash placeholder not found in the header"))?;
    let at = 8 + pos + needle.len() - 1 - HASH_PLACEHOLDER.len();
    bytes[at..at + 16].copy_from_slice(hash.as_bytes());
    Ok(bytes)
}

/// Writes `checkpoint.safetensors` atomically at `path`, then the readable
/// `json_path` copy of the metadata.
pub fn save_checkpoint(
    path: &Path,
    json_path: &Path,
    meta: &CheckpointMeta,
    sections: &[(&str, &HashMap<String, Tensor>)],
) -> Result<()> {
    let bytes = checkpoint_bytes(meta, sections)?;
    crate::io::write_atomic(path, &bytes)?;
    let pretty = serde_json::to_string_pretty(meta)
        .map_err(|e| Error::invalid(format!("checkpoint metadata: {e}")))?;
    crate::io::write_atomic(json_path, pretty.as_bytes())
}

/// Reads a checkpoint written by [`save_checkpoint`]. A missing, truncated or
/// corrupted file, or one from another program, gives an error naming the file.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::bad_file(path, m);
    let (n, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        bad(format!(
            "not a valid checkpoint: unreadable safetensors header ({e})"
        ))
    })?;
    let info = header
        .metadata()
        .as_ref()
        .ok_or_else(|| bad("not a training checkpoint: no vicreg metadata in the header".into()))?;
    let stored_hash = info.get(HASH_KEY).ok_or_else(|| {
        bad(format!(
            "not a training checkpoint: no {HASH_KEY} in the header"
        ))
    })?;
    let data = bytes
        .get(8 + n..)
        .ok_or_else(|| bad("checkpoint is truncated".into()))?;
    let actual = format!("{:016x}", data_hash(data));
    if &actual != stored_hash {
        return Err(bad(format!(
            "checkpoint is corrupt: tensor data hash {actual} does not match the recorded {stored_hash}"
        )));
    }
    let json = info.get(META_KEY).ok_or_else(|| {
        bad(format!(
            "not a training checkpoint: no {META_KEY} in the header"
        ))
    })?;
    let meta: CheckpointMeta = serde_json::from_str(json)
        .map_err(|e| bad(format!("checkpoint metadata is not valid: {e}")))?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(bad(format!(
            "checkpoint format {} is not supported (expected {CHECKPOINT_FORMAT})",
            meta.format
        )));
    }
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        tensors.insert(name, t);
    }
    Ok(Checkpoint { meta, tensors })
}

//! Reading, renaming and loading ResNet weights: safetensors files and
//! PyTorch `.pth` checkpoints (torchvision state dicts, official VICReg
//! `resnet50.pth` backbones and full `model.pth` training checkpoints).

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::Tensor;

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

/// Most bytes of tensor data a `.pth` file may declare in all (64 GiB), on
/// top of the check that every storage's declared size matches its entry.
pub const MAX_PTH_TENSOR_BYTES: u64 = 64 << 30;

/// Most bytes of the pickle (`data.pkl`) of a `.pth` file (256 MiB).
pub const MAX_PTH_PICKLE_BYTES: u64 = 256 << 20;

/// Where a tensor lives in a `.pth` archive, validated against the archive.
struct PthTensorInfo {
    name: String,
    dtype: candle_core::DType,
    /// Dimensions (elements).
    shape: Vec<usize>,
    /// Offset of the first element in its storage (elements).
    offset: usize,
    /// Zip entry of the storage.
    entry: String,
    /// Declared element count of the storage.
    storage_numel: usize,
}

type PthZip = zip::ZipArchive<std::io::BufReader<std::fs::File>>;

fn open_pth_zip(path: &Path) -> Result<PthZip> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        Error::bad_file(
            path,
            format!("cannot read PyTorch checkpoint: not a readable zip archive ({e})"),
        )
    })
}

/// Reads a whole zip entry, refusing one larger than `limit` bytes or whose
/// content differs in length from its declared size.
fn read_entry(zip: &mut PthZip, path: &Path, name: &str, limit: u64) -> Result<Vec<u8>> {
    let bad = |m: String| Error::bad_file(path, format!("cannot read PyTorch checkpoint: {m}"));
    let entry = zip
        .by_name(name)
        .map_err(|e| bad(format!("entry {name}: {e}")))?;
    let declared = entry.size();
    if declared > limit {
        return Err(bad(format!(
            "entry {name} declares {declared} bytes, more than the limit of {limit}"
        )));
    }
    let mut data = Vec::new();
    entry
        .take(declared.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| bad(format!("entry {name} is truncated or corrupt ({e})")))?;
    if data.len() as u64 != declared {
        return Err(bad(format!(
            "entry {name} holds {} bytes but declares {declared}",
            data.len()
        )));
    }
    Ok(data)
}

fn pth_usize(o: &candle_core::pickle::Object, what: &str) -> std::result::Result<usize, String> {
    use candle_core::pickle::Object;
    let v = match o {
        Object::Int(v) => i64::from(*v),
        Object::Long(v) => *v,
        other => return Err(format!("{what} is not an integer ({other:?})")),
    };
    usize::try_from(v).map_err(|_| format!("{what} is negative ({v})"))
}

fn pth_usizes(
    o: &candle_core::pickle::Object,
    what: &str,
) -> std::result::Result<Vec<usize>, String> {
    use candle_core::pickle::Object;
    match o {
        Object::Tuple(v) | Object::List(v) => v
            .iter()
            .enumerate()
            .map(|(i, x)| pth_usize(x, &format!("{what}[{i}]")))
            .collect(),
        other => Err(format!("{what} is not a tuple ({other:?})")),
    }
}

/// The tensor described by a pickled value, `Ok(None)` for anything that is
/// not a tensor (an epoch number, ...). `Err` says what is malformed.
fn pth_tensor_info(
    name: &str,
    value: &candle_core::pickle::Object,
    dir: &str,
) -> std::result::Result<Option<PthTensorInfo>, String> {
    use candle_core::pickle::Object;
    let is_class = |o: &Object, m: &str, c: &str| matches!(o, Object::Class { module_name, class_name } if module_name == m && class_name == c);
    let (mut callable, mut args) = match value {
        Object::Reduce { callable, args } => (callable.as_ref(), args.as_ref()),
        _ => return Ok(None),
    };
    // nn.Parameter: _rebuild_parameter(tensor, requires_grad, hooks)
    // tensor subclass: _rebuild_from_type_v2(func, type, args, state)
    for _ in 0..4 {
        if is_class(callable, "torch._utils", "_rebuild_parameter") {
            let inner = match args {
                Object::Tuple(a) => a.first(),
                _ => None,
            };
            match inner {
                Some(Object::Reduce {
                    callable: c,
                    args: a,
                }) => {
                    callable = c.as_ref();
                    args = a.as_ref();
                }
                _ => return Err("_rebuild_parameter without a tensor argument".into()),
            }
        } else if is_class(callable, "torch._tensor", "_rebuild_from_type_v2") {
            match args {
                Object::Tuple(a) => match (a.first(), a.get(2)) {
                    (Some(c), Some(inner)) => {
                        callable = c;
                        args = inner;
                    }
                    _ => {
                        return Err(format!(
                            "_rebuild_from_type_v2 with {} arguments, expected 4",
                            a.len()
                        ))
                    }
                },
                _ => return Err("_rebuild_from_type_v2 arguments are not a tuple".into()),
            }
        } else {
            break;
        }
    }
    if !is_class(callable, "torch._utils", "_rebuild_tensor_v2") {
        return Ok(None);
    }
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    let a = match args {
        Object::Tuple(a) => a,
        other => {
            return Err(format!(
                "_rebuild_tensor_v2 arguments are not a tuple ({other:?})"
            ))
        }
    };
    let (storage, offset, size, stride) = match (a.first(), a.get(1), a.get(2), a.get(3)) {
        (Some(s), Some(o), Some(z), Some(t)) => (s, o, z, t),
        _ => {
            return Err(format!(
                "_rebuild_tensor_v2 with {} arguments, expected at least 4 (storage, offset, size, stride)",
                a.len()
            ))
        }
    };
    let pid = match storage {
        Object::PersistentLoad(p) => p.as_ref(),
        other => return Err(format!("tensor storage is not a persistent id ({other:?})")),
    };
    // ('storage', storage_type, key, location, numel)
    let p = match pid {
        Object::Tuple(p) => p,
        other => return Err(format!("storage id is not a tuple ({other:?})")),
    };
    let (stype, key, numel) = match (p.get(1), p.get(2), p.get(4)) {
        (Some(t), Some(k), Some(n)) => (t, k, n),
        _ => return Err(format!("storage id with {} fields, expected 5", p.len())),
    };
    let class = match stype {
        Object::Class { class_name, .. } => class_name.as_str(),
        other => return Err(format!("storage type is not a class ({other:?})")),
    };
    use candle_core::DType;
    let dtype = match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "LongStorage" => DType::I64,
        other => return Err(format!("unsupported storage type {other}")),
    };
    let key = match key {
        Object::Unicode(k) => k,
        other => return Err(format!("storage key is not a string ({other:?})")),
    };
    if key.is_empty() || key.contains(['/', '\\']) || key.contains("..") {
        return Err(format!("storage key {key:?} is not a plain name"));
    }
    let storage_numel = pth_usize(numel, "storage size")?;
    let offset = pth_usize(offset, "storage offset")?;
    let shape = pth_usizes(size, "size")?;
    let stride = pth_usizes(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(format!(
            "size has {} dimensions but stride has {}",
            shape.len(),
            stride.len()
        ));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    // row-major contiguous strides (dimensions of size 1 may carry any stride)
    let mut expect = 1usize;
    for (&d, &s) in shape.iter().zip(&stride).rev() {
        if d != 1 && s != expect {
            return Err(format!(
                "tensor with shape {shape:?} and stride {stride:?} is not contiguous (only contiguous tensors are supported)"
            ));
        }
        expect = expect.saturating_mul(d);
    }
    let end = offset
        .checked_add(numel)
        .ok_or_else(|| format!("offset {offset} + {numel} elements overflows"))?;
    if end > storage_numel {
        return Err(format!(
            "shape {shape:?} at offset {offset} needs {end} elements but its storage declares {storage_numel}"
        ));
    }
    Ok(Some(PthTensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        offset,
        entry: format!("{dir}/data/{key}"),
        storage_numel,
    }))
}

/// The `(name, tensor)` entries of a pickled dict.
fn pth_dict_tensors(
    obj: &candle_core::pickle::Object,
    dir: &str,
    path: &Path,
) -> Result<Vec<PthTensorInfo>> {
    use candle_core::pickle::Object;
    let mut out = Vec::new();
    if let Object::Dict(kv) = obj {
        for (k, v) in kv {
            let Object::Unicode(name) = k else { continue };
            match pth_tensor_info(name, v, dir) {
                Ok(Some(info)) => out.push(info),
                Ok(None) => {}
                Err(m) => {
                    return Err(Error::bad_file(
                        path,
                        format!("cannot read PyTorch checkpoint: tensor {name}: {m}"),
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// Reads a zip-based `.pth` file without trusting it: the pickle is parsed
/// with candle's pickle stack machine, but tensors are located, checked
/// (argument counts, dtypes, contiguous strides, shape products with checked
/// multiplication, offset + size within the storage, storage size x dtype
/// size == the storage entry's bytes, total below [`MAX_PTH_TENSOR_BYTES`])
/// and read here. Errors name the file.
fn read_pth(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bad = |m: String| Error::bad_file(path, format!("cannot read PyTorch checkpoint: {m}"));
    let mut zip = open_pth_zip(path)?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(format!("unreadable entry name ({e})")))?;
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") || n.as_str() == "data.pkl")
        .cloned()
        .ok_or_else(|| bad("no data.pkl in the archive".into()))?;
    let dir = pkl
        .strip_suffix("data.pkl")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    if let Some(bo) = names.iter().find(|n| n.ends_with("/byteorder")).cloned() {
        let b = read_entry(&mut zip, path, &bo, 64)?;
        if b.trim_ascii() != b"little" {
            return Err(bad(format!(
                "byte order {:?} is not supported (only little-endian)",
                String::from_utf8_lossy(&b)
            )));
        }
    }
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let pickle = read_entry(&mut zip, path, &pkl, MAX_PTH_PICKLE_BYTES.min(file_len))?;
    let mut stack = candle_core::pickle::Stack::empty();
    let mut cursor = std::io::Cursor::new(pickle.as_slice());
    loop {
        // Refuse, before candle's reader sees them, the opcodes whose
        // arguments it trusts: a string length beyond the end of the pickle
        // (an allocation of up to 4 GiB) and a LONG1 wider than 8 bytes.
        let pos = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        let rest = pickle.get(pos..).unwrap_or(&[]);
        match rest {
            [b'X', a, b, c, d, tail @ ..] => {
                let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
                if len > tail.len() {
                    return Err(bad(format!(
                        "malformed pickle in {pkl}: a string of {len} bytes at byte {pos} runs past the end"
                    )));
                }
            }
            [0x8a, n, ..] if *n > 8 => {
                return Err(bad(format!(
                    "malformed pickle in {pkl}: an integer of {n} bytes at byte {pos} (at most 8 supported)"
                )));
            }
            _ => {}
        }
        let done = stack
            .read(&mut cursor)
            .map_err(|e| bad(format!("malformed pickle in {pkl}: {e}")))?;
        if done {
            break;
        }
    }
    let top = stack
        .finalize()
        .map_err(|e| bad(format!("malformed pickle in {pkl}: {e}")))?;
    let mut infos = pth_dict_tensors(&top, &dir, path)?;
    if infos.is_empty() {
        if let candle_core::pickle::Object::Dict(kv) = &top {
            for key in NESTED_STATE_DICT_KEYS {
                let nested = kv.iter().find_map(|(k, v)| {
                    matches!(k, candle_core::pickle::Object::Unicode(s) if s == key).then_some(v)
                });
                if let Some(v) = nested {
                    infos = pth_dict_tensors(v, &dir, path)?;
                    if !infos.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    if infos.is_empty() {
        return Err(Error::bad_file(
            path,
            format!(
                "no tensors found in this PyTorch checkpoint, neither at the top level nor under {}",
                NESTED_STATE_DICT_KEYS.map(|k| format!("{k:?}")).join(", ")
            ),
        ));
    }
    // Validate every storage against its entry before reading any data.
    let mut storages: HashMap<String, u64> = HashMap::new();
    for info in &infos {
        let bytes = (info.storage_numel as u64)
            .checked_mul(info.dtype.size_in_bytes() as u64)
            .ok_or_else(|| bad(format!("tensor {}: storage size overflows", info.name)))?;
        if let Some(prev) = storages.insert(info.entry.clone(), bytes) {
            if prev != bytes {
                return Err(bad(format!(
                    "storage {} is declared with {prev} and {bytes} bytes",
                    info.entry
                )));
            }
        }
        let actual = zip
            .by_name(&info.entry)
            .map_err(|e| {
                bad(format!(
                    "tensor {}: storage entry {}: {e}",
                    info.name, info.entry
                ))
            })?
            .size();
        if actual != bytes {
            return Err(bad(format!(
                "tensor {}: storage {} declares {} elements ({bytes} bytes) but the archive entry holds {actual} bytes",
                info.name, info.entry, info.storage_numel
            )));
        }
    }
    let total = storages.values().try_fold(0u64, |a, &b| a.checked_add(b));
    match total {
        Some(t) if t <= MAX_PTH_TENSOR_BYTES && t <= file_len => {}
        _ => {
            return Err(bad(format!(
                "the storages declare more bytes than the file holds (or than the limit of {MAX_PTH_TENSOR_BYTES})"
            )))
        }
    }
    let mut data: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = HashMap::new();
    for info in infos {
        if !data.contains_key(&info.entry) {
            let limit = storages.get(&info.entry).copied().unwrap_or(0);
            let d = read_entry(&mut zip, path, &info.entry, limit)?;
            data.insert(info.entry.clone(), d);
        }
        let size = info.dtype.size_in_bytes();
        let bytes = data
            .get(&info.entry)
            .and_then(|d| {
                let n: usize = info.shape.iter().product();
                d.get(info.offset * size..(info.offset + n) * size)
            })
            .ok_or_else(|| {
                bad(format!(
                    "tensor {}: data out of range of its storage",
                    info.name
                ))
            })?;
        let t = Tensor::from_raw_buffer(bytes, info.dtype, &info.shape, &candle_core::Device::Cpu)
            .map_err(|e| bad(format!("tensor {}: {e}", info.name)))?;
        out.insert(info.name, t);
    }
    Ok(out)
}

/// Turns a raw checkpoint into torchvision ResNet names: keeps only the
/// backbone when a [`BACKBONE_PREFIXES`] prefix is present (dropping e.g. the
/// projector), otherwise strips a leading `module.` (DataParallel); then drops
/// `fc.*` (classifier head) and `*num_batches_tracked` tensors.
pub fn resnet_state_dict(raw: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    crate::weights::backbone_state_dict(raw)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("fc.") && !name.ends_with("num_batches_tracked"))
        .collect()
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
        crate::weights::load_named(
            &self.config().name(),
            &self.named_tensors(),
            tensors,
            source,
            "conv1.weight",
        )
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
        crate::weights::snapshot(self.named_tensors())
    }

    /// Saves [`ResNet::state_dict`] as safetensors (atomically), loadable by
    /// [`ResNet::load_weights`] and by `torchvision` via `safetensors.torch.load_file`.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::weights::save_snapshot(self.named_tensors(), path.as_ref())
    }
}

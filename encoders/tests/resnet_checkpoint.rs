//! Loading ResNet weights: safetensors and PyTorch `.pth` files, official
//! VICReg prefixes, nested state dicts, and clear errors for bad files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use encoders::resnet::{ResNet, ResNetConfig};
use encoders::Error;
use vicreg_core::ParamStore;

/// A file in this process's scratch folder, deleted when dropped: each
/// checkpoint written here is ~45 MB. (The folder stays: tests running in
/// parallel may be about to write into it.)
struct TmpFile(PathBuf);

impl std::ops::Deref for TmpFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TmpFile {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tmp(name: &str) -> TmpFile {
    let dir = std::env::temp_dir().join(format!("encoders_resnet_ckpt_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TmpFile(dir.join(name))
}

/// The model whose weights are written (seeded init, built once per test binary).
fn source() -> &'static ResNet {
    static SOURCE: OnceLock<ResNet> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let store = ParamStore::new(1);
        ResNet::new(
            &ResNetConfig::resnet18(),
            store.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap()
    })
}

/// A model to load into. Its initial values are overwritten by every
/// successful load, so it uses candle's fast (unseeded) `VarMap` init instead
/// of the seeded one, which takes most of a second for 11M values.
fn target() -> ResNet {
    let vm = VarMap::new();
    ResNet::new(
        &ResNetConfig::resnet18(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

fn images() -> Tensor {
    let v: Vec<f32> = (0..2 * 3 * 32 * 32)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_vec(v, (2, 3, 32, 32), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Weights of `src` must now be in `dst`: every tensor equal, same eval features.
fn assert_same(src: &ResNet, dst: &ResNet) {
    let a = src.state_dict().unwrap();
    for (n, t) in dst.state_dict().unwrap() {
        assert_eq!(max_diff(&a[&n], &t), 0.0, "{n} not loaded");
    }
    let x = images();
    assert_eq!(
        max_diff(
            &src.features(&x, false).unwrap(),
            &dst.features(&x, false).unwrap()
        ),
        0.0
    );
}

fn err_text(e: Error) -> String {
    e.to_string()
}

// ---- a minimal writer of PyTorch zip checkpoints (pickle protocol 2) ----

fn pickle_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pickle_int(out: &mut Vec<u8>, v: usize) {
    out.push(b'J');
    out.extend_from_slice(&(v as i32).to_le_bytes());
}

fn pickle_tuple(out: &mut Vec<u8>, vs: &[usize]) {
    out.push(b'(');
    for &v in vs {
        pickle_int(out, v);
    }
    out.push(b't');
}

/// `torch._utils._rebuild_tensor_v2(persistent storage, 0, size, stride, False, OrderedDict())`.
fn pickle_tensor(out: &mut Vec<u8>, key: &str, t: &Tensor) {
    out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    out.push(b'(');
    pickle_str(out, "storage");
    out.extend_from_slice(b"ctorch\nFloatStorage\n");
    pickle_str(out, key);
    pickle_str(out, "cpu");
    pickle_int(out, t.elem_count());
    out.extend_from_slice(b"tQ");
    pickle_int(out, 0);
    pickle_tuple(out, t.dims());
    pickle_tuple(out, t.stride());
    out.push(0x89); // False
    out.extend_from_slice(b"ccollections\nOrderedDict\n)R"); // backward hooks
    out.extend_from_slice(b"tR");
}

/// Writes `tensors` (F32) as `torch.save` would, at the top level or nested as `{nest: state_dict, "epoch": 7}`.
fn write_pth(path: &Path, tensors: &HashMap<String, Tensor>, nest: Option<&str>) {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut pkl = vec![0x80, 2];
    if let Some(key) = nest {
        pkl.extend_from_slice(b"}(");
        pickle_str(&mut pkl, "epoch");
        pickle_int(&mut pkl, 7);
        pickle_str(&mut pkl, key);
    }
    // state_dict() is an OrderedDict: `collections.OrderedDict()` then SETITEMS
    pkl.extend_from_slice(b"ccollections\nOrderedDict\n)R(");
    for (i, n) in names.iter().enumerate() {
        pickle_str(&mut pkl, n);
        pickle_tensor(&mut pkl, &i.to_string(), &tensors[*n]);
    }
    pkl.push(b'u');
    if nest.is_some() {
        pkl.push(b'u');
    }
    pkl.push(b'.');
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&pkl).unwrap();
    for (i, n) in names.iter().enumerate() {
        let v = tensors[*n].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        zip.start_file(format!("archive/data/{i}"), opts).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.start_file("archive/version", opts).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

fn prefixed(sd: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    sd.iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
}

#[test]
fn safetensors_round_trip() {
    let (a, b) = (source(), target());
    let p = tmp("roundtrip.safetensors");
    a.save_safetensors(&p).unwrap();
    b.load_weights(&p).unwrap();
    assert_same(a, &b);
}

#[test]
fn official_prefixes_fc_and_num_batches_tracked_are_handled() {
    let a = source();
    let sd = a.state_dict().unwrap();
    let extra = |m: &mut HashMap<String, Tensor>, p: &str| {
        m.insert(
            format!("{p}fc.weight"),
            Tensor::zeros((10, 512), DType::F32, &Device::Cpu).unwrap(),
        );
        m.insert(
            format!("{p}fc.bias"),
            Tensor::zeros(10, DType::F32, &Device::Cpu).unwrap(),
        );
        m.insert(
            format!("{p}bn1.num_batches_tracked"),
            Tensor::new(&[3i64], &Device::Cpu).unwrap(),
        );
    };
    for prefix in ["module.backbone.", "backbone.", "module."] {
        let mut m = prefixed(&sd, prefix);
        extra(&mut m, prefix);
        if prefix.contains("backbone") {
            // a full training checkpoint: the projector is dropped
            let proj = prefix.replace("backbone", "projector");
            m.insert(
                format!("{proj}0.weight"),
                Tensor::zeros((8, 512), DType::F32, &Device::Cpu).unwrap(),
            );
        }
        let p = tmp(&format!(
            "prefixed_{}.safetensors",
            prefix.replace('.', "_")
        ));
        vicreg_core::io::save_safetensors_atomic(&m, &p).unwrap();
        let b = target();
        b.load_weights(&p)
            .unwrap_or_else(|e| panic!("prefix {prefix:?}: {e}"));
        assert_same(a, &b);
    }
}

#[test]
fn pth_checkpoints_top_level_and_nested() {
    let a = source();
    let sd = a.state_dict().unwrap();
    for (nest, prefix) in [
        (None, ""),
        (Some("state_dict"), "module."),
        (Some("model"), "module.backbone."),
    ] {
        let p = tmp(&format!("ckpt_{}.pth", nest.unwrap_or("top")));
        write_pth(&p, &prefixed(&sd, prefix), nest);
        let b = target();
        b.load_weights(&p)
            .unwrap_or_else(|e| panic!("nest {nest:?}: {e}"));
        assert_same(a, &b);
    }
}

#[test]
fn missing_tensor_is_reported_and_nothing_changes() {
    let a = source();
    let mut sd = a.state_dict().unwrap();
    sd.remove("layer1.0.bn1.running_var");
    let p = tmp("missing.safetensors");
    vicreg_core::io::save_safetensors_atomic(&sd, &p).unwrap();
    let b = target();
    let before = b.state_dict().unwrap();
    let msg = err_text(b.load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(msg.contains(p.to_str().unwrap()), "{msg}");
    assert!(
        msg.contains("missing 1 tensors: layer1.0.bn1.running_var"),
        "{msg}"
    );
    for (n, t) in b.state_dict().unwrap() {
        assert_eq!(
            max_diff(&before[&n], &t),
            0.0,
            "{n} changed by a failed load"
        );
    }
}

#[test]
fn wrong_shape_is_reported() {
    let sd = source().state_dict().unwrap();
    let mut m = sd.clone();
    m.insert(
        "conv1.weight".into(),
        Tensor::zeros((64, 1, 7, 7), DType::F32, &Device::Cpu).unwrap(),
    );
    let p = tmp("shape.safetensors");
    vicreg_core::io::save_safetensors_atomic(&m, &p).unwrap();
    let msg = err_text(target().load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(
        msg.contains("wrong shape: conv1.weight: file [64, 1, 7, 7], model [64, 3, 7, 7]"),
        "{msg}"
    );
    // a spectrogram net (1 input channel) takes it
    let vm = VarMap::new();
    let cfg = ResNetConfig::resnet18().with_in_channels(1);
    let mono = ResNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    mono.load_weights(&p).unwrap();
}

#[test]
fn unknown_prefix_is_reported_with_a_hint() {
    let sd = source().state_dict().unwrap();
    let p = tmp("prefix.safetensors");
    vicreg_core::io::save_safetensors_atomic(&prefixed(&sd, "encoder."), &p).unwrap();
    let msg = err_text(target().load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(msg.contains("missing 100 tensors"), "{msg}");
    assert!(msg.contains("unexpected 100 tensors"), "{msg}");
    assert!(msg.contains("prefix \"encoder.\""), "{msg}");
}

#[test]
fn corrupt_truncated_missing_and_legacy_files_give_clear_errors() {
    let b = target();
    // garbage
    let p = tmp("garbage.safetensors");
    std::fs::write(&p, b"this is not a tensor file at all").unwrap();
    let e = b.load_weights(&p).unwrap_err();
    let msg = err_text(e);
    println!("{msg}");
    assert!(
        msg.contains(p.to_str().unwrap()) && msg.contains("safetensors"),
        "{msg}"
    );
    // truncated
    let good = tmp("good.safetensors");
    source().save_safetensors(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let p = tmp("truncated.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = err_text(b.load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(msg.contains(p.to_str().unwrap()), "{msg}");
    // missing
    let p = tmp("does_not_exist.safetensors");
    let e = b.load_weights(&p).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("does_not_exist.safetensors"));
    // legacy (non-zip) torch.save format
    let p = tmp("legacy.pth");
    std::fs::write(&p, [0x80u8, 2, b'}', b'.']).unwrap();
    let msg = err_text(b.load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(
        msg.contains("legacy") && msg.contains("legacy.pth"),
        "{msg}"
    );
    // a zip checkpoint without tensors
    let p = tmp("empty.pth");
    write_pth(&p, &HashMap::new(), Some("state_dict"));
    let msg = err_text(b.load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(
        msg.contains("no tensors found") && msg.contains("empty.pth"),
        "{msg}"
    );
    // a corrupt zip
    let p = tmp("corrupt.pth");
    std::fs::write(&p, b"PK\x03\x04garbage").unwrap();
    let msg = err_text(b.load_weights(&p).unwrap_err());
    println!("{msg}");
    assert!(
        msg.contains("corrupt.pth") && msg.contains("PyTorch"),
        "{msg}"
    );
}

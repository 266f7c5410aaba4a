//! Hostile `.pth` and safetensors checkpoints: every one gives an error that
//! names the file and the problem, never a panic or a huge allocation
//! (issue #20). Includes a bounded property test mutating a valid `.pth`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use encoders::resnet::read_checkpoint;
use proptest::prelude::*;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("encoders_ckpt_bad_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn pickle_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn pickle_int(out: &mut Vec<u8>, v: i64) {
    out.push(b'J');
    out.extend_from_slice(&(v as i32).to_le_bytes());
}

/// A LONG1 integer (8 bytes), for sizes beyond i32.
fn pickle_long(out: &mut Vec<u8>, v: i64) {
    out.push(0x8a);
    out.push(8);
    out.extend_from_slice(&v.to_le_bytes());
}

fn pickle_tuple(out: &mut Vec<u8>, vs: &[i64]) {
    out.push(b'(');
    for &v in vs {
        pickle_long(out, v);
    }
    out.push(b't');
}

/// One tensor entry `name -> _rebuild_tensor_v2(storage(key, numel), 0, size, stride, ...)`;
/// `nargs` < 6 drops trailing arguments.
fn pickle_tensor(
    out: &mut Vec<u8>,
    key: &str,
    numel: i64,
    size: &[i64],
    stride: &[i64],
    nargs: usize,
) {
    out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    out.push(b'(');
    pickle_str(out, "storage");
    out.extend_from_slice(b"ctorch\nFloatStorage\n");
    pickle_str(out, key);
    pickle_str(out, "cpu");
    pickle_long(out, numel);
    out.extend_from_slice(b"tQ");
    if nargs > 1 {
        pickle_int(out, 0);
    }
    if nargs > 2 {
        pickle_tuple(out, size);
    }
    if nargs > 3 {
        pickle_tuple(out, stride);
    }
    if nargs > 4 {
        out.push(0x89);
    }
    if nargs > 5 {
        out.extend_from_slice(b"ccollections\nOrderedDict\n)R");
    }
    out.extend_from_slice(b"tR");
}

struct Spec<'a> {
    numel: i64,
    size: &'a [i64],
    stride: &'a [i64],
    nargs: usize,
    /// Bytes actually stored.
    data_len: usize,
}

fn pth_bytes(spec: &Spec) -> Vec<u8> {
    let mut pkl = vec![0x80, 2];
    pkl.extend_from_slice(b"ccollections\nOrderedDict\n)R(");
    pickle_str(&mut pkl, "w");
    pickle_tensor(
        &mut pkl,
        "0",
        spec.numel,
        spec.size,
        spec.stride,
        spec.nargs,
    );
    pkl.push(b'u');
    pkl.push(b'.');
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", opts).unwrap();
        zip.write_all(&pkl).unwrap();
        zip.start_file("archive/data/0", opts).unwrap();
        let data: Vec<u8> = (0..spec.data_len).map(|i| (i % 7) as u8).collect();
        zip.write_all(&data).unwrap();
        zip.start_file("archive/version", opts).unwrap();
        zip.write_all(b"3\n").unwrap();
        zip.finish().unwrap();
    }
    buf.into_inner()
}

fn good() -> Vec<u8> {
    pth_bytes(&Spec {
        numel: 6,
        size: &[2, 3],
        stride: &[3, 1],
        nargs: 6,
        data_len: 24,
    })
}

fn load_err(name: &str, bytes: &[u8]) -> String {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    let msg = read_checkpoint(&p).unwrap_err().to_string();
    println!("{msg}");
    assert!(msg.contains(p.to_str().unwrap()), "file not named: {msg}");
    msg
}

#[test]
fn valid_small_pth_loads() {
    let p = tmp("good.pth");
    std::fs::write(&p, good()).unwrap();
    let t = read_checkpoint(&p).unwrap();
    assert_eq!(t["w"].dims(), &[2, 3]);
}

#[test]
fn truncated_zip_is_an_error() {
    let b = good();
    let msg = load_err("truncated.pth", &b[..b.len() / 2]);
    assert!(msg.contains("PyTorch checkpoint"), "{msg}");
}

#[test]
fn too_few_rebuild_arguments_is_an_error() {
    for nargs in 1..4 {
        let b = pth_bytes(&Spec {
            numel: 6,
            size: &[2, 3],
            stride: &[3, 1],
            nargs,
            data_len: 24,
        });
        let msg = load_err(&format!("fewargs{nargs}.pth"), &b);
        assert!(
            msg.contains("_rebuild_tensor_v2 with") && msg.contains("expected at least 4"),
            "{msg}"
        );
    }
}

#[test]
fn huge_shape_is_an_error() {
    // product overflows usize
    let b = pth_bytes(&Spec {
        numel: 6,
        size: &[1 << 40, 1 << 40],
        stride: &[1 << 40, 1],
        nargs: 6,
        data_len: 24,
    });
    let msg = load_err("overflow.pth", &b);
    assert!(msg.contains("overflows"), "{msg}");
    // huge but representable: storage declares it, the entry does not hold it
    let n = 1i64 << 40;
    let b = pth_bytes(&Spec {
        numel: n,
        size: &[n],
        stride: &[1],
        nargs: 6,
        data_len: 24,
    });
    let msg = load_err("huge.pth", &b);
    assert!(msg.contains("archive entry holds 24 bytes"), "{msg}");
}

#[test]
fn storage_shorter_than_declared_is_an_error() {
    let b = pth_bytes(&Spec {
        numel: 6,
        size: &[2, 3],
        stride: &[3, 1],
        nargs: 6,
        data_len: 20,
    });
    let msg = load_err("short.pth", &b);
    assert!(
        msg.contains("declares 6 elements (24 bytes) but the archive entry holds 20 bytes"),
        "{msg}"
    );
    // shape larger than the (honest) storage
    let b = pth_bytes(&Spec {
        numel: 6,
        size: &[4, 3],
        stride: &[3, 1],
        nargs: 6,
        data_len: 24,
    });
    let msg = load_err("shape_gt_storage.pth", &b);
    assert!(
        msg.contains("needs 12 elements but its storage declares 6"),
        "{msg}"
    );
}

#[test]
fn negative_and_non_contiguous_layouts_are_errors() {
    let b = pth_bytes(&Spec {
        numel: 6,
        size: &[-2, 3],
        stride: &[3, 1],
        nargs: 6,
        data_len: 24,
    });
    assert!(load_err("neg.pth", &b).contains("negative"));
    let b = pth_bytes(&Spec {
        numel: 6,
        size: &[2, 3],
        stride: &[1, 2],
        nargs: 6,
        data_len: 24,
    });
    assert!(load_err("strided.pth", &b).contains("not contiguous"));
}

#[test]
fn string_running_past_the_pickle_is_an_error() {
    let mut b = good();
    // the first BINUNICODE length in data.pkl ("w") -> 0xffffffff
    let pos = b
        .windows(6)
        .position(|w| w == [b'X', 1, 0, 0, 0, b'w'])
        .unwrap();
    b[pos + 1..pos + 5].copy_from_slice(&u32::MAX.to_le_bytes());
    let msg = load_err("longstr.pth", &b);
    assert!(
        msg.contains("runs past the end") || msg.contains("PyTorch checkpoint"),
        "{msg}"
    );
}

#[test]
fn safetensors_with_a_lying_header_is_an_error() {
    let mut m = HashMap::new();
    m.insert(
        "w".to_string(),
        Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let bytes = vicreg_core::io::safetensors_bytes(&m).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    // claim a larger shape and data range than the file holds (same header length)
    let lie = header.replace("[2,3]", "[9,9]").replace("[0,24]", "[0,99]");
    assert_eq!(lie.len(), header.len());
    let mut b = bytes[..8].to_vec();
    b.extend_from_slice(lie.as_bytes());
    b.extend_from_slice(&bytes[8 + n..]);
    let msg = load_err("lying.safetensors", &b);
    assert!(msg.contains("safetensors"), "{msg}");
    // a header length beyond the file
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let msg = load_err("hugeheader.safetensors", &b);
    assert!(msg.contains("safetensors"), "{msg}");
}

fn mutate(
    base: &[u8],
    flips: &[(usize, u8)],
    cut: Option<usize>,
    insert: Option<(usize, Vec<u8>)>,
) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(i, x) in flips {
        let n = b.len();
        b[i % n] ^= x;
    }
    if let Some((i, ins)) = insert {
        let at = i % (b.len() + 1);
        b.splice(at..at, ins);
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

fn check_no_panic(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    match read_checkpoint(path) {
        Ok(t) => {
            let total: usize = t
                .values()
                .map(|t| t.elem_count() * t.dtype().size_in_bytes())
                .sum();
            assert!(
                total <= bytes.len(),
                "{total} bytes of tensors from a {}-byte file",
                bytes.len()
            );
        }
        Err(e) => assert!(e.to_string().contains(path.to_str().unwrap()), "{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutated `.pth` files (bit flips, byte insertions, truncations) load or
    /// give an error naming the file; never a panic, never more tensor bytes than file bytes.
    #[test]
    fn mutated_pth_never_panics(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        insert in proptest::option::of((any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))),
    ) {
        let base = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/small.pth")).unwrap();
        let b = mutate(&base, &flips, cut, insert);
        check_no_panic(&tmp("prop.pth"), &b);
    }

    /// Same for safetensors bytes.
    #[test]
    fn mutated_safetensors_never_panics(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in proptest::option::of(any::<usize>()),
        insert in proptest::option::of((any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))),
    ) {
        let base = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/small.safetensors")).unwrap();
        let b = mutate(&base, &flips, cut, insert);
        check_no_panic(&tmp("prop.safetensors"), &b);
    }
}

/// The seed corpora (a torch-layout `.pth` with a byteorder entry, a safetensors file) are valid.
#[test]
fn fuzz_seed_corpora_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let t = read_checkpoint(&dir.join("small.pth")).unwrap();
    assert_eq!(t["w"].dims(), &[2, 3]);
    let t = read_checkpoint(&dir.join("small.safetensors")).unwrap();
    assert_eq!(t["w"].dims(), &[2, 3]);
}

/// A `.pth` laid out as `torch.save` writes it (Python's own pickler: memo,
/// BININT1, two tensors sharing one storage at different offsets, a 0-dim
/// LongStorage tensor), made by scripts/make-torch-format-pth.py: the
/// validating reader must still load real files exactly.
#[test]
fn torch_format_pth_loads() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch_format.pth");
    let sd = read_checkpoint(&p).unwrap();
    assert_eq!(sd.len(), 3);
    let w = sd["conv1.weight"].to_vec2::<f32>().unwrap();
    assert_eq!(w, vec![vec![0., 1., 2.], vec![3., 4., 5.]]);
    let b = sd["bn1.weight"].to_vec1::<f32>().unwrap();
    assert_eq!(b, vec![6., 7., 8., 9.]);
    let n = &sd["bn1.num_batches_tracked"];
    assert_eq!(n.dims(), &[] as &[usize]);
    assert_eq!(n.to_scalar::<i64>().unwrap(), 7);
}

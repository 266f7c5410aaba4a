//! IDX (MNIST / Fashion-MNIST) reading, plain and gzipped, and its errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use datasets::image::{IdxDataset, IdxSplit, ImageSource};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vicreg_idxtest_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn write(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        std::fs::write(path, e.finish().unwrap()).unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn reads_plain_and_gz_pairs() {
    let dir = tmp("pairs");
    // 3 images of 2 rows x 4 cols.
    let pixels: Vec<u8> = (0..24).map(|i| i * 10).collect();
    write(
        &dir.join("train-images-idx3-ubyte.gz"),
        &idx_bytes(&[3, 2, 4], &pixels),
        true,
    );
    write(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &idx_bytes(&[3], &[7, 0, 2]),
        true,
    );
    write(
        &dir.join("t10k-images-idx3-ubyte"),
        &idx_bytes(&[1, 2, 4], &pixels[..8]),
        false,
    );
    write(
        &dir.join("t10k-labels-idx1-ubyte"),
        &idx_bytes(&[1], &[4]),
        false,
    );

    let tr = IdxDataset::open(&dir, IdxSplit::Train).unwrap();
    assert_eq!(
        (tr.len(), tr.rows(), tr.cols(), tr.num_classes()),
        (3, 2, 4, 8)
    );
    assert_eq!(tr.labels(), &[7, 0, 2]);
    assert_eq!(tr.gray(1), Some(&pixels[8..16]));
    let rgb = tr.load(1).unwrap();
    assert_eq!(rgb.dimensions(), (4, 2));
    assert_eq!(rgb.get_pixel(1, 0).0, [90, 90, 90]);
    assert_eq!(tr.label(0), 7);
    let te = IdxDataset::open(&dir, IdxSplit::Test).unwrap();
    assert_eq!(te.len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_idx_files_are_named() {
    let dir = tmp("bad");
    let pixels = vec![1u8; 24];
    // Truncated image data.
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(&[3, 2, 4], &pixels[..20]),
        false,
    );
    write(
        &dir.join("train-labels-idx1-ubyte"),
        &idx_bytes(&[3], &[1, 2, 3]),
        false,
    );
    let msg = IdxDataset::open(&dir, IdxSplit::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("truncated"),
        "{msg}"
    );
    // Label count mismatch.
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(&[3, 2, 4], &pixels),
        false,
    );
    write(
        &dir.join("train-labels-idx1-ubyte"),
        &idx_bytes(&[2], &[1, 2]),
        false,
    );
    let msg = IdxDataset::open(&dir, IdxSplit::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("train-labels-idx1-ubyte") && msg.contains("2 labels"),
        "{msg}"
    );
    // Not IDX at all.
    std::fs::write(dir.join("train-labels-idx1-ubyte"), b"PK\x03\x04zip").unwrap();
    let msg = IdxDataset::open(&dir, IdxSplit::Train)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bad magic"), "{msg}");
    // Corrupt gzip.
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte.gz"),
        b"\x1f\x8b\x08\x00garbage",
    )
    .unwrap();
    write(
        &dir.join("t10k-labels-idx1-ubyte"),
        &idx_bytes(&[1], &[0]),
        false,
    );
    let msg = IdxDataset::open(&dir, IdxSplit::Test)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("t10k-images-idx3-ubyte.gz") && msg.contains("gzip"),
        "{msg}"
    );
    // Missing files.
    let empty = tmp("empty");
    let msg = IdxDataset::open(&empty, IdxSplit::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing IDX file train-images-idx3-ubyte"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(empty).unwrap();
}

/// Uses the Debian `dataset-fashion-mnist` package when installed.
#[test]
fn fashion_mnist_if_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("t10k-images-idx3-ubyte.gz").exists() {
        eprintln!("skipping: {} not installed", dir.display());
        return;
    }
    let te = IdxDataset::open(dir, IdxSplit::Test).unwrap();
    assert_eq!(
        (te.len(), te.rows(), te.cols(), te.num_classes()),
        (10_000, 28, 28, 10)
    );
    let mut counts = [0usize; 10];
    for &l in te.labels() {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1000; 10], "Fashion-MNIST test set is balanced");
    let img = te.load(0).unwrap();
    assert_eq!(img.dimensions(), (28, 28));
    assert!(
        img.pixels().any(|p| p.0[0] > 100),
        "first test image is not blank"
    );
}

/// Dimension products that overflow, wrap to exactly 0 (so an empty payload
/// would pass a size check), or exceed the size bound are refused by name,
/// as are images with absurd sides: never a panic or a huge allocation.
#[test]
fn idx_headers_with_overflowing_or_absurd_dims_are_refused() {
    use datasets::image::parse_idx;
    let p = Path::new("hostile-images-idx3-ubyte");
    // 2^32 * 2^32 * ... : on 64-bit the product of three u32::MAX overflows.
    let overflow = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]);
    let msg = parse_idx(&overflow, 3, p).unwrap_err().to_string();
    assert!(
        msg.contains("hostile-images-idx3-ubyte") && msg.contains("corrupt header"),
        "{msg}"
    );
    // (2^16)^4 = 2^64 wraps to exactly 0 with wrapping arithmetic, which
    // would match an empty payload.
    let wrap4 = idx_bytes(&[1 << 16, 1 << 16, 1 << 16, 1 << 16], &[]);
    let msg = parse_idx(&wrap4, 4, p).unwrap_err().to_string();
    assert!(msg.contains("corrupt header"), "{msg}");
    // Larger than the file bound but no overflow.
    let big = idx_bytes(&[1 << 20, 1 << 10, 1 << 10], &[0; 16]);
    let msg = parse_idx(&big, 3, p).unwrap_err().to_string();
    assert!(msg.contains("more than"), "{msg}");
    // Header shorter than its dimension count.
    let msg = parse_idx(&[0, 0, 8, 3, 0, 0], 3, p)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated IDX header"), "{msg}");

    // Sides beyond MAX_IDX_SIDE: 1 image of 1 x 65000 pixels.
    let dir = tmp("wide");
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(&[1, 1, 65000], &vec![0; 65000]),
        false,
    );
    write(
        &dir.join("train-labels-idx1-ubyte"),
        &idx_bytes(&[1], &[0]),
        false,
    );
    let msg = IdxDataset::open(&dir, IdxSplit::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("train-images-idx3-ubyte") && msg.contains("at most 4096"),
        "{msg}"
    );
    // An index past the end is an error, not a panic.
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(&[1, 2, 2], &[0; 4]),
        false,
    );
    let ds = IdxDataset::open(&dir, IdxSplit::Train).unwrap();
    assert!(ds.gray(1).is_none());
    let msg = ds.load(5).unwrap_err().to_string();
    assert!(msg.contains("out of range"), "{msg}");
    std::fs::remove_dir_all(dir).unwrap();
}

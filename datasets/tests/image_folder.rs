//! ImageFolder indexing, the synthetic generator, and the bad-input errors.

use std::path::{Path, PathBuf};

use datasets::image::{load_rgb, BadSamplePolicy, FolderOptions, ImageFolder, ImageSource};
use datasets::synth_images::{generate_image_folder, SynthImageConfig, SYNTH_MARKER};
use datasets::Error;
use image::{ImageFormat, RgbImage};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vicreg_imgtest_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_jpeg(path: &Path, w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 9) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, ImageFormat::Jpeg).unwrap();
    std::fs::write(path, buf.get_ref()).unwrap();
    buf.into_inner()
}

fn strict() -> FolderOptions {
    FolderOptions {
        policy: BadSamplePolicy::Strict,
        ..FolderOptions::default()
    }
}

#[test]
fn synthetic_folder_is_indexed_sorted_and_reused() {
    let root = tmp("synth");
    let cfg = SynthImageConfig::tiny();
    let rep = generate_image_folder(&root, &cfg).unwrap();
    assert!(!rep.reused);
    assert_eq!(rep.written, 10 * (4 + 2));
    assert!(root.join(SYNTH_MARKER).is_file());
    let first = std::fs::read(root.join("train/03_cross/00001.png")).unwrap();
    let rep2 = generate_image_folder(&root, &cfg).unwrap();
    assert!(rep2.reused && rep2.written == 0);

    let train = ImageFolder::open(&root, "train", &strict()).unwrap();
    let val = ImageFolder::open(&root, "val", &strict()).unwrap();
    train.check_same_classes(&val).unwrap();
    assert_eq!(train.len(), 40);
    assert_eq!(val.len(), 20);
    assert_eq!(train.classes()[0], "00_circle");
    assert_eq!(train.classes()[9], "09_waves");
    let mut sorted = train.classes().to_vec();
    sorted.sort();
    assert_eq!(sorted, train.classes());
    assert_eq!(train.label_of(0), 0);
    assert_eq!(train.label_of(39), 9);
    assert_eq!(train.path(5), root.join("train/01_square/00001.png"));
    let img = train.load(13).unwrap();
    assert_eq!(img.dimensions(), (32, 32));

    // Same config elsewhere -> byte-identical files; another seed -> different ones.
    let root2 = tmp("synth2");
    generate_image_folder(&root2, &cfg).unwrap();
    assert_eq!(
        std::fs::read(root2.join("train/03_cross/00001.png")).unwrap(),
        first
    );
    let root3 = tmp("synth3");
    generate_image_folder(
        &root3,
        &SynthImageConfig {
            seed: 1,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_ne!(
        std::fs::read(root3.join("train/03_cross/00001.png")).unwrap(),
        first
    );
    // A changed config in the same root regenerates.
    let rep4 = generate_image_folder(
        &root,
        &SynthImageConfig {
            seed: 1,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert!(!rep4.reused);
    // A marker written by an older generator (no `radius_range` field, whose
    // serde default would make it parse as the current config) regenerates.
    let marker = root.join(SYNTH_MARKER);
    let text = std::fs::read_to_string(&marker).unwrap();
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    old.as_object_mut().unwrap().remove("radius_range");
    std::fs::write(&marker, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let rep5 = generate_image_folder(
        &root,
        &SynthImageConfig {
            seed: 1,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert!(!rep5.reused, "a stale marker must not be reused");
    // Object sizes outside (0, 0.5] of the side are refused.
    let e = generate_image_folder(
        &root,
        &SynthImageConfig {
            radius_range: (0.3, 0.6),
            ..cfg
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("radius_range"), "{e}");
    for d in [root, root2, root3] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Layout: train/a/{ok.jpg, notes.txt}, train/b/{ok.png, broken.jpg}, train/c/ (empty).
fn bad_layout(name: &str) -> PathBuf {
    let root = tmp(name);
    for c in ["a", "b", "c"] {
        std::fs::create_dir_all(root.join("train").join(c)).unwrap();
    }
    let jpg = write_jpeg(&root.join("train/a/ok.jpg"), 24, 20);
    std::fs::write(root.join("train/a/notes.txt"), b"hello").unwrap();
    RgbImage::new(8, 8)
        .save(root.join("train/b/ok.png"))
        .unwrap();
    std::fs::write(root.join("train/b/broken.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    root
}

#[test]
fn skip_policy_counts_non_images_and_empty_classes() {
    let root = bad_layout("skip");
    let f = ImageFolder::open(&root, "train", &FolderOptions::default()).unwrap();
    assert_eq!(f.classes(), ["a", "b", "c"]);
    assert_eq!(f.len(), 3);
    assert_eq!(
        f.report().skipped_files,
        vec![root.join("train/a/notes.txt")]
    );
    assert_eq!(f.report().empty_classes, vec!["c".to_string()]);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn strict_policy_errors_name_the_file() {
    let root = bad_layout("strict");
    let e = ImageFolder::open(&root, "train", &strict()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::BadFile { .. }), "{msg}");
    assert!(
        msg.contains("notes.txt") && msg.contains("not an image file"),
        "{msg}"
    );

    std::fs::remove_file(root.join("train/a/notes.txt")).unwrap();
    let msg = ImageFolder::open(&root, "train", &strict())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("empty class folder") && msg.contains("train/c"),
        "{msg}"
    );

    let msg = ImageFolder::open(&root, "val", &strict())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing split folder")
            && msg.contains(&root.join("val").display().to_string()),
        "{msg}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn decode_errors_name_the_file() {
    let root = bad_layout("decode");
    let ok = load_rgb(&root.join("train/a/ok.jpg")).unwrap();
    assert_eq!(ok.dimensions(), (24, 20));

    let broken = root.join("train/b/broken.jpg");
    let e = load_rgb(&broken).unwrap_err();
    assert!(e.is_sample_error());
    let msg = e.to_string();
    assert!(
        msg.contains("broken.jpg") && msg.contains("truncated JPEG"),
        "{msg}"
    );

    // Valid markers but garbage inside: corrupt.
    let mut jpg = std::fs::read(root.join("train/a/ok.jpg")).unwrap();
    let n = jpg.len();
    jpg[2..n - 2].iter_mut().for_each(|b| *b = 0x5A);
    let corrupt = root.join("train/b/corrupt.jpg");
    std::fs::write(&corrupt, &jpg).unwrap();
    let msg = load_rgb(&corrupt).unwrap_err().to_string();
    assert!(msg.contains("corrupt.jpg"), "{msg}");

    // Text renamed to .png.
    let fake = root.join("train/b/fake.png");
    std::fs::write(&fake, b"this is not a picture").unwrap();
    let msg = load_rgb(&fake).unwrap_err().to_string();
    assert!(
        msg.contains("fake.png") && msg.contains("not an image"),
        "{msg}"
    );

    let missing = root.join("train/b/missing.png");
    let msg = load_rgb(&missing).unwrap_err().to_string();
    assert!(msg.contains("missing.png"), "{msg}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn loader_skips_corrupt_images_with_a_count_or_fails_in_strict_mode() {
    use std::sync::Arc;

    use candle_core::Device;
    use datasets::augment::VicregAugConfig;
    use datasets::image::{collate_two_view, TwoViewDataset};
    use datasets::loader::{Loader, LoaderConfig};

    let root = bad_layout("loader");
    // 3 indexed images: a/ok.jpg, b/broken.jpg (truncated), b/ok.png.
    let folder = ImageFolder::open(&root, "train", &FolderOptions::default()).unwrap();
    assert!(folder.path(1).ends_with("b/broken.jpg"));
    let ds = Arc::new(TwoViewDataset::new(folder, VicregAugConfig::small_images(8)).unwrap());
    let cfg = LoaderConfig {
        batch_size: 3,
        num_workers: 2,
        shuffle: false,
        ..LoaderConfig::default()
    };
    let l = Loader::new(ds.clone(), cfg.clone(), |items| {
        collate_two_view(items, &Device::Cpu)
    })
    .unwrap();
    let mut it = l.iter_epoch(0, 0);
    let (v1, v2) = it.next().unwrap().unwrap();
    assert_eq!(v1.dims(), &[3, 3, 8, 8]);
    assert_eq!(v2.dims(), &[3, 3, 8, 8]);
    assert!(it.next().is_none());
    assert_eq!(it.skipped(), 1);
    assert!(
        it.skipped_messages()[0].contains("broken.jpg"),
        "{:?}",
        it.skipped_messages()
    );

    let strict = LoaderConfig {
        policy: BadSamplePolicy::Strict,
        ..cfg
    };
    let l = Loader::new(ds, strict, |items| collate_two_view(items, &Device::Cpu)).unwrap();
    let err = l.iter_epoch(0, 0).next().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("broken.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn jpeg_with_trailing_bytes_is_accepted_but_cut_one_is_not() {
    let root = tmp("trailing");
    let jpg = write_jpeg(&root.join("ok.jpg"), 16, 12);
    let mut padded = jpg.clone();
    padded.extend_from_slice(b"some trailing metadata\x00\x01\x02");
    std::fs::write(root.join("padded.jpg"), &padded).unwrap();
    assert_eq!(
        load_rgb(&root.join("padded.jpg")).unwrap().dimensions(),
        (16, 12)
    );
    for cut in [jpg.len() - 2, jpg.len() * 3 / 4, 40, 3] {
        std::fs::write(root.join("cut.jpg"), &jpg[..cut]).unwrap();
        let msg = load_rgb(&root.join("cut.jpg")).unwrap_err().to_string();
        assert!(msg.contains("cut.jpg"), "{msg}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

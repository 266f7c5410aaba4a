//! Property tests of every data parser: IDX, ESC-50 csv, COCO captions json,
//! Karpathy split json, wav and image headers. Each starts from a valid file
//! and applies random mutations (byte flips, truncation, insertions, header
//! fields overwritten with extreme values, hostile JSON values); for every
//! mutant the parser must
//! - return (never panic: proptest reports a panic as a failure and shrinks it),
//! - within 10 s (run on a watchdog thread: a hang fails the test),
//! - without any single allocation over 64 MiB (a counting global allocator),
//! - and, if it refuses the file, say which file in the error.
//!
//! Bounded: 200 cases per format, a few seconds in all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;

struct PeakAlloc;
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        PEAK.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// One format's cases at a time, so the allocation peak is that parser's.
static SERIAL: Mutex<()> = Mutex::new(());

const ALLOC_LIMIT: usize = 64 << 20;
const WATCHDOG: Duration = Duration::from_secs(10);

/// Runs `parse` on a watchdog thread; checks time, peak allocation, and that
/// an error names `name`. Returns whether the input was accepted.
fn check(name: &str, parse: impl FnOnce() -> Result<(), String> + Send + 'static) -> bool {
    PEAK.store(0, Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let r = parse();
        let _ = tx.send(r);
    });
    let r = match rx.recv_timeout(WATCHDOG) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: parser still running after {WATCHDOG:?} (hang)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let e = worker.join().err();
            let what = e
                .as_ref()
                .and_then(|p| p.downcast_ref::<String>().cloned())
                .or_else(|| {
                    e.as_ref()
                        .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            panic!("{name}: parser panicked: {what}")
        }
    };
    let _ = worker.join();
    let peak = PEAK.load(Ordering::Relaxed);
    assert!(
        peak <= ALLOC_LIMIT,
        "{name}: one allocation of {peak} bytes"
    );
    match r {
        Ok(()) => true,
        Err(msg) => {
            assert!(msg.contains(name), "error does not name {name}: {msg}");
            false
        }
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vicreg_fuzz_{}_{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A byte-level change; positions are taken modulo the file's length.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        pos: usize,
        byte: u8,
    },
    Truncate {
        keep: usize,
    },
    Insert {
        pos: usize,
        bytes: Vec<u8>,
    },
    /// Overwrites `width` bytes at `offset` (one of the format's header fields).
    Field {
        field: usize,
        value: u64,
    },
}

fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(0xFF),
        Just(0xFFFF),
        Just(0x7FFF_FFFF),
        Just(0x8000_0000),
        Just(0xFFFF_FFFF),
        any::<u32>().prop_map(u64::from),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(pos, byte)| Mutation::Flip { pos, byte }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(pos, bytes)| Mutation::Insert { pos, bytes }),
        (any::<usize>(), extreme()).prop_map(|(field, value)| Mutation::Field { field, value }),
        (any::<usize>(), extreme()).prop_map(|(field, value)| Mutation::Field { field, value }),
    ]
}

/// A header field: byte offset, width in bytes, big-endian or not.
#[derive(Clone, Copy)]
struct Field(usize, usize, bool);

fn mutate(seed: &[u8], muts: &[Mutation], fields: &[Field]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        match m {
            Mutation::Flip { pos, byte } if !b.is_empty() => {
                let n = b.len();
                b[pos % n] ^= byte | 1;
            }
            Mutation::Flip { .. } => {}
            Mutation::Truncate { keep } => b.truncate(keep % (b.len() + 1)),
            Mutation::Insert { pos, bytes } => {
                let at = pos % (b.len() + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Field { field, value } if !fields.is_empty() => {
                let Field(off, width, big) = fields[field % fields.len()];
                if off + width <= b.len() {
                    let bytes = value.to_le_bytes();
                    for (i, &byte) in bytes.iter().take(width).enumerate() {
                        let j = if big { width - 1 - i } else { i };
                        b[off + j] = byte;
                    }
                }
            }
            Mutation::Field { .. } => {}
        }
    }
    b
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------- IDX ----------

fn idx_seed() -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [3u32, 4, 5] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend((0..60).map(|i| i as u8));
    v
}

const IDX_FIELDS: &[Field] = &[
    Field(2, 1, true),
    Field(3, 1, true),
    Field(4, 4, true),
    Field(8, 4, true),
    Field(12, 4, true),
];

proptest! {
    #![proptest_config(config())]
    #[test]
    fn idx_parser_survives_mutations(muts in mutations()) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = mutate(&idx_seed(), &muts, IDX_FIELDS);
        let name = "fuzz-images-idx3-ubyte";
        let accepted = check(name, move || {
            datasets::image::parse_idx(&bytes, 3, Path::new(name))
                .map(|(dims, data)| {
                    assert_eq!(dims.iter().product::<usize>(), data.len());
                })
                .map_err(|e| e.to_string())
        });
        let _ = accepted;
    }
}

// ---------- ESC-50 csv ----------

const CSV_SEED: &str = "filename,fold,target,category,esc10,src_file,take\n\
1-100-A-0.wav,1,0,dog,True,100,A\n\
2-101-A-1.wav,2,1,rooster,False,101,A\n\
3-102-B-0.wav,3,0,dog,True,102,B\n";

proptest! {
    #![proptest_config(config())]
    #[test]
    fn esc50_csv_parser_survives_mutations(
        muts in mutations(),
        target in prop_oneof![Just(None), extreme().prop_map(Some)],
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut seed = CSV_SEED.to_string();
        if let Some(t) = target {
            seed = seed.replace(",2,1,rooster", &format!(",2,{t},rooster"));
        }
        let bytes = mutate(seed.as_bytes(), &muts, &[]);
        let name = "fuzz-esc50.csv";
        check(name, move || {
            datasets::audio::Esc50Index::parse_csv(Path::new(name), &bytes)
                .map(|clips| assert!(!clips.is_empty()))
                .map_err(|e| e.to_string())
        });
    }

    /// The whole ESC-50 index (csv + class table + file checks) on hostile
    /// targets and names: a target far beyond the class count never sizes a table.
    #[test]
    fn esc50_index_survives_hostile_values(
        target in extreme(),
        name in prop_oneof![
            Just("2-101-A-1.wav".to_string()),
            Just("../2-101-A-1.wav".to_string()),
            Just("/etc/passwd".to_string()),
            Just("a/b.wav".to_string()),
            "[a-z.]{0,12}",
        ],
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let root = tmp("esc50");
        std::fs::create_dir_all(root.join("meta")).unwrap();
        std::fs::create_dir_all(root.join("audio")).unwrap();
        for f in ["1-100-A-0.wav", "2-101-A-1.wav", "3-102-B-0.wav"] {
            std::fs::write(root.join("audio").join(f), b"x").unwrap();
        }
        let csv = CSV_SEED
            .replace(",2,1,rooster", &format!(",2,{target},rooster"))
            .replace("2-101-A-1.wav", &name);
        std::fs::write(root.join("meta/esc50.csv"), csv).unwrap();
        let accepted = check("esc50.csv", move || {
            datasets::audio::Esc50Index::load(&root)
                .map(|ix| assert_eq!(ix.num_classes(), 2))
                .map_err(|e| e.to_string())
        });
        if accepted {
            prop_assert_eq!(target, 1);
        }
    }
}

// ---------- COCO captions and Karpathy json ----------

/// Values that may replace a placeholder of a JSON template.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e400".to_string()),
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("\"\"".to_string()),
        Just("\"../../etc/passwd\"".to_string()),
        Just("\"/abs/x.jpg\"".to_string()),
        Just("\"C:\\\\x.jpg\"".to_string()),
        Just("\"a\\u0000b\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_string()),
        "[a-z0-9]{0,8}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|v| v.to_string()),
    ]
}

/// Fills `template`'s `$0`, `$1`, ... with `defaults`, replacing the slots in
/// `hostile` by the given values.
fn fill(template: &str, defaults: &[&str], hostile: &[(usize, String)]) -> String {
    let mut s = template.to_string();
    for (i, d) in defaults.iter().enumerate().rev() {
        let v = hostile
            .iter()
            .rev()
            .find(|(k, _)| k % defaults.len() == i)
            .map(|(_, v)| v.as_str())
            .unwrap_or(d);
        s = s.replace(&format!("${i}"), v);
    }
    s
}

const COCO_TEMPLATE: &str = r#"{"info": {}, "images": [{"id": $0, "file_name": $1, "width": $2, "height": 4},
{"id": $3, "file_name": $4}], "annotations": [{"id": $5, "image_id": $6, "caption": $7},
{"id": 2, "image_id": $8, "caption": "a cat"}, {"id": 3, "image_id": 7, "caption": $9}]}"#;
const COCO_DEFAULTS: &[&str] = &[
    "7",
    "\"a.jpg\"",
    "4",
    "8",
    "\"b.jpg\"",
    "1",
    "7",
    "\"a dog\"",
    "8",
    "\"two dogs\"",
];

const KARPATHY_TEMPLATE: &str = r#"{"dataset": "coco", "images": [
{"filepath": $0, "filename": $1, "split": $2, "cocoid": $3, "imgid": $4, "sentences": [{"raw": $5, "tokens": []}]},
{"filepath": "val2014", "filename": $6, "split": "test", "cocoid": 8, "sentences": $7}]}"#;
const KARPATHY_DEFAULTS: &[&str] = &[
    "\"val2014\"",
    "\"a.jpg\"",
    "\"test\"",
    "7",
    "0",
    "\"a dog\"",
    "\"b.jpg\"",
    "[{\"raw\": \"a cat\"}]",
];

fn coco_root() -> PathBuf {
    let root = tmp("coco");
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("val2014")).unwrap();
    for f in ["a.jpg", "b.jpg"] {
        std::fs::write(root.join("images").join(f), b"x").unwrap();
        std::fs::write(root.join("val2014").join(f), b"x").unwrap();
    }
    root
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn coco_captions_json_survives_hostile_values_and_mutations(
        hostile in prop::collection::vec((any::<usize>(), json_value()), 0..4),
        muts in prop::collection::vec(mutation(), 0..3),
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let root = coco_root();
        let text = fill(COCO_TEMPLATE, COCO_DEFAULTS, &hostile);
        let json = root.join("fuzz_captions.json");
        std::fs::write(&json, mutate(text.as_bytes(), &muts, &[])).unwrap();
        let images = root.join("images");
        check("fuzz_captions.json", move || {
            datasets::coco::CocoCaptions::load_annotations(&json, &images)
                .map(|c| {
                    for e in c.entries() {
                        assert!(e.path.starts_with(&images), "{:?} escapes", e.path);
                    }
                })
                .map_err(|e| e.to_string())
        });
    }

    #[test]
    fn karpathy_json_survives_hostile_values_and_mutations(
        hostile in prop::collection::vec((any::<usize>(), json_value()), 0..4),
        muts in prop::collection::vec(mutation(), 0..3),
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let root = coco_root();
        let text = fill(KARPATHY_TEMPLATE, KARPATHY_DEFAULTS, &hostile);
        let json = root.join("fuzz_dataset_coco.json");
        std::fs::write(&json, mutate(text.as_bytes(), &muts, &[])).unwrap();
        check("fuzz_dataset_coco.json", move || {
            datasets::coco::CocoCaptions::load_karpathy(
                &root,
                &json,
                datasets::coco::KarpathySplit::Test,
            )
            .map(|c| {
                for e in c.entries() {
                    assert!(e.path.starts_with(&root), "{:?} escapes", e.path);
                }
            })
            .map_err(|e| e.to_string())
        });
    }
}

// ---------- wav ----------

fn wav_seed(channels: u16, bits: u16) -> Vec<u8> {
    let frames = 64u32;
    let block = channels as u32 * bits as u32 / 8;
    let data = frames * block;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&(16_000 * block).to_le_bytes());
    b.extend_from_slice(&(block as u16).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    b.extend((0..data).map(|i| (i * 37) as u8));
    b
}

/// RIFF size, fmt size, format tag, channels, rate, byte rate, block align,
/// bits, data size.
const WAV_FIELDS: &[Field] = &[
    Field(4, 4, false),
    Field(16, 4, false),
    Field(20, 2, false),
    Field(22, 2, false),
    Field(24, 4, false),
    Field(28, 4, false),
    Field(32, 2, false),
    Field(34, 2, false),
    Field(40, 4, false),
];

proptest! {
    #![proptest_config(config())]
    #[test]
    fn wav_reader_survives_mutations(
        muts in mutations(),
        (channels, bits) in prop_oneof![Just((1u16, 16u16)), Just((2, 8)), Just((1, 24)), Just((3, 32))],
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let p = tmp("wav").join("fuzz_clip.wav");
        std::fs::write(&p, mutate(&wav_seed(channels, bits), &muts, WAV_FIELDS)).unwrap();
        check("fuzz_clip.wav", move || {
            datasets::audio::load_wav(&p, 8_000)
                .map(|s| assert!(!s.is_empty()))
                .map_err(|e| e.to_string())
        });
    }
}

// ---------- images ----------

fn encoded(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 77]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// PNG IHDR width, height, bit depth, colour type; JPEG SOF0 height and width
/// (at their usual offsets for the image crate's encoder); BMP width, height.
const IMAGE_FIELDS: &[Field] = &[
    Field(16, 4, true),
    Field(20, 4, true),
    Field(24, 1, true),
    Field(25, 1, true),
    Field(18, 4, false),
    Field(22, 4, false),
];

proptest! {
    #![proptest_config(config())]
    #[test]
    fn image_decoder_survives_mutations(
        muts in mutations(),
        format in prop_oneof![
            Just(image::ImageFormat::Png),
            Just(image::ImageFormat::Jpeg),
            Just(image::ImageFormat::Bmp),
        ],
    ) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = mutate(&encoded(format, 12, 9), &muts, IMAGE_FIELDS);
        let name = "fuzz_image.bin";
        check(name, move || {
            datasets::image::decode_rgb(&bytes, Path::new(name))
                .map(|img| assert!(img.width() > 0 && img.height() > 0))
                .map_err(|e| e.to_string())
        });
    }
}

/// The seeds themselves are accepted: the mutations start from valid files.
#[test]
fn seeds_are_valid() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dims, _) = datasets::image::parse_idx(&idx_seed(), 3, Path::new("x")).unwrap();
    assert_eq!(dims, vec![3, 4, 5]);
    assert_eq!(
        datasets::audio::Esc50Index::parse_csv(Path::new("x"), CSV_SEED.as_bytes())
            .unwrap()
            .len(),
        3
    );
    let root = coco_root();
    let json = root.join("seed_captions.json");
    std::fs::write(&json, fill(COCO_TEMPLATE, COCO_DEFAULTS, &[])).unwrap();
    let c = datasets::coco::CocoCaptions::load_annotations(&json, &root.join("images")).unwrap();
    assert_eq!((c.len(), c.num_captions()), (2, 3));
    let kj = root.join("seed_dataset_coco.json");
    std::fs::write(&kj, fill(KARPATHY_TEMPLATE, KARPATHY_DEFAULTS, &[])).unwrap();
    let k = datasets::coco::CocoCaptions::load_karpathy(
        &root,
        &kj,
        datasets::coco::KarpathySplit::Test,
    )
    .unwrap();
    assert_eq!(k.len(), 2);
    for (c, b) in [(1u16, 16u16), (2, 8), (1, 24), (3, 32)] {
        let p = tmp("wavseed").join(format!("seed_{c}_{b}.wav"));
        std::fs::write(&p, wav_seed(c, b)).unwrap();
        assert_eq!(datasets::audio::read_wav(&p).unwrap().samples.len(), 64);
    }
    for f in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Bmp,
    ] {
        let img = datasets::image::decode_rgb(&encoded(f, 12, 9), Path::new("x")).unwrap();
        assert_eq!(img.dimensions(), (12, 9));
    }
}

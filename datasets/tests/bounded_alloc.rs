//! Sizes read from a file never drive an allocation: each hostile header
//! below is refused with an error naming the problem, and the largest single
//! allocation made while refusing it stays under 16 MiB (measured by a
//! counting global allocator, so "it did not crash on this machine" is not
//! the test).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Records the largest single allocation request since the last reset.
struct PeakAlloc;

static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
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

/// The tests of this file run one at a time, so the peak is theirs.
static SERIAL: Mutex<()> = Mutex::new(());

const LIMIT: usize = 16 << 20;

/// Runs `f`, returns its error text, and checks the largest allocation it made.
fn refused<T>(what: &str, f: impl FnOnce() -> datasets::Result<T>) -> String {
    PEAK.store(0, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed);
    let msg = match r {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        peak < LIMIT,
        "{what}: allocated {peak} bytes at once ({msg})"
    );
    msg
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vicreg_alloc_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A PCM wav: canonical 44-byte header whose data chunk claims `data_len`
/// bytes, followed by `payload`.
fn wav(rate: u32, channels: u16, bits: u16, data_len: u32, payload: &[u8]) -> Vec<u8> {
    let block = channels as u32 * (bits as u32 / 8);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&36u32.saturating_add(data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * block).to_le_bytes());
    b.extend_from_slice(&(block as u16).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

#[test]
fn a_wav_data_chunk_claiming_4_gigabytes_in_a_tiny_file() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmp("wav");
    let p = d.join("liar.wav");
    std::fs::write(&p, wav(16_000, 1, 8, u32::MAX - 64, &[128; 6])).unwrap();
    let msg = refused("wav", || datasets::audio::read_wav(&p));
    assert!(
        msg.contains("liar.wav") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn an_esc50_target_of_4294967295() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = tmp("esc50");
    std::fs::create_dir_all(root.join("meta")).unwrap();
    std::fs::create_dir_all(root.join("audio")).unwrap();
    std::fs::write(
        root.join("meta/esc50.csv"),
        "filename,fold,target,category,esc10,src_file,take\n\
         1-1-A-0.wav,1,0,dog,True,1,A\n\
         1-2-A-1.wav,1,4294967295,rooster,False,2,A\n",
    )
    .unwrap();
    let msg = refused("esc50", || datasets::audio::Esc50Index::load(&root));
    assert!(
        msg.contains("esc50.csv") && msg.contains("no clip has target 1"),
        "{msg}"
    );
    assert!(msg.contains("largest is 4294967295"), "{msg}");
}

#[test]
fn idx_dimensions_whose_product_overflows_or_is_huge() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = Path::new("huge-images-idx3-ubyte");
    for dims in [[u32::MAX; 3], [1 << 20, 1 << 12, 1 << 12]] {
        let mut b = vec![0, 0, 8, 3];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(&[0; 64]);
        let msg = refused("idx", || datasets::image::parse_idx(&b, 3, p));
        assert!(msg.contains("huge-images-idx3-ubyte"), "{msg}");
    }
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::new(w, h);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Rewrites the IHDR width and height of a PNG (and its CRC).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = png_bytes(4, 4);
    // 8-byte signature, 4-byte length, "IHDR", then width and height.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

#[test]
fn images_with_absurd_sizes_or_aspect_ratios() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tmp("png");
    // Real 1 x 65000 and 1 x 20000 strips: the evaluation resize would make
    // the first 256 x 16.6 M pixels.
    for (h, why) in [(65000, "too large"), (20000, "aspect ratio")] {
        let strip = d.join(format!("strip{h}.png"));
        std::fs::write(&strip, png_bytes(1, h)).unwrap();
        let msg = refused("strip", || datasets::image::load_rgb(&strip));
        assert!(
            msg.contains(&format!("strip{h}.png")) && msg.contains(why),
            "{msg}"
        );
    }
    // Headers that claim 100000 x 100000 and 30000 x 30000 pixels.
    for (w, h) in [(100_000, 100_000), (30_000, 30_000)] {
        let p = d.join(format!("claims_{w}.png"));
        std::fs::write(&p, png_claiming(w, h)).unwrap();
        let msg = refused("claims", || datasets::image::load_rgb(&p));
        assert!(
            msg.contains(&format!("claims_{w}.png")) && msg.contains("too large"),
            "{msg}"
        );
    }
    // The resize itself refuses an absurd output size before allocating.
    let one = image::RgbImage::new(1, 1);
    let msg = refused("resize", || {
        datasets::augment::resize(
            &one,
            20_000,
            20_000,
            datasets::augment::Interpolation::Bilinear,
        )
    });
    assert!(msg.contains("output pixels"), "{msg}");
    // An image at the aspect bound still decodes.
    let ok = d.join("ok.png");
    std::fs::write(&ok, png_bytes(2, 128)).unwrap();
    assert_eq!(
        datasets::image::load_rgb(&ok).unwrap().dimensions(),
        (2, 128)
    );
}

#[test]
fn resampling_to_more_than_the_output_bound() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 768x up-sampling of 3 M samples asks for 2.3 G output samples.
    let x = vec![0.0f32; 3_000_000];
    let msg = refused("resample", || datasets::audio::resample(&x, 1_000, 768_000));
    assert!(msg.contains("more than"), "{msg}");
    assert_eq!(datasets::audio::resampled_len(10, 0, 16_000), 0);
    assert_eq!(
        datasets::audio::resampled_len(usize::MAX, 1, u32::MAX),
        usize::MAX
    );
}

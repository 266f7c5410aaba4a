//! File names read from annotation files must stay under the data root
//! (issue #20): `..`, absolute paths and (for ESC-50) sub-folders are refused
//! with an error naming the annotation file and the entry; nothing outside
//! the root is opened.

use std::path::{Path, PathBuf};

use datasets::audio::Esc50Index;
use datasets::coco::{CocoCaptions, KarpathySplit};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("datasets-badpaths-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn err_text<T>(r: datasets::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn coco_file_names_escaping_the_image_folder_are_refused() {
    let d = tmp("coco");
    let images = d.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for bad in ["../../etc/passwd", "/etc/passwd", "a/../../secret.jpg"] {
        let json = d.join("captions.json");
        let text = serde_json::json!({
            "images": [{"id": 7, "file_name": bad}],
            "annotations": [{"id": 1, "image_id": 7, "caption": "a cat"}],
        });
        std::fs::write(&json, text.to_string()).unwrap();
        let e = err_text(CocoCaptions::load_annotations(&json, &images));
        assert!(
            e.contains("captions.json") && e.contains("image id 7") && e.contains(bad),
            "{bad}: {e}"
        );
        assert!(e.contains("..") || e.contains("absolute"), "{e}");
    }
}

#[test]
fn karpathy_filepath_and_filename_escaping_the_root_are_refused() {
    let d = tmp("karpathy");
    for (fp, name) in [
        ("..", "x.jpg"),
        ("val2014", "../../x.jpg"),
        ("/etc", "passwd"),
    ] {
        let split = d.join("dataset_coco.json");
        let text = serde_json::json!({"images": [{
            "filepath": fp, "filename": name, "split": "test",
            "sentences": [{"raw": "a dog"}], "cocoid": 3
        }]});
        std::fs::write(&split, text.to_string()).unwrap();
        let e = err_text(CocoCaptions::load_karpathy(&d, &split, KarpathySplit::Test));
        assert!(
            e.contains("dataset_coco.json") && e.contains("images[0]"),
            "{fp}/{name}: {e}"
        );
        assert!(e.contains("..") || e.contains("absolute"), "{e}");
    }
}

fn esc50(root: &Path, filename: &str) -> String {
    std::fs::create_dir_all(root.join("meta")).unwrap();
    std::fs::create_dir_all(root.join("audio")).unwrap();
    let csv =
        format!("filename,fold,target,category,esc10,src_file,take\n{filename},1,0,dog,True,1,A\n");
    std::fs::write(root.join("meta/esc50.csv"), csv).unwrap();
    err_text(Esc50Index::load(root))
}

#[test]
fn esc50_file_names_with_paths_are_refused() {
    let d = tmp("esc50");
    // A real file outside audio/ that a `..` name would reach.
    std::fs::write(d.join("outside.wav"), b"RIFF").unwrap();
    for bad in ["../outside.wav", "/etc/passwd", "sub/x.wav"] {
        let e = esc50(&d, bad);
        assert!(e.contains("esc50.csv") && e.contains(bad), "{bad}: {e}");
    }
}

/// A wav header claiming an absurd sample rate or channel count is refused
/// naming the file, before any resampling allocates by it.
#[test]
fn wav_headers_with_absurd_rates_or_channels_are_refused() {
    let d = tmp("wav");
    for (rate, channels, what) in [
        (1_000_000_000u32, 1u16, "sample rate"),
        (500, 1, "sample rate"),
        (16_000, 200, "channels"),
    ] {
        let p = d.join(format!("r{rate}_c{channels}.wav"));
        // A canonical 44-byte PCM header plus one frame of data.
        let block = 2 * channels as u32;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36u32 + block).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * block).to_le_bytes());
        b.extend_from_slice(&(block as u16).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&block.to_le_bytes());
        b.extend(std::iter::repeat_n(0u8, block as usize));
        std::fs::write(&p, &b).unwrap();
        let e = err_text(datasets::audio::load_wav(&p, 16_000));
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(e.contains(&name), "{e}");
        assert!(
            e.contains(what) && e.contains("wav header declares"),
            "{rate} {channels}: {e}"
        );
    }
}

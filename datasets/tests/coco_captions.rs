//! COCO 2017 captions + Karpathy split readers on the synthetic COCO data, the image-caption
//! datasets, and every bad input with its message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use datasets::augment::{EvalTransform, EvalTransformConfig};
use datasets::coco::{
    collate_image_all_captions, collate_image_tokens, Coco2017Split, CocoCaptions, CocoEval,
    CocoPretrain, KarpathySplit, RawText, SingleViewConfig, SingleViewTransform,
};
use datasets::synth_captions::{
    generate_synth_coco, synth_captioned_image, SynthCaptionsConfig, COLOURS,
};
use datasets::text::{TextConfig, TextTokenizer};
use datasets::{Dataset, Error};
use vicreg_core::SeededRng;

/// A fresh temporary directory, removed when dropped.
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp_dir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("vicreg_coco_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

fn synth(name: &str) -> TmpDir {
    let root = tmp_dir(name);
    generate_synth_coco(&root, &SynthCaptionsConfig::tiny()).unwrap();
    root
}

#[test]
fn coco2017_and_karpathy_splits_load_with_all_captions() {
    let root = synth("load");
    let train = CocoCaptions::load_2017(&root, Coco2017Split::Train).unwrap();
    let val = CocoCaptions::load_2017(&root, Coco2017Split::Val).unwrap();
    assert_eq!((train.len(), val.len()), (24, 8));
    assert_eq!(train.num_captions(), 24 * 5);
    for e in train.entries().iter().chain(val.entries()) {
        assert!(e.path.is_file());
        assert_eq!(e.captions.len(), 5);
        let mut c = e.captions.clone();
        c.sort();
        c.dedup();
        assert_eq!(
            c.len(),
            5,
            "captions of an image are all different: {:?}",
            e.captions
        );
    }
    assert!(train
        .entries()
        .windows(2)
        .all(|w| w[0].image_id < w[1].image_id));
    let (texts, owner) = val.flat_captions();
    assert_eq!((texts.len(), owner[7]), (40, 1));

    let split = root.join("dataset_coco.json");
    let kt = CocoCaptions::load_karpathy(&root, &split, KarpathySplit::Train).unwrap();
    let kv = CocoCaptions::load_karpathy(&root, &split, KarpathySplit::Val).unwrap();
    let ks = CocoCaptions::load_karpathy(&root, &split, KarpathySplit::Test).unwrap();
    assert_eq!(
        (kt.len(), kv.len(), ks.len()),
        (24, 4, 4),
        "train+restval / val / test"
    );
    assert_eq!(kv.entries()[0].captions, val.entries()[0].captions);
    assert_eq!(ks.entries()[0].path, val.entries()[4].path);
}

#[test]
fn captions_describe_the_pixels() {
    // The shape's colour is found in the captioned grid cell, and a colour word is in every caption.
    let cfg = SynthCaptionsConfig {
        distractor_p: 0.0,
        noise_std: 0.0,
        image_size: 48,
        ..SynthCaptionsConfig::tiny()
    };
    for i in 0..20 {
        let (img, sc, caps) = synth_captioned_image(&cfg, 0, i);
        let target = COLOURS[sc.colour].1;
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for (x, y, p) in img.enumerate_pixels() {
            let d: i32 = (0..3)
                .map(|c| (p.0[c] as i32 - target[c] as i32).abs())
                .sum();
            if d < 70 {
                sx += x as f64;
                sy += y as f64;
                n += 1.0;
            }
        }
        assert!(n > 10.0, "image {i}: shape pixels found ({n})");
        let (col, row) = ((sx / n / 16.0) as usize, (sy / n / 16.0) as usize);
        assert_eq!((row, col), (sc.row, sc.col), "image {i}: {caps:?}");
        let words = [
            COLOURS[sc.colour].0,
            "crimson",
            "scarlet",
            "emerald",
            "azure",
            "cobalt",
            "golden",
            "amber",
            "tangerine",
            "violet",
            "turquoise",
            "aqua",
            "rose",
        ];
        for c in &caps {
            assert!(words.iter().any(|w| c.contains(w)), "{c}");
        }
    }
    // Deterministic from the seed, different for another seed.
    let a = synth_captioned_image(&cfg, 1, 3);
    assert_eq!(a, synth_captioned_image(&cfg, 1, 3));
    let other = SynthCaptionsConfig { seed: 1, ..cfg };
    assert_ne!(a.0, synth_captioned_image(&other, 1, 3).0);
}

#[test]
fn pretrain_and_eval_datasets_and_collate() {
    let root = synth("ds");
    let train = Arc::new(CocoCaptions::load_2017(&root, Coco2017Split::Train).unwrap());
    let view = SingleViewTransform::new(SingleViewConfig::caption_safe(24)).unwrap();
    let ds = CocoPretrain::new(train.clone(), view, RawText);
    assert_eq!(ds.len(), 24);
    let mut seen = std::collections::HashSet::new();
    for epoch in 0..20 {
        let (img, cap) = ds.get(2, &mut SeededRng::derive(5, &[epoch, 2])).unwrap();
        assert_eq!((img.channels, img.height, img.width), (3, 24, 24));
        assert!(train.entries()[2].captions.contains(&cap));
        seen.insert(cap);
    }
    assert!(
        seen.len() >= 3,
        "the caption changes with the epoch: {}",
        seen.len()
    );
    let a = ds.get(4, &mut SeededRng::derive(5, &[0, 4])).unwrap();
    assert_eq!(a, ds.get(4, &mut SeededRng::derive(5, &[0, 4])).unwrap());

    // Token ids from the generated tokenizer.json: no unknown words.
    let tok = TextTokenizer::from_file(
        &root.join("tokenizer.json"),
        TextConfig {
            max_len: 20,
            ..TextConfig::default()
        },
    )
    .unwrap();
    let view = SingleViewTransform::new(SingleViewConfig::caption_safe(24)).unwrap();
    let pre = CocoPretrain::new(train.clone(), view, tok.clone());
    let items: Vec<_> = (0..3)
        .map(|i| {
            pre.get(i, &mut SeededRng::derive(1, &[0, i as u64]))
                .unwrap()
        })
        .collect();
    let (x, ids, mask) = collate_image_tokens(items, &Device::Cpu).unwrap();
    assert_eq!(
        (x.dims(), ids.dims(), mask.dims()),
        (&[3, 3, 24, 24][..], &[3, 20][..], &[3, 20][..])
    );

    let val = Arc::new(CocoCaptions::load_2017(&root, Coco2017Split::Val).unwrap());
    let eval = CocoEval::new(
        val.clone(),
        EvalTransform::new(EvalTransformConfig::small_images(28)).unwrap(),
        tok,
    );
    let (img, caps) = eval.get(1, &mut SeededRng::new(0)).unwrap();
    assert_eq!((img.height, caps.len()), (28, 5));
    for c in &caps {
        assert!(!c.ids.contains(&1), "no [UNK] in {:?}", c.ids);
        assert_eq!((c.ids[0], c.ids[c.len() - 1]), (2, 3));
    }
    let items: Vec<_> = (0..2)
        .map(|i| eval.get(i, &mut SeededRng::new(0)).unwrap())
        .collect();
    let (x, ids, _, owner) = collate_image_all_captions(items, &Device::Cpu).unwrap();
    assert_eq!((x.dims()[0], ids.dims()[0]), (2, 10));
    assert_eq!(
        owner.to_vec1::<u32>().unwrap(),
        vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    );
}

fn err_of(r: datasets::Result<CocoCaptions>) -> (Error, String) {
    let e = r.unwrap_err();
    let m = e.to_string();
    (e, m)
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let s = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(s)).unwrap();
}

#[test]
fn bad_coco_inputs_name_the_file() {
    let root = synth("bad");
    let ann = root.join("annotations/captions_val2017.json");
    let orig = std::fs::read_to_string(&ann).unwrap();

    // Malformed JSON: serde's line/column.
    edit(&ann, |s| format!("{{\n\"images\": [\n{}", &s[20..60]));
    let (e, m) = err_of(CocoCaptions::load_2017(&root, Coco2017Split::Val));
    assert!(matches!(e, Error::BadFile { .. }), "{e:?}");
    assert!(
        m.contains("captions_val2017.json") && m.contains("malformed JSON") && m.contains("line 3"),
        "{m}"
    );

    // A caption pointing at an image id not in images[].
    std::fs::write(
        &ann,
        orig.replacen("\"image_id\":25", "\"image_id\":999", 1),
    )
    .unwrap();
    let (_, m) = err_of(CocoCaptions::load_2017(&root, Coco2017Split::Val));
    assert!(
        m.contains("captions_val2017.json") && m.contains("image_id 999"),
        "{m}"
    );

    // A captioned image whose file is missing.
    std::fs::write(&ann, &orig).unwrap();
    let img = root.join("val2017/000000000027.png");
    std::fs::remove_file(&img).unwrap();
    let (e, m) = err_of(CocoCaptions::load_2017(&root, Coco2017Split::Val));
    assert!(matches!(e, Error::Layout(_)), "{e:?}");
    assert!(
        m.contains("000000000027.png")
            && m.contains("captions_val2017.json")
            && m.contains("missing"),
        "{m}"
    );

    // The Karpathy file: that image is in the val split (index 2 of val2017).
    let split = root.join("dataset_coco.json");
    let (_, m) = err_of(CocoCaptions::load_karpathy(
        &root,
        &split,
        KarpathySplit::Val,
    ));
    assert!(
        m.contains("000000000027.png") && m.contains("dataset_coco.json"),
        "{m}"
    );
    assert!(
        CocoCaptions::load_karpathy(&root, &split, KarpathySplit::Train).is_ok(),
        "other splits still load"
    );
    edit(&split, |s| {
        s.replacen("\"split\":\"restval\"", "\"split\":\"holdout\"", 1)
    });
    let (_, m) = err_of(CocoCaptions::load_karpathy(
        &root,
        &split,
        KarpathySplit::Train,
    ));
    assert!(
        m.contains("dataset_coco.json") && m.contains("\"holdout\""),
        "{m}"
    );
    std::fs::write(&split, "{\"images\": [{\"filename\": 3}]}").unwrap();
    let (_, m) = err_of(CocoCaptions::load_karpathy(
        &root,
        &split,
        KarpathySplit::Train,
    ));
    assert!(
        m.contains("dataset_coco.json") && m.contains("line 1 column"),
        "{m}"
    );

    // A missing annotation file is an I/O error naming it.
    let (e, m) = err_of(CocoCaptions::load_2017(
        &tmp_dir("empty"),
        Coco2017Split::Train,
    ));
    assert!(
        matches!(e, Error::Io { .. }) && m.contains("captions_train2017.json"),
        "{m}"
    );

    // A decoding error of a corrupt image names the image at get().
    let root = synth("corrupt");
    let val = Arc::new(CocoCaptions::load_2017(&root, Coco2017Split::Val).unwrap());
    std::fs::write(&val.entries()[0].path, b"not a png").unwrap();
    let ds = CocoEval::new(
        val.clone(),
        EvalTransform::new(EvalTransformConfig::small_images(28)).unwrap(),
        RawText,
    );
    let e = ds.get(0, &mut SeededRng::new(0)).unwrap_err();
    assert!(
        e.is_sample_error() && e.to_string().contains("000000000025.png"),
        "{e}"
    );
}

#[test]
fn generator_reuses_a_complete_dataset() {
    let root = synth("reuse");
    let f = root.join("train2017/000000000001.png");
    let t0 = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    generate_synth_coco(&root, &SynthCaptionsConfig::tiny()).unwrap();
    assert_eq!(
        std::fs::metadata(&f).unwrap().modified().unwrap(),
        t0,
        "reused"
    );
    let jpeg = SynthCaptionsConfig {
        format: datasets::synth_captions::SynthImageFormat::Jpeg,
        ..SynthCaptionsConfig::tiny()
    };
    generate_synth_coco(&root, &jpeg).unwrap();
    assert!(
        !f.exists() && root.join("train2017/000000000001.jpg").is_file(),
        "regenerated as JPEG"
    );
    let train = CocoCaptions::load_2017(&root, Coco2017Split::Train).unwrap();
    assert_eq!(train.len(), 24);
}

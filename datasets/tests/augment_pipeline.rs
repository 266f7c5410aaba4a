//! The VICReg pipelines: official defaults, presets, serde, validation,
//! determinism, output shapes, and the two-view dataset through the loader.

use std::sync::Arc;

use candle_core::Device;
use datasets::augment::{
    augment_view_u8, EvalTransform, EvalTransformConfig, Interpolation, LinearTrainTransform,
    LinearTrainTransformConfig, TwoViewTransform, VicregAugConfig, ViewConfig, ViewTransform,
};
use datasets::image::{collate_labelled, collate_two_view, LabelledImageDataset, TwoViewDataset};
use datasets::image::{FolderOptions, ImageFolder};
use datasets::loader::{Loader, LoaderConfig};
use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use image::RgbImage;
use vicreg_core::SeededRng;

fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            (((x / 8 + y / 8) % 2) * 200 + 20) as u8,
        ])
    })
}

#[test]
fn defaults_are_the_official_recipe() {
    let c = VicregAugConfig::default();
    assert_eq!(c.view1.size, 224);
    assert_eq!(c.view1.scale, (0.08, 1.0));
    assert_eq!(c.view1.ratio, (0.75, 4.0 / 3.0));
    assert_eq!(c.view1.interpolation, Interpolation::Bicubic);
    assert_eq!(
        (c.view1.hflip_p, c.view1.jitter_p, c.view1.grayscale_p),
        (0.5, 0.8, 0.2)
    );
    assert_eq!(
        (
            c.view1.brightness,
            c.view1.contrast,
            c.view1.saturation,
            c.view1.hue
        ),
        (0.4, 0.4, 0.2, 0.1)
    );
    assert_eq!((c.view1.blur_p, c.view1.solarize_p), (1.0, 0.0));
    assert_eq!((c.view2.blur_p, c.view2.solarize_p), (0.1, 0.2));
    assert_eq!(c.view1.blur_sigma, (0.1, 2.0));
    let s = VicregAugConfig::symmetric();
    assert_eq!(
        (
            s.view1.blur_p,
            s.view1.solarize_p,
            s.view2.blur_p,
            s.view2.solarize_p
        ),
        (0.5, 0.1, 0.5, 0.1)
    );
    let small = VicregAugConfig::small_images(32);
    assert_eq!(small.view2.size, 32);
    small.validate().unwrap();
    // serde round trip, and partial JSON fills in defaults.
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<VicregAugConfig>(&json).unwrap(), s);
    let partial: VicregAugConfig =
        serde_json::from_str(r#"{"view2": {"solarize_p": 0.5}}"#).unwrap();
    assert_eq!(partial.view2.solarize_p, 0.5);
    assert_eq!(partial.view2.blur_p, 1.0);
}

#[test]
fn invalid_configs_are_rejected() {
    let bad = |f: &dyn Fn(&mut ViewConfig)| {
        let mut c = VicregAugConfig::default();
        f(&mut c.view1);
        TwoViewTransform::new(c).unwrap_err().to_string()
    };
    assert!(bad(&|v| v.blur_p = 1.5).contains("blur_p"));
    assert!(bad(&|v| v.hue = 0.7).contains("hue"));
    assert!(bad(&|v| v.scale = (0.5, 0.1)).contains("scale"));
    assert!(bad(&|v| v.size = 0).contains("size"));
    let c = VicregAugConfig {
        channels: 2,
        ..VicregAugConfig::default()
    };
    assert!(TwoViewTransform::new(c)
        .unwrap_err()
        .to_string()
        .contains("channels"));
}

#[test]
fn two_views_are_deterministic_shaped_and_different() {
    let t = TwoViewTransform::new(VicregAugConfig::default()).unwrap();
    let img = photo(100, 75);
    let (a1, b1) = t.apply(&img, &mut SeededRng::derive(1, &[0, 5])).unwrap();
    let (a2, b2) = t.apply(&img, &mut SeededRng::derive(1, &[0, 5])).unwrap();
    assert_eq!(a1, a2);
    assert_eq!(b1, b2);
    assert_eq!((a1.channels, a1.height, a1.width), (3, 224, 224));
    assert_ne!(a1, b1);
    let (a3, _) = t.apply(&img, &mut SeededRng::derive(1, &[0, 6])).unwrap();
    assert_ne!(a1, a3);
    // 1-channel output keeps the first channel.
    let g = TwoViewTransform::new(VicregAugConfig {
        channels: 1,
        ..VicregAugConfig::small_images(16)
    })
    .unwrap();
    let (x, _) = g.apply(&img, &mut SeededRng::new(0)).unwrap();
    assert_eq!((x.channels, x.height, x.width), (1, 16, 16));
}

#[test]
fn ops_fire_at_their_probabilities() {
    // Everything off except the crop: the view is the plain resized crop (no flip etc.).
    let off = ViewConfig {
        size: 20,
        hflip_p: 0.0,
        jitter_p: 0.0,
        grayscale_p: 0.0,
        blur_p: 0.0,
        solarize_p: 0.0,
        scale: (1.0, 1.0),
        ratio: (1.0, 1.0),
        ..ViewConfig::default()
    };
    let img = photo(20, 20);
    let out = augment_view_u8(&img, &off, &mut SeededRng::new(3)).unwrap();
    assert_eq!(out, img, "full crop at the same size is the identity");
    // Grayscale always on: equal channels.
    let gray = ViewConfig {
        grayscale_p: 1.0,
        ..off.clone()
    };
    let out = augment_view_u8(&img, &gray, &mut SeededRng::new(3)).unwrap();
    assert!(out.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    // Flip always on: mirrored.
    let flip = ViewConfig {
        hflip_p: 1.0,
        ..off.clone()
    };
    let out = augment_view_u8(&img, &flip, &mut SeededRng::new(3)).unwrap();
    assert_eq!(out.get_pixel(0, 5), img.get_pixel(19, 5));
    // Solarize always on: bright values inverted.
    let sol = ViewConfig {
        solarize_p: 1.0,
        ..off
    };
    let out = augment_view_u8(&img, &sol, &mut SeededRng::new(3)).unwrap();
    assert!(out.pixels().all(|p| p.0.iter().all(|&v| v < 128)));
}

#[test]
fn eval_and_linear_train_transforms() {
    let img = photo(500, 375);
    let e = EvalTransform::new(EvalTransformConfig::default()).unwrap();
    let u = e.apply_u8(&img).unwrap();
    assert_eq!(u.dimensions(), (224, 224));
    let x = e.apply(&img, &mut SeededRng::new(0)).unwrap();
    assert_eq!(
        x,
        e.apply(&img, &mut SeededRng::new(99)).unwrap(),
        "eval is deterministic"
    );
    assert_eq!((x.channels, x.height, x.width), (3, 224, 224));
    let small = EvalTransform::new(EvalTransformConfig::small_images(32)).unwrap();
    assert_eq!(
        small.apply_u8(&photo(64, 64)).unwrap().dimensions(),
        (32, 32)
    );
    assert!(EvalTransform::new(EvalTransformConfig {
        crop: 300,
        ..Default::default()
    })
    .is_err());
    let t = LinearTrainTransform::new(LinearTrainTransformConfig::small_images(24)).unwrap();
    let a = t.apply(&img, &mut SeededRng::new(1)).unwrap();
    assert_eq!((a.channels, a.height, a.width), (3, 24, 24));
    assert_ne!(a, t.apply(&img, &mut SeededRng::new(2)).unwrap());
}

#[test]
fn image_datasets_through_the_loader() {
    let root = std::env::temp_dir().join(format!("vicreg_augpipe_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    generate_image_folder(&root, &SynthImageConfig::tiny()).unwrap();
    let train = ImageFolder::open(&root, "train", &FolderOptions::default()).unwrap();
    let ds = Arc::new(TwoViewDataset::new(train, VicregAugConfig::small_images(16)).unwrap());
    let cfg = LoaderConfig {
        batch_size: 8,
        num_workers: 2,
        seed: 5,
        ..LoaderConfig::default()
    };
    let l = Loader::new(ds, cfg.clone(), |items| {
        collate_two_view(items, &Device::Cpu)
    })
    .unwrap();
    let batches: Vec<_> = l.iter_epoch(0, 0).collect::<datasets::Result<_>>().unwrap();
    assert_eq!(batches.len(), 5);
    assert_eq!(batches[0].0.dims(), &[8, 3, 16, 16]);
    assert_eq!(batches[0].1.dims(), &[8, 3, 16, 16]);
    let again: Vec<_> = l.iter_epoch(0, 3).collect::<datasets::Result<_>>().unwrap();
    let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v(&again[0].0), v(&batches[3].0));

    let val = ImageFolder::open(&root, "val", &FolderOptions::default()).unwrap();
    let ev = Arc::new(LabelledImageDataset::new(
        val,
        EvalTransform::new(EvalTransformConfig::small_images(16)).unwrap(),
    ));
    let l = Loader::new(
        ev,
        LoaderConfig {
            batch_size: 20,
            shuffle: false,
            drop_last: false,
            ..cfg
        },
        |items| collate_labelled(items, &Device::Cpu),
    )
    .unwrap();
    let (x, y) = l.iter_epoch(0, 0).next().unwrap().unwrap();
    assert_eq!(x.dims(), &[20, 3, 16, 16]);
    assert_eq!(
        y.to_vec1::<u32>().unwrap(),
        (0..10).flat_map(|c| [c, c]).collect::<Vec<u32>>()
    );
    std::fs::remove_dir_all(root).unwrap();
}

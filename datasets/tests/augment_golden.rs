//! Bit-exactness of the PIL-path augmentations against
//! /work/shared/golden/augment_reference.safetensors (Pillow 13 / torchvision 0.29).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use datasets::augment::blur::gaussian_blur;
use datasets::augment::color::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, grayscale, hflip, mean_luma,
    solarize,
};
use datasets::augment::{resized_crop, to_normalized_chw, CropBox, Interpolation, Normalization};
use image::RgbImage;

const GOLDEN: &str = "/work/shared/golden/augment_reference.safetensors";

fn golden() -> Option<HashMap<String, Tensor>> {
    if !Path::new(GOLDEN).exists() {
        eprintln!("skipping: {GOLDEN} not present");
        return None;
    }
    Some(candle_core::safetensors::load(GOLDEN, &Device::Cpu).unwrap())
}

/// CHW u8 tensor -> RgbImage (HWC).
fn to_image(t: &Tensor) -> RgbImage {
    let (c, h, w) = t.dims3().unwrap();
    assert_eq!(c, 3);
    let v = t.flatten_all().unwrap().to_vec1::<u8>().unwrap();
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb([v[i], v[h * w + i], v[2 * h * w + i]])
    })
}

fn assert_same(name: &str, got: &RgbImage, g: &HashMap<String, Tensor>) {
    let want = to_image(&g[name]);
    assert_eq!(got.dimensions(), want.dimensions(), "{name}: shape");
    let diff: Vec<_> = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| (i, *a, *b))
        .collect();
    assert!(
        diff.is_empty(),
        "{name}: {} values differ, first (index, got, want): {:?}",
        diff.len(),
        &diff[..diff.len().min(5)]
    );
}

#[test]
fn pil_path_ops_are_bit_exact() {
    let Some(g) = golden() else { return };
    let img = to_image(&g["image"]);
    assert_eq!(img.dimensions(), (40, 48));

    let crop = CropBox {
        top: 5,
        left: 7,
        height: 30,
        width: 25,
    };
    assert_same(
        "resized_crop_bicubic",
        &resized_crop(&img, crop, 32, 32, Interpolation::Bicubic).unwrap(),
        &g,
    );
    let crop = CropBox {
        top: 2,
        left: 3,
        height: 44,
        width: 36,
    };
    assert_same(
        "resized_crop_bicubic_down",
        &resized_crop(&img, crop, 16, 20, Interpolation::Bicubic).unwrap(),
        &g,
    );

    let run = |f: &dyn Fn(&mut RgbImage)| {
        let mut x = img.clone();
        f(&mut x);
        x
    };
    assert_same("hflip", &run(&|x| hflip(x)), &g);
    assert_same("brightness_1.3", &run(&|x| adjust_brightness(x, 1.3)), &g);
    assert_eq!(
        mean_luma(&img),
        133,
        "contrast degenerate value quoted in the README"
    );
    assert_same("contrast_0.7", &run(&|x| adjust_contrast(x, 0.7)), &g);
    assert_same("saturation_1.4", &run(&|x| adjust_saturation(x, 1.4)), &g);
    assert_same("hue_0.08", &run(&|x| adjust_hue(x, 0.08)), &g);
    assert_same("grayscale", &run(&|x| grayscale(x)), &g);
    assert_same(
        "gaussian_blur_sigma_1.2",
        &run(&|x| gaussian_blur(x, 1.2)),
        &g,
    );
    assert_same("solarize_128", &run(&|x| solarize(x, 128)), &g);
}

#[test]
fn normalized_matches_within_1e6() {
    let Some(g) = golden() else { return };
    let img = to_image(&g["image"]);
    let got = to_normalized_chw(&img, &Normalization::imagenet(), 3);
    let want = g["normalized"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!((got.channels, got.height, got.width), (3, 48, 40));
    let max = got
        .data
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-6, "max abs diff {max}");
}

#[test]
fn tensor_path_differs_from_pil_path() {
    // Guards against the test passing vacuously: the tensor-path outputs are
    // NOT what our PIL-path ops produce (the README quotes differences up to 7).
    let Some(g) = golden() else { return };
    let img = to_image(&g["image"]);
    let mut x = img.clone();
    adjust_hue(&mut x, 0.08);
    assert_ne!(x, to_image(&g["tensor_path.hue_0.08"]));
    let mut x = img.clone();
    adjust_contrast(&mut x, 0.7);
    assert_ne!(x, to_image(&g["tensor_path.contrast_0.7"]));
}

/// Small random images through Pillow 13.0 (tests/data/make_pillow_cases.py):
/// both resize pass orders, both filters, blur, hue (incl. a negative shift),
/// blends with factors below and above 1, solarize. Exact equality.
#[test]
fn pillow_random_cases_are_bit_exact() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pillow_cases.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut vertical_first = 0;
    for (i, c) in cases.iter().enumerate() {
        let u = |k: &str| c[k].as_u64().unwrap() as u32;
        let f = |k: &str| c[k].as_f64().unwrap();
        let bytes = |k: &str| -> Vec<u8> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
                .collect()
        };
        let input = RgbImage::from_raw(u("w"), u("h"), bytes("input")).unwrap();
        let want = RgbImage::from_raw(u("ow"), u("oh"), bytes("output")).unwrap();
        let mut x = input.clone();
        let op = c["op"].as_str().unwrap();
        let got = match op {
            "resized_crop" => {
                let filter = if c["filter"] == "bicubic" {
                    Interpolation::Bicubic
                } else {
                    Interpolation::Bilinear
                };
                let (cw, ch) = (u("width") as i64, u("height") as i64);
                let (ow, oh) = (u("ow") as i64, u("oh") as i64);
                if ch - oh > 0 && ch - oh > 2 * (cw - ow) {
                    vertical_first += 1;
                }
                let crop = CropBox {
                    top: u("top"),
                    left: u("left"),
                    height: u("height"),
                    width: u("width"),
                };
                resized_crop(&input, crop, u("ow"), u("oh"), filter).unwrap()
            }
            "gaussian_blur" => {
                gaussian_blur(&mut x, f("sigma") as f32);
                x
            }
            "hue" => {
                adjust_hue(&mut x, f("factor"));
                x
            }
            "brightness" => {
                adjust_brightness(&mut x, f("factor") as f32);
                x
            }
            "contrast" => {
                adjust_contrast(&mut x, f("factor") as f32);
                x
            }
            "saturation" => {
                adjust_saturation(&mut x, f("factor") as f32);
                x
            }
            "solarize" => {
                solarize(&mut x, u("threshold") as u8);
                x
            }
            other => panic!("unknown op {other}"),
        };
        assert_eq!(got, want, "case {i} ({op})");
    }
    assert!(
        vertical_first >= 4,
        "fixture must exercise the vertical-first order"
    );
}

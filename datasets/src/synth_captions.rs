//! Built-in captioned synthetic images written in the real COCO 2017 captions layout:
//! `annotations/captions_{train,val}2017.json`, `train2017/`, `val2017/` (PNG or JPEG),
//! plus a Karpathy-style `dataset_coco.json` (train/restval from train2017, val/test from
//! val2017), a word-level `tokenizer.json` covering the caption vocabulary and
//! `annotations/synth_attributes_{split}2017.json` (the ground-truth attributes).
//!
//! Each image shows one coloured shape (circle, square, triangle, diamond, star, cross;
//! 8 colours; 3 sizes; one of 3x3 positions with jitter and a small rotation) on a dark,
//! grey or light background with a tint, a gradient and pixel noise, sometimes with an
//! uncaptioned grey distractor shape. Each image gets 5 different captions from varied
//! templates and synonyms ("a small red circle at the top left", "Top-left corner: a tiny
//! crimson disc", ...). Image `i` of a split is a pure function of `(seed, split, i)`.

use std::f64::consts::PI;
use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use vicreg_core::SeededRng;

use crate::synth_marker::{is_complete, prepare_dir, write_marker};
use crate::text::word_level_tokenizer_json;
use crate::{Error, Result};

/// Shape names (the canonical word of each shape).
pub const SHAPES: [&str; 6] = ["circle", "square", "triangle", "diamond", "star", "cross"];
/// Colour names with their base RGB.
pub const COLOURS: [(&str, [u8; 3]); 8] = [
    ("red", [215, 35, 35]),
    ("green", [40, 165, 55]),
    ("blue", [45, 75, 220]),
    ("yellow", [235, 215, 45]),
    ("orange", [245, 140, 25]),
    ("purple", [140, 55, 185]),
    ("cyan", [45, 200, 210]),
    ("pink", [240, 125, 185]),
];
/// Size names: small, medium, large.
pub const SIZES: [&str; 3] = ["small", "medium", "large"];
/// Background names.
pub const BACKGROUNDS: [&str; 3] = ["dark", "grey", "light"];

const SHAPE_WORDS: [&[&str]; 6] = [
    &["circle", "disc", "round dot"],
    &["square", "box", "block"],
    &["triangle", "triangular shape"],
    &["diamond", "rhombus"],
    &["star", "five-pointed star"],
    &["cross", "plus sign"],
];
const COLOUR_WORDS: [&[&str]; 8] = [
    &["red", "crimson", "scarlet"],
    &["green", "emerald"],
    &["blue", "azure", "cobalt"],
    &["yellow", "golden"],
    &["orange", "amber", "tangerine"],
    &["purple", "violet"],
    &["cyan", "turquoise", "aqua"],
    &["pink", "rose"],
];
const SIZE_WORDS: [&[&str]; 3] = [
    &["small", "tiny", "little"],
    &["medium-sized", "mid-sized", "medium"],
    &["large", "big", "huge"],
];
const BG_WORDS: [&[&str]; 3] = [
    &["dark", "black", "dim"],
    &["grey", "gray", "neutral"],
    &["light", "white", "pale"],
];
/// Position phrases by (row, column) of the 3x3 grid.
const POS_WORDS: [[&[&str]; 3]; 3] = [
    [
        &["top left", "upper left", "top-left corner"],
        &["top", "top centre", "upper middle"],
        &["top right", "upper right", "top-right corner"],
    ],
    [
        &["left", "middle left", "left side"],
        &["centre", "center", "middle"],
        &["right", "middle right", "right side"],
    ],
    [
        &["bottom left", "lower left", "bottom-left corner"],
        &["bottom", "bottom centre", "lower middle"],
        &["bottom right", "lower right", "bottom-right corner"],
    ],
];

/// Image file format of the generated images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthImageFormat {
    /// Lossless PNG (`.png`).
    Png,
    /// JPEG (`.jpg`), quality 90.
    Jpeg,
}

/// Parameters of the synthetic COCO-like dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthCaptionsConfig {
    /// Images in `train2017/`.
    pub train_images: usize,
    /// Images in `val2017/` (Karpathy: first half `val`, second half `test`).
    pub val_images: usize,
    /// Side of the square images, pixels (>= 24).
    pub image_size: u32,
    /// Captions per image (1..=9, all different).
    pub captions_per_image: usize,
    /// Probability of an uncaptioned grey distractor shape.
    pub distractor_p: f64,
    /// Standard deviation of the per-pixel noise, in 8-bit levels.
    pub noise_std: f64,
    /// File format.
    pub format: SynthImageFormat,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for SynthCaptionsConfig {
    /// 4000 train + 1000 val images of 64x64 PNG, 5 captions each (about 25 MB).
    fn default() -> Self {
        Self {
            train_images: 4000,
            val_images: 1000,
            image_size: 64,
            captions_per_image: 5,
            distractor_p: 0.4,
            noise_std: 6.0,
            format: SynthImageFormat::Png,
            seed: 0,
        }
    }
}

impl SynthCaptionsConfig {
    /// A tiny set for tests: 24 train + 8 val images of 32x32.
    pub fn tiny() -> Self {
        Self {
            train_images: 24,
            val_images: 8,
            image_size: 32,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.train_images == 0 || self.val_images < 2 {
            return Err(Error::Config(
                "need train_images >= 1 and val_images >= 2".into(),
            ));
        }
        if self.image_size < 24 {
            return Err(Error::Config(format!(
                "image_size = {} below 24",
                self.image_size
            )));
        }
        if !(1..=TEMPLATES).contains(&self.captions_per_image) {
            return Err(Error::Config(format!(
                "captions_per_image = {} outside 1..={TEMPLATES}",
                self.captions_per_image
            )));
        }
        if !((0.0..=1.0).contains(&self.distractor_p)
            && self.noise_std >= 0.0
            && self.noise_std.is_finite())
        {
            return Err(Error::Config(
                "distractor_p must be in [0, 1] and noise_std >= 0".into(),
            ));
        }
        Ok(())
    }

    fn ext(&self) -> &'static str {
        match self.format {
            SynthImageFormat::Png => "png",
            SynthImageFormat::Jpeg => "jpg",
        }
    }
}

/// The ground truth of one generated image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthScene {
    /// Index into [`SHAPES`].
    pub shape: usize,
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`SIZES`].
    pub size: usize,
    /// Grid row (0 top .. 2 bottom).
    pub row: usize,
    /// Grid column (0 left .. 2 right).
    pub col: usize,
    /// Index into [`BACKGROUNDS`].
    pub background: usize,
}

/// Number of caption templates.
const TEMPLATES: usize = 9;

fn pick<'a>(rng: &mut SeededRng, words: &[&'a str]) -> &'a str {
    words[rng.below(words.len())]
}

/// "a" or "an" for the following word.
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Caption number `t` (0..9) of a scene, synonyms drawn from `rng`.
fn caption(t: usize, sc: &SynthScene, rng: &mut SeededRng) -> String {
    let s = pick(rng, SIZE_WORDS[sc.size]);
    let c = pick(rng, COLOUR_WORDS[sc.colour]);
    let h = pick(rng, SHAPE_WORDS[sc.shape]);
    let p = pick(rng, POS_WORDS[sc.row][sc.col]);
    let b = pick(rng, BG_WORDS[sc.background]);
    match t {
        0 => format!("{} {s} {c} {h} at the {p}", article(s)),
        1 => format!("{}: {} {s} {c} {h}", capitalise(p), article(s)),
        2 => format!(
            "there is {} {s} {c} {h} at the {p} of the image",
            article(s)
        ),
        3 => format!("{} {c} {h}, {s}, placed at the {p}", article(c)),
        4 => format!(
            "{} {s} {c} {h} on {} {b} background, at the {p}",
            article(s),
            article(b)
        ),
        5 => format!("at the {p} of the frame sits {} {s} {c} {h}", article(s)),
        6 => format!(
            "{} {c} {h} against {} {b} backdrop, {p}",
            capitalise(s),
            article(b)
        ),
        7 => format!("one {c} {h} ({s}) at the {p}"),
        _ => format!(
            "{} {b} picture with {} {s} {c} {h} at the {p}",
            article(b),
            article(s)
        ),
    }
}

/// Whether local point (u, v) (shape frame, radius 1, y down) is inside shape `shape`.
fn inside(shape: usize, u: f64, v: f64) -> bool {
    match shape {
        0 => u * u + v * v <= 1.0,
        1 => u.abs() <= 0.82 && v.abs() <= 0.82,
        2 => {
            // Upward triangle with vertices (0, -1), (0.95, 0.75), (-0.95, 0.75).
            v <= 0.75 && v >= -1.0 + 1.75 * u.abs() / 0.95
        }
        3 => u.abs() + v.abs() <= 1.0,
        4 => inside_star(u, v),
        _ => (u.abs() <= 0.32 && v.abs() <= 1.0) || (v.abs() <= 0.32 && u.abs() <= 1.0),
    }
}

/// Five-pointed star (outer radius 1, inner 0.42, a point up), even-odd polygon test.
fn inside_star(u: f64, v: f64) -> bool {
    let vert = |k: usize| {
        let a = -PI / 2.0 + k as f64 * PI / 5.0;
        let r = if k.is_multiple_of(2) { 1.0 } else { 0.42 };
        (r * a.cos(), r * a.sin())
    };
    let mut inside = false;
    for k in 0..10 {
        let ((x1, y1), (x2, y2)) = (vert(k), vert((k + 1) % 10));
        if (y1 > v) != (y2 > v) && u < x1 + (v - y1) * (x2 - x1) / (y2 - y1) {
            inside = !inside;
        }
    }
    inside
}

/// Paints `shape` centred at (cx, cy) with radius `r` (pixels), rotated by `rot`, with 4x4
/// supersampled coverage blended over the image.
fn paint(img: &mut RgbImage, shape: usize, cx: f64, cy: f64, r: f64, rot: f64, colour: [f64; 3]) {
    let (w, h) = img.dimensions();
    let (sin, cos) = rot.sin_cos();
    let x0 = ((cx - r * 1.1).floor().max(0.0)) as u32;
    let x1 = ((cx + r * 1.1).ceil().min(w as f64 - 1.0)) as u32;
    let y0 = ((cy - r * 1.1).floor().max(0.0)) as u32;
    let y1 = ((cy + r * 1.1).ceil().min(h as f64 - 1.0)) as u32;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let mut hits = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = x as f64 + (sx as f64 + 0.5) / 4.0 - cx;
                    let py = y as f64 + (sy as f64 + 0.5) / 4.0 - cy;
                    let (u, v) = ((cos * px + sin * py) / r, (-sin * px + cos * py) / r);
                    hits += inside(shape, u, v) as u32;
                }
            }
            if hits > 0 {
                let a = hits as f64 / 16.0;
                let p = img.get_pixel_mut(x, y);
                for (v, col) in p.0.iter_mut().zip(colour) {
                    *v = (*v as f64 * (1.0 - a) + col * a).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

/// Draws scene number `index` of split `split` (0 train, 1 val): the image, its scene and
/// its captions. A pure function of `(cfg, split, index)`.
pub fn synth_captioned_image(
    cfg: &SynthCaptionsConfig,
    split: u64,
    index: usize,
) -> (RgbImage, SynthScene, Vec<String>) {
    let mut rng = SeededRng::derive(cfg.seed, &[0xC0C0_0000, split, index as u64]);
    let n = cfg.image_size as f64;
    let sc = SynthScene {
        shape: rng.below(SHAPES.len()),
        colour: rng.below(COLOURS.len()),
        size: rng.below(SIZES.len()),
        row: rng.below(3),
        col: rng.below(3),
        background: rng.below(BACKGROUNDS.len()),
    };
    // Background: level by class, tint, linear gradient, noise.
    let level = match sc.background {
        0 => rng.uniform_range(15.0, 65.0),
        1 => rng.uniform_range(105.0, 150.0),
        _ => rng.uniform_range(190.0, 240.0),
    };
    let tint: Vec<f64> = (0..3).map(|_| rng.uniform_range(-12.0, 12.0)).collect();
    let (gx, gy) = (
        rng.uniform_range(-18.0, 18.0),
        rng.uniform_range(-18.0, 18.0),
    );
    let mut img = RgbImage::new(cfg.image_size, cfg.image_size);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let base = level + gx * (x as f64 / n - 0.5) + gy * (y as f64 / n - 0.5);
        *p = Rgb([0, 1, 2].map(|c| (base + tint[c]).round().clamp(0.0, 255.0) as u8));
    }
    let radius = |size: usize, rng: &mut SeededRng| {
        n * match size {
            0 => rng.uniform_range(0.075, 0.105),
            1 => rng.uniform_range(0.135, 0.17),
            _ => rng.uniform_range(0.205, 0.25),
        }
    };
    let place = |cell: usize, r: f64, rng: &mut SeededRng| {
        let c = (cell as f64 + 0.5) / 3.0 * n + rng.uniform_range(-0.05, 0.05) * n;
        c.clamp(r, n - r)
    };
    // Optional distractor: a grey shape in another cell, drawn first (underneath).
    if rng.bernoulli(cfg.distractor_p) {
        let cell = (sc.row * 3 + sc.col + 1 + rng.below(8)) % 9;
        let (shape, r) = (rng.below(SHAPES.len()), radius(0, &mut rng));
        let (cx, cy) = (place(cell % 3, r, &mut rng), place(cell / 3, r, &mut rng));
        let g = if level > 128.0 {
            level - rng.uniform_range(40.0, 70.0)
        } else {
            level + rng.uniform_range(40.0, 70.0)
        };
        let rot = rng.uniform_range(-PI, PI);
        paint(&mut img, shape, cx, cy, r, rot, [g, g, g]);
    }
    let r = radius(sc.size, &mut rng);
    let (cx, cy) = (place(sc.col, r, &mut rng), place(sc.row, r, &mut rng));
    let base = COLOURS[sc.colour].1;
    let colour = base.map(|v| (v as f64 + rng.uniform_range(-18.0, 18.0)).clamp(0.0, 255.0));
    let rot = rng.uniform_range(-0.26, 0.26);
    paint(&mut img, sc.shape, cx, cy, r, rot, colour);
    if cfg.noise_std > 0.0 {
        for p in img.pixels_mut() {
            for c in 0..3 {
                p.0[c] = (p.0[c] as f64 + cfg.noise_std * rng.normal())
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
    }
    // Captions: distinct templates, distinct strings.
    let order = rng.permutation(TEMPLATES);
    let mut caps: Vec<String> = Vec::with_capacity(cfg.captions_per_image);
    for &t in order.iter().cycle().take(4 * TEMPLATES) {
        if caps.len() == cfg.captions_per_image {
            break;
        }
        let s = caption(t, &sc, &mut rng);
        if !caps.contains(&s) {
            caps.push(s);
        }
    }
    (img, sc, caps)
}

/// Every word the captions can use (for the tokenizer vocabulary).
fn vocabulary_corpus() -> Vec<String> {
    let sc = SynthScene {
        shape: 0,
        colour: 0,
        size: 0,
        row: 0,
        col: 0,
        background: 0,
    };
    let mut v: Vec<String> = (0..TEMPLATES)
        .map(|t| caption(t, &sc, &mut SeededRng::new(0)))
        .collect();
    let lists = SHAPE_WORDS
        .iter()
        .chain(COLOUR_WORDS.iter())
        .chain(SIZE_WORDS.iter())
        .chain(BG_WORDS.iter());
    v.extend(lists.flat_map(|l| l.iter().map(|w| w.to_string())));
    v.extend(
        POS_WORDS
            .iter()
            .flatten()
            .flat_map(|l| l.iter().map(|w| w.to_string())),
    );
    v.extend(["an".to_string()]);
    v
}

struct Written {
    images: Vec<serde_json::Value>,
    annotations: Vec<serde_json::Value>,
    attributes: Vec<serde_json::Value>,
    karpathy: Vec<serde_json::Value>,
}

fn write_split(
    root: &Path,
    cfg: &SynthCaptionsConfig,
    split: u64,
    first_id: u64,
    next_sent: &mut u64,
) -> Result<Written> {
    let (name, count) = if split == 0 {
        ("train", cfg.train_images)
    } else {
        ("val", cfg.val_images)
    };
    let dir = root.join(format!("{name}2017"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let made: Vec<(u64, String, SynthScene, Vec<String>)> = (0..count)
        .into_par_iter()
        .map(|i| {
            let (img, sc, caps) = synth_captioned_image(cfg, split, i);
            let id = first_id + i as u64;
            let file = format!("{id:012}.{}", cfg.ext());
            let path = dir.join(&file);
            let fmt = match cfg.format {
                SynthImageFormat::Png => ImageFormat::Png,
                SynthImageFormat::Jpeg => ImageFormat::Jpeg,
            };
            img.save_with_format(&path, fmt)
                .map_err(|e| Error::bad_file(&path, format!("cannot write image: {e}")))?;
            Ok((id, file, sc, caps))
        })
        .collect::<Result<_>>()?;
    let mut w = Written {
        images: vec![],
        annotations: vec![],
        attributes: vec![],
        karpathy: vec![],
    };
    for (i, (id, file, sc, caps)) in made.into_iter().enumerate() {
        w.images.push(
            json!({"id": id, "file_name": file, "width": cfg.image_size, "height": cfg.image_size}),
        );
        let ksplit = match (split, i) {
            (0, i) if i >= count - count / 10 => "restval",
            (0, _) => "train",
            (_, i) if i < count / 2 => "val",
            _ => "test",
        };
        let mut sentences = Vec::new();
        let mut sentids = Vec::new();
        for c in &caps {
            w.annotations
                .push(json!({"id": *next_sent, "image_id": id, "caption": c}));
            let tokens: Vec<String> = c
                .to_lowercase()
                .split(|ch: char| !ch.is_alphanumeric() && ch != '-')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            sentences.push(json!({"raw": c, "tokens": tokens, "imgid": id, "sentid": *next_sent}));
            sentids.push(*next_sent);
            *next_sent += 1;
        }
        w.karpathy.push(json!({
            "filepath": format!("{name}2017"), "filename": file, "split": ksplit, "imgid": id,
            "cocoid": id, "sentids": sentids, "sentences": sentences
        }));
        w.attributes.push(json!({
            "image_id": id, "shape": SHAPES[sc.shape], "colour": COLOURS[sc.colour].0,
            "size": SIZES[sc.size], "row": sc.row, "col": sc.col, "background": BACKGROUNDS[sc.background]
        }));
    }
    Ok(w)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string(v).map_err(|e| Error::Config(format!("JSON: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Generates (or reuses) the dataset at `root`. A root whose marker holds the same config is
/// reused untouched; an older or interrupted generation is replaced; a root containing
/// anything the generator did not write is refused.
pub fn generate_synth_coco(root: &Path, cfg: &SynthCaptionsConfig) -> Result<()> {
    cfg.validate()?;
    if is_complete(root, cfg)? {
        return Ok(());
    }
    prepare_dir(
        root,
        &[
            "annotations",
            "train2017",
            "val2017",
            "dataset_coco.json",
            "tokenizer.json",
        ],
    )?;
    let ann = root.join("annotations");
    std::fs::create_dir_all(&ann).map_err(|e| Error::io(&ann, e))?;
    let mut sent = 1u64;
    let train = write_split(root, cfg, 0, 1, &mut sent)?;
    let val = write_split(root, cfg, 1, 1 + cfg.train_images as u64, &mut sent)?;
    let info = json!({"description": "vicreg-rs synthetic captioned shapes", "seed": cfg.seed});
    let mut karpathy = Vec::new();
    let mut corpus = vocabulary_corpus();
    for (name, w) in [("train", train), ("val", val)] {
        write_json(
            &ann.join(format!("captions_{name}2017.json")),
            &json!({"info": info, "licenses": [], "images": w.images, "annotations": w.annotations}),
        )?;
        write_json(
            &ann.join(format!("synth_attributes_{name}2017.json")),
            &json!(w.attributes),
        )?;
        corpus.extend(
            w.annotations
                .iter()
                .filter_map(|a| a["caption"].as_str().map(String::from)),
        );
        karpathy.extend(w.karpathy);
    }
    write_json(
        &root.join("dataset_coco.json"),
        &json!({"images": karpathy, "dataset": "coco"}),
    )?;
    write_json(
        &root.join("tokenizer.json"),
        &word_level_tokenizer_json(corpus.iter().map(String::as_str)),
    )?;
    write_marker(root, cfg)
}

//! The `coco-retrieval` binary end to end on tiny generated COCO-layout data:
//! pretrain -> eval -> retrieve, resume, a frozen pretrained text encoder,
//! neighbours after a short pretraining, and clear errors for bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use datasets::synth_captions::{generate_synth_coco, SynthCaptionsConfig};
use encoders::text::{train_wordpiece, BertConfig, TextTransformer, WordPieceTrainConfig};
use vicreg_core::ParamStore;
use vicreg_tests::app::{assert_config_lines, fails, run_stdout as run};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_coco-retrieval"), "coco-retrieval-cli");

/// 24 train + 8 test images of 32 px, 5 captions each.
fn tiny_data(root: &Path) {
    generate_synth_coco(root, &SynthCaptionsConfig::tiny()).unwrap();
}

/// A small, fast model: ResNet-18 at 24 px crops, 1-layer transformer of width 32.
fn pretrain_cmd(data: &Path, exp: &Path, epochs: usize) -> Command {
    pretrain_batch(data, exp, epochs, 8)
}

fn pretrain_batch(data: &Path, exp: &Path, epochs: usize, batch: usize) -> Command {
    let mut c = bin();
    c.args([
        "pretrain",
        "--image-arch",
        "resnet18",
        "--image-size",
        "24",
        "--text-hidden",
        "32",
        "--text-layers",
        "1",
        "--text-heads",
        "2",
    ])
    .args([
        "--mlp",
        "64-64",
        "--quiet",
        "--num-workers",
        "1",
        "--warmup-epochs",
        "0",
        "--max-len",
        "20",
    ])
    .arg("--batch-size")
    .arg(batch.to_string())
    .arg("--epochs")
    .arg(epochs.to_string())
    .arg("--data-dir")
    .arg(data)
    .arg("--exp-dir")
    .arg(exp);
    c
}

#[test]
fn pretrain_eval_retrieve_and_resume() {
    let root = tmp("seq");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    run(&mut pretrain_cmd(&data, &exp, 1));
    for f in [
        "config.toml",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "image-encoder.safetensors",
        "text-encoder.safetensors",
        "tokenizer.json",
        "text-encoder.json",
        "model.safetensors",
    ] {
        assert!(exp.join(f).is_file(), "missing {f}");
    }
    let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(
        cfg.contains("mlp-text = \"64-64\"")
            && cfg.contains("std-coeff-text = 25.0")
            && cfg.contains("base-lr"),
        "{cfg}"
    );
    // The WordPiece vocabulary was trained on the captions: caption words are whole tokens.
    let tok = encoders::text::TextTokenizer::from_file(&exp.join("tokenizer.json")).unwrap();
    assert!(tok.token_to_id("circle").is_some() && tok.token_to_id("[PAD]") == Some(0));

    // Resuming with one more epoch continues from the checkpoint (24 images / 8 = 3 steps per epoch).
    let s = run(&mut pretrain_cmd(&data, &exp, 2));
    assert!(s.contains("done: 6 steps"), "{s}");

    let s = run(bin().arg("eval").arg("--exp-dir").arg(&exp));
    assert!(
        s.contains("i2t R@1")
            && s.contains("| 8 images |")
            && !s.contains("1 folds of 8")
            && s.contains("(random init) | 8 images |")
            && s.contains("| chance | 8 images |"),
        "{s}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("retrieval_eval.json")).unwrap())
            .unwrap();
    assert_eq!(v["test_images"], 8);
    assert!(
        v["baselines"]["chance"]["full"]["t2i_r1"]
            .as_f64()
            .is_some(),
        "{v}"
    );
    assert_eq!(v["test_captions"], 40);
    let r10 = v["full"]["t2i_r10"].as_f64().unwrap();
    assert_eq!(
        r10, 100.0,
        "with 8 images every caption's image is in the top 10"
    );
    let rsum = v["full"]["rsum"].as_f64().unwrap();
    let sum: f64 = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]
        .iter()
        .map(|k| v["full"][k].as_f64().unwrap())
        .sum();
    assert!((rsum - sum).abs() < 1e-9);

    let index = exp.join("retrieval-index.safetensors");
    let built = std::fs::metadata(&index).unwrap().modified().unwrap();
    let s = run(bin()
        .args([
            "retrieve",
            "--text",
            "a red circle on a dark background",
            "--k",
            "3",
        ])
        .arg("--exp-dir")
        .arg(&exp));
    let hits: Vec<&str> = s.lines().skip(1).collect();
    assert_eq!(hits.len(), 3, "{s}");
    assert!(hits.iter().all(|l| l.contains("val2017")), "{s}");
    assert_eq!(
        std::fs::metadata(&index).unwrap().modified().unwrap(),
        built,
        "the cached index was rebuilt"
    );
    let img = data
        .join("val2017")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let s = run(bin()
        .args(["retrieve", "--k", "4"])
        .arg("--image")
        .arg(&img)
        .arg("--exp-dir")
        .arg(&exp));
    assert_eq!(s.lines().count(), 5, "{s}");

    // The gallery: 3 captions x 5 images + 3 query images, hits marked;
    // and the embeddings of both modalities with their map.
    run(bin()
        .args(["eval", "--baselines", "false", "--gallery", "3"])
        .arg("--exp-dir")
        .arg(&exp));
    let page = exp.join("gallery.html");
    vicreg_tests::browser::check_page(&page, 3 * 5 + 3, 0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("class=\"row\"").count(), 6, "3 + 3 queries");
    assert!(
        html.contains("hit correct"),
        "8 images: some right answer is in a top 5"
    );
    let stem = root.join("emb");
    let s = run(bin()
        .arg("embed")
        .arg("--exp-dir")
        .arg(&exp)
        .arg("--out")
        .arg(&stem));
    assert!(
        s.contains("emb-captions.npy") && s.contains("emb-map.svg"),
        "{s}"
    );
    let (x, labels, _) = vicreg_core::insight::read_export(&root.join("emb-captions")).unwrap();
    assert_eq!((x.dims2().unwrap().0, labels.len()), (40, 40));
    vicreg_tests::numpy::check_npy_loads(&root.join("emb-images.npy"), 8, x.dims2().unwrap().1);

    // The random-init baseline of the same architecture.
    let s = run(bin()
        .args(["eval", "--random-init"])
        .arg("--exp-dir")
        .arg(&exp));
    assert!(s.contains("(random init)"), "{s}");
    std::fs::remove_dir_all(&root).ok();
}

/// Builds a COCO tree from the training split of `src` whose test split
/// (val2017) holds those images and captions once, and whose training split
/// holds `copies` copies of each (distinct files and ids, same pixels and
/// captions): the index then covers exactly the pretraining images, and an
/// epoch has `copies` times more steps (fewer epoch-end checkpoints).
/// Returns `(file name, first caption)` of every indexed image.
fn indexed_set(src: &Path, dst: &Path, copies: usize) -> Vec<(String, String)> {
    let ann: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("annotations/captions_train2017.json")).unwrap(),
    )
    .unwrap();
    let images = ann["images"].as_array().unwrap();
    let anns = ann["annotations"].as_array().unwrap();
    std::fs::create_dir_all(dst.join("annotations")).unwrap();
    std::fs::create_dir_all(dst.join("val2017")).unwrap();
    std::fs::create_dir_all(dst.join("train2017")).unwrap();
    for im in images {
        let f = im["file_name"].as_str().unwrap();
        std::fs::copy(src.join("train2017").join(f), dst.join("val2017").join(f)).unwrap();
    }
    let test = serde_json::json!({"images": images, "annotations": anns});
    std::fs::write(
        dst.join("annotations/captions_val2017.json"),
        test.to_string(),
    )
    .unwrap();
    let (mut train_images, mut train_anns) = (Vec::new(), Vec::new());
    for r in 0..copies as u64 {
        for im in images {
            let f = format!("copy{r}-{}", im["file_name"].as_str().unwrap());
            std::fs::copy(
                src.join("train2017")
                    .join(im["file_name"].as_str().unwrap()),
                dst.join("train2017").join(&f),
            )
            .unwrap();
            let mut im = im.clone();
            im["id"] = (im["id"].as_u64().unwrap() + 100_000 * r).into();
            im["file_name"] = f.into();
            train_images.push(im);
        }
        for a in anns {
            let mut a = a.clone();
            a["id"] = (a["id"].as_u64().unwrap() + 100_000 * r).into();
            a["image_id"] = (a["image_id"].as_u64().unwrap() + 100_000 * r).into();
            train_anns.push(a);
        }
    }
    let train = serde_json::json!({"images": train_images, "annotations": train_anns});
    std::fs::write(
        dst.join("annotations/captions_train2017.json"),
        train.to_string(),
    )
    .unwrap();
    images
        .iter()
        .map(|im| {
            let id = im["id"].as_u64().unwrap();
            let cap = anns
                .iter()
                .find(|a| a["image_id"].as_u64() == Some(id))
                .unwrap()["caption"]
                .as_str()
                .unwrap();
            (
                im["file_name"].as_str().unwrap().to_string(),
                cap.to_string(),
            )
        })
        .collect()
}

/// After a short pretraining on 16 captioned images, `retrieve --text` ranks a
/// caption's own image first (out of the 16 indexed images; chance 1/16) for
/// most captions. The image encoder is kept at its seeded random init
/// (`--freeze-image`: its expander, the text encoder and the text expander
/// train), which keeps the test to about 20 CPU-seconds; end-to-end image
/// training is exercised by the other tests and the demo.
#[test]
fn retrieve_ranks_a_captions_own_image_first() {
    let root = tmp("neighbours");
    let gen = root.join("gen");
    generate_synth_coco(
        &gen,
        &SynthCaptionsConfig {
            train_images: 16,
            val_images: 2,
            image_size: 32,
            ..SynthCaptionsConfig::default()
        },
    )
    .unwrap();
    let data = root.join("data");
    let pairs = indexed_set(&gen, &data, 8);
    let exp = root.join("run");
    // 128 training pairs / 16 = 8 steps per epoch, 160 steps.
    let mut c = pretrain_batch(&data, &exp, 20, 16);
    c.args([
        "--optimizer",
        "adamw",
        "--base-lr",
        "0.03",
        "--mlp-image",
        "256-256",
        "--mlp-text",
        "256-256",
        "--freeze-image",
    ]);
    run(&mut c);
    // Every caption of the index (80): text->image R@1 is the share whose own image ranks first.
    run(bin().arg("eval").arg("--exp-dir").arg(&exp));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("retrieval_eval.json")).unwrap())
            .unwrap();
    assert_eq!(v["test_captions"], 80);
    let t2i_r1 = v["full"]["t2i_r1"].as_f64().unwrap();
    assert!(
        t2i_r1 > 50.0,
        "only {t2i_r1}% of the 80 captions rank their own image first"
    );
    // The same through `retrieve`, on the first caption of each image.
    let mut first = 0;
    for (file, caption) in &pairs {
        let s = run(bin()
            .args(["retrieve", "--k", "3", "--text", caption])
            .arg("--exp-dir")
            .arg(&exp));
        let hits: Vec<&str> = s.lines().skip(1).collect();
        assert_eq!(hits.len(), 3, "{s}");
        first += hits[0].contains(file.as_str()) as usize;
    }
    let n = pairs.len();
    assert!(
        first * 2 > n,
        "only {first} of {n} captions rank their own image first"
    );
    std::fs::remove_dir_all(&root).ok();
}

/// `--loss barlow-twins|simclr` train with that loss (recorded in config.toml,
/// its terms in metrics.jsonl); byol / simsiam are refused with a reason.
#[test]
fn other_losses_train_and_byol_is_refused() {
    let root = tmp("losses");
    let data = root.join("data");
    tiny_data(&data);
    for (loss, term) in [("barlow-twins", "off_diag"), ("simclr", "nt_xent")] {
        let exp = root.join(loss);
        run(pretrain_cmd(&data, &exp, 1).args(["--loss", loss]));
        let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("loss = \"{loss}\"")), "{cfg}");
        let m = std::fs::read_to_string(exp.join("metrics.jsonl")).unwrap();
        assert!(m.contains(term), "{loss}: no {term} in metrics.jsonl");
        run(bin().arg("eval").arg("--exp-dir").arg(&exp));
    }
    for loss in ["byol", "simsiam"] {
        let err = fails(pretrain_cmd(&data, &root.join(loss), 1).args(["--loss", loss]));
        assert!(
            err.contains(loss)
                && err.contains("non-shared")
                && err.contains("vicreg, barlow-twins or simclr"),
            "{err}"
        );
    }
    let err = fails(pretrain_cmd(&data, &root.join("x"), 1).args(["--loss", "mocov3"]));
    assert!(err.contains("mocov3"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

/// A tiny BERT checkpoint directory (config.json, tokenizer.json, model.safetensors).
fn tiny_bert(dir: &Path, captions: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let tok = train_wordpiece(captions.iter(), &WordPieceTrainConfig::tiny()).unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    let cfg = BertConfig {
        max_position_embeddings: 32,
        ..BertConfig::tiny().with_vocab_size(tok.vocab_size())
    };
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let store = ParamStore::new(7);
    TextTransformer::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    store
        .save_safetensors(&dir.join("model.safetensors"))
        .unwrap();
}

#[test]
fn frozen_pretrained_text_encoder_keeps_its_weights() {
    let root = tmp("frozen");
    let data = root.join("data");
    tiny_data(&data);
    let ann: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("annotations/captions_train2017.json")).unwrap(),
    )
    .unwrap();
    let caps: Vec<&str> = ann["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["caption"].as_str().unwrap())
        .collect();
    let bert = root.join("bert");
    tiny_bert(&bert, &caps);
    let frozen = |exp: &Path, epochs: usize| {
        let mut c = pretrain_cmd(&data, exp, epochs);
        c.arg("--text-encoder")
            .arg(format!("pretrained:{}", bert.display()))
            .arg("--freeze-text");
        vicreg_tests::app::run_text(&mut c).1
    };
    // Fewer captions drawn in the run (24 images x 1 epoch) than there are
    // distinct captions: encoded each step; with 6 epochs (144 draws) the
    // table is built once.
    let err = frozen(&root.join("six"), 6);
    assert!(err.contains("distinct captions computed once"), "{err}");
    let exp = root.join("run");
    let err = frozen(&exp, 1);
    assert!(err.contains("encoding each step"), "{err}");
    let orig = vicreg_core::io::load_safetensors(&bert.join("model.safetensors")).unwrap();
    let after = vicreg_core::io::load_safetensors(&exp.join("text-encoder.safetensors")).unwrap();
    assert_eq!(orig.len(), after.len());
    for (name, t) in &orig {
        let d = (t - &after[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "frozen tensor {name} changed");
    }
    // The text expander sits on the checkpoint's 16-d representation.
    let model = vicreg_core::io::load_safetensors(&exp.join("model.safetensors")).unwrap();
    assert_eq!(model["text.projector.0.weight"].dims(), &[64, 16]);
    // The run's tokenizer is the checkpoint's.
    let a = encoders::text::TextTokenizer::from_file(&exp.join("tokenizer.json")).unwrap();
    let b = encoders::text::TextTokenizer::from_file(&bert.join("tokenizer.json")).unwrap();
    assert_eq!(
        a.encode("a red circle", None).unwrap(),
        b.encode("a red circle", None).unwrap()
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_laptop_preset_is_a_starting_point_under_config_and_flags() {
    let root = tmp("preset");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    // A config file that sets one key keeps the preset's other keys.
    let cfg = root.join("partial.toml");
    std::fs::write(&cfg, "batch-size = 8\n").unwrap();
    run(bin()
        .args([
            "pretrain", "--preset", "laptop", "--epochs", "1", "--mlp", "32-32",
        ])
        .args([
            "--image-size",
            "24",
            "--num-workers",
            "1",
            "--quiet",
            "--config",
        ])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .arg("--exp-dir")
        .arg(&exp));
    assert_config_lines(
        &exp,
        &[
            "image-arch = \"resnet18\"",
            "optimizer = \"adamw\"",
            "image-size = 24",
            "batch-size = 8",
            "epochs = 1",
            "mlp = \"32-32\"",
            "text-hidden = 128",
            "text-layers = 2",
        ],
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn clear_errors_for_bad_input() {
    let root = tmp("errors");
    let exp = root.join("r");
    let err = fails(
        bin()
            .args(["pretrain", "--data-dir", "/nonexistent/coco", "--exp-dir"])
            .arg(&exp),
    );
    assert!(
        err.contains("/nonexistent/coco") && err.contains("does not exist"),
        "{err}"
    );

    // No annotations file.
    let empty = root.join("empty");
    std::fs::create_dir_all(empty.join("train2017")).unwrap();
    let err = fails(
        bin()
            .arg("pretrain")
            .arg("--data-dir")
            .arg(&empty)
            .arg("--exp-dir")
            .arg(&exp),
    );
    assert!(
        err.contains("captions_train2017.json") && err.contains("missing"),
        "{err}"
    );

    let data = root.join("data");
    tiny_data(&data);
    // A missing Karpathy split file.
    let err = fails(pretrain_cmd(&data, &exp, 1).args(["--karpathy-split", "no_such_split.json"]));
    assert!(err.contains("no_such_split.json"), "{err}");
    // Unknown text encoder / architecture.
    let err = fails(pretrain_cmd(&data, &exp, 1).args(["--text-encoder", "lstm"]));
    assert!(err.contains("lstm") && err.contains("pretrained:"), "{err}");
    let err = fails(
        bin()
            .args(["pretrain", "--image-arch", "resnet19"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(&exp),
    );
    assert!(err.contains("resnet19"), "{err}");
    let err = fails(
        pretrain_cmd(&data, &exp, 1).args(["--text-encoder", "pretrained:/nonexistent/minilm"]),
    );
    assert!(err.contains("/nonexistent/minilm"), "{err}");

    // A caption pointing at a missing image.
    let ann = data.join("annotations").join("captions_train2017.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ann).unwrap()).unwrap();
    let first = v["images"][0]["file_name"].as_str().unwrap().to_string();
    std::fs::remove_file(data.join("train2017").join(&first)).unwrap();
    let err = fails(&mut pretrain_cmd(&data, &exp, 1));
    assert!(
        err.contains(&first) && err.contains("missing") && err.contains("captions_train2017.json"),
        "{err}"
    );

    // Malformed JSON: the file is named, with the line and column.
    std::fs::write(&ann, "{\"images\": [ {\"id\": 1,, } ]}").unwrap();
    let err = fails(&mut pretrain_cmd(&data, &exp, 1));
    assert!(
        err.contains("captions_train2017.json")
            && err.contains("malformed JSON")
            && err.contains("line 1"),
        "{err}"
    );

    // eval / retrieve on a directory that is not a run.
    let err = fails(bin().arg("eval").arg("--exp-dir").arg(&root));
    assert!(err.contains("config.toml"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn unreadable_training_images_are_named_every_epoch_and_listed_in_skipped_txt() {
    let root = tmp("skips");
    let data = root.join("data");
    tiny_data(&data);
    let mut imgs: Vec<PathBuf> = std::fs::read_dir(data.join("train2017"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    imgs.sort();
    let victim = imgs[0].clone();
    std::fs::write(&victim, b"not an image at all").unwrap();
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    let exp = root.join("run");
    let out = pretrain_cmd(&data, &exp, 2).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked at"), "{err}");
    for epoch in 0..2 {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("epoch {epoch}: skipped ")))
            .unwrap_or_else(|| panic!("no skip line for epoch {epoch}:\n{err}"));
        assert!(line.contains(&name), "{name} not named: {line}");
    }
    assert!(err.contains("unreadable images in total"), "{err}");
    let list = std::fs::read_to_string(exp.join("skipped.txt")).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(&name), "{list}");
}

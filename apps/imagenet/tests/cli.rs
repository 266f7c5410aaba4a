//! The `imagenet` binary end to end on a tiny generated ImageFolder:
//! pretrain -> linear-eval -> knn-eval -> embed, resume, and clear errors.

use std::path::Path;
use std::process::Output;

use datasets::synth_images::{generate_image_folder, SynthImageConfig};
use vicreg_tests::app::{assert_config_lines, fails, run, run_within};

vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-cli");

fn tiny_data(root: &Path) {
    let cfg = SynthImageConfig {
        train_per_class: 3,
        val_per_class: 2,
        num_classes: 4,
        image_size: 32,
        ..SynthImageConfig::default()
    };
    generate_image_folder(root, &cfg).unwrap();
}

fn pretrain(data: &Path, exp: &Path, epochs: usize) -> Output {
    run(bin()
        .args([
            "pretrain",
            "--arch",
            "resnet18",
            "--mlp",
            "32-32",
            "--batch-size",
            "4",
            "--image-size",
            "32",
            "--quiet",
            "--num-workers",
            "1",
            "--warmup-epochs",
            "0",
        ])
        .arg("--epochs")
        .arg(epochs.to_string())
        .arg("--data-dir")
        .arg(data)
        .arg("--exp-dir")
        .arg(exp))
}

#[test]
fn pretrain_then_evaluate_then_embed() {
    let root = tmp("seq");
    let data = root.join("data");
    tiny_data(&data);
    let exp = root.join("run");
    pretrain(&data, &exp, 1);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "resnet18-encoder.safetensors",
    ] {
        assert!(exp.join(f).is_file(), "missing {f}");
    }
    // The written config repeats the run: every key resolved.
    let cfg = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(
        cfg.contains("base-lr = 0.8") && cfg.contains("image-size = 32"),
        "{cfg}"
    );
    // Resuming a finished run with one more epoch continues from the checkpoint.
    let out = pretrain(&data, &exp, 2);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("done: 6 steps"), "{s}");

    let out = run(bin()
        .args([
            "linear-eval",
            "--epochs",
            "3",
            "--lr-head",
            "0.1",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&exp));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("linear eval (resnet18") && s.contains("top-1"),
        "{s}"
    );
    assert!(exp.join("linear_eval.json").is_file());
    // A small set gets the baselines by default, in one table and in baselines.json.
    for row in [
        "| pretrained resnet18, linear |",
        "| random init, linear |",
        "| raw pixels (32 px), 20-NN |",
        "| chance | 25.00% | 100.00% |",
    ] {
        assert!(s.contains(row), "missing {row:?}:\n{s}");
    }
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("baselines.json")).unwrap())
            .unwrap();
    assert_eq!(b["pixel_side"], 32, "{b}");
    assert!(b["random_init_linear"][0].as_f64().is_some(), "{b}");
    let out = run(bin()
        .args([
            "linear-eval",
            "--epochs",
            "2",
            "--train-percent",
            "50",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&exp));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("8 train / 8 val"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Semi-supervised protocol: backbone + head fine-tuned, one record per epoch.
    let out = run(bin()
        .args([
            "linear-eval",
            "--weights",
            "finetune",
            "--epochs",
            "2",
            "--train-percent",
            "50",
            "--lr-backbone",
            "0.01",
            "--lr-head",
            "0.1",
            "--batch-size",
            "4",
            "--num-workers",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(&exp));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("fine-tuned eval (resnet18, 50% labels, 2 epochs)"));
    let log = std::fs::read_to_string(exp.join("finetune_eval.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    assert!(log.contains("\"top5\""));

    let out = run(bin()
        .args([
            "knn-eval",
            "--k",
            "1,3",
            "--num-workers",
            "1",
            "--gallery",
            "2",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--pretrained")
        .arg(exp.join("resnet18-encoder.safetensors")));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("1-NN top-1") && s.contains("3-NN top-1"), "{s}");
    // The gallery (2 val images, 5 neighbours each) and the map of the val set.
    vicreg_tests::browser::check_page(&exp.join("knn_gallery.html"), 2 + 2 * 5, 0);
    assert!(exp.join("val-map.svg").is_file() && exp.join("val-std.svg").is_file());
    assert!(
        s.contains("| random init, 3-NN |") && s.contains("| raw pixels (32 px), 200-NN |"),
        "{s}"
    );

    let emb = root.join("emb.safetensors");
    run(bin()
        .args(["embed", "--image-size", "32", "--num-workers", "1"])
        .arg("--images")
        .arg(data.join("val"))
        .arg("--pretrained")
        .arg(&exp)
        .arg("--out")
        .arg(&emb));
    let t = vicreg_core::io::load_safetensors(&emb).unwrap();
    assert_eq!(t["embeddings"].dims(), &[8, 512]);
    let files = std::fs::read_to_string(root.join("emb.safetensors.files.txt")).unwrap();
    assert_eq!(files.lines().count(), 8);
    // The same rows as NumPy's .npy, with names and class folders in the CSV,
    // and the map of the classes.
    let (npy, rows, cols) = vicreg_core::insight::read_npy(&root.join("emb.npy")).unwrap();
    assert_eq!((rows, cols), (8, 512));
    let st: Vec<f32> = t["embeddings"].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(npy, st);
    let (_, labels, classes) = vicreg_core::insight::read_export(&root.join("emb")).unwrap();
    assert_eq!(labels.len(), 8);
    assert!(classes.len() >= 2, "{classes:?}");
    for f in ["emb-map.svg", "emb-std.svg", "emb-correlation.svg"] {
        let svg = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{f}");
    }
    vicreg_tests::numpy::check_npy_loads(&root.join("emb.npy"), 8, 512);

    // Weights of another architecture: a clear error listing the mismatch.
    let err = fails(
        bin()
            .args(["knn-eval", "--arch", "resnet34"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--pretrained")
            .arg(exp.join("resnet18-encoder.safetensors")),
    );
    assert!(
        err.contains("resnet18-encoder.safetensors") && err.contains("missing"),
        "{err}"
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
    std::fs::write(&cfg, "batch-size = 4\n").unwrap();
    run(bin()
        .args([
            "pretrain", "--preset", "laptop", "--epochs", "1", "--mlp", "32-32",
        ])
        .args(["--num-workers", "1", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .arg("--exp-dir")
        .arg(&exp));
    assert_config_lines(
        &exp,
        &[
            "arch = \"resnet18\"",
            "optimizer = \"adamw\"",
            "image-size = 32",
            "batch-size = 4",
            "epochs = 1",
            "mlp = \"32-32\"",
            "warmup-epochs = 1",
        ],
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn clear_errors_for_bad_input() {
    let root = tmp("errors");
    let err = fails(
        bin()
            .args(["pretrain", "--data-dir", "/nonexistent/data", "--exp-dir"])
            .arg(root.join("r")),
    );
    assert!(
        err.contains("/nonexistent/data") && err.contains("does not exist"),
        "{err}"
    );
    let data = root.join("data");
    tiny_data(&data);
    let err = fails(
        bin()
            .args(["pretrain", "--arch", "resnet19"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("r")),
    );
    assert!(
        err.contains("resnet19") && err.contains("resnet50"),
        "{err}"
    );
    let err = fails(
        bin()
            .args(["pretrain", "--mlp", "64-x"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--exp-dir")
            .arg(root.join("r")),
    );
    assert!(err.contains("64-x"), "{err}");
    // An empty class folder is reported by name.
    std::fs::create_dir_all(data.join("train").join("zz_empty")).unwrap();
    let out = bin()
        .args([
            "knn-eval",
            "--arch",
            "resnet18",
            "--num-workers",
            "1",
            "--image-size",
            "32",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zz_empty"), "{err}");
    let bad_cfg = root.join("bad.toml");
    std::fs::write(&bad_cfg, "epochs = 'many'\n").unwrap();
    let err = fails(bin().arg("pretrain").arg("--config").arg(&bad_cfg));
    assert!(err.contains("bad.toml"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn demo_prints_vicreg_random_and_supervised_rows() {
    let root = tmp("demo");
    let exp = root.join("run");
    let out = run(bin()
        .env("VICREG_CACHE", root.join("cache"))
        .args([
            "demo",
            "--train-per-class",
            "2",
            "--val-per-class",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--mlp",
            "32-32",
            "--image-size",
            "16",
            "--num-workers",
            "1",
            "--supervised",
            "--exp-dir",
        ])
        .arg(&exp));
    let s = String::from_utf8_lossy(&out.stdout);
    for row in [
        "| VICReg |",
        "| random init |",
        "| supervised (reference) |",
    ] {
        assert!(s.contains(row), "no {row} row in:\n{s}");
    }
    assert!(s.contains("pretraining: 4 steps"), "{s}");
    assert!(root
        .join("cache/synth-images/train/09_waves/00001.png")
        .is_file());
    assert!(exp.join("resnet18-encoder.safetensors").is_file());
    assert!(exp.join("supervised/finetune_eval.jsonl").is_file());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn make_data_writes_the_builtin_set_once() {
    let root = tmp("make-data");
    let out_dir = root.join("synth");
    let args = [
        "make-data",
        "--train-per-class",
        "2",
        "--val-per-class",
        "1",
        "--image-size",
        "16",
        "--out",
    ];
    let out = run(bin().args(args).arg(&out_dir));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("written (30 images)"), "{s}");
    let img = image::open(out_dir.join("val/05_star/00000.png")).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    let out = run(bin().args(args).arg(&out_dir));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("already complete"), "{s}");
    std::fs::remove_dir_all(root).unwrap();
}

#[cfg(unix)]
#[test]
fn embed_walk_survives_symlink_loops_and_lists_linked_files_once() {
    use std::os::unix::fs::symlink;
    let root = tmp("embed-links");
    let images = root.join("images");
    std::fs::create_dir_all(images.join("a")).unwrap();
    std::fs::create_dir_all(images.join("b")).unwrap();
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 7]));
    img.save(images.join("a/one.png")).unwrap();
    img.save(images.join("b/two.png")).unwrap();
    // A loop back to the root, and one file reachable through two more links.
    symlink("..", images.join("a/loop")).unwrap();
    symlink("../a/one.png", images.join("b/link-to-one.png")).unwrap();
    symlink("a/one.png", images.join("also-one.png")).unwrap();
    let out = root.join("emb.safetensors");
    let o = run_within(
        bin()
            .args([
                "embed",
                "--arch",
                "resnet18",
                "--image-size",
                "32",
                "--num-workers",
                "1",
            ])
            .arg("--images")
            .arg(&images)
            .arg("--out")
            .arg(&out),
        300,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "embed failed:\n{err}");
    assert!(err.contains("loop"), "the loop is not reported:\n{err}");
    let list = std::fs::read_to_string(root.join("emb.safetensors.files.txt")).unwrap();
    let files: Vec<&str> = list.lines().collect();
    assert_eq!(
        files,
        vec![
            images.join("a/one.png").to_str().unwrap(),
            images.join("b/two.png").to_str().unwrap()
        ],
        "each real file once, sorted, under its own path"
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("wrote 2 x 512 embeddings"), "{s}");
}

#[test]
fn pretrain_reports_every_epochs_skips_and_lists_them_in_the_run_dir() {
    let root = tmp("skips");
    let data = root.join("data");
    tiny_data(&data);
    let class = std::fs::read_dir(data.join("train"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    // Four bad files: 16 training files fill four batches of 4 (none dropped).
    for i in 0..4 {
        std::fs::write(
            class.join(format!("zz-not-an-image-{i}.png")),
            b"text, not a PNG",
        )
        .unwrap();
    }
    let exp = root.join("run");
    let out = pretrain(&data, &exp, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    for epoch in 0..2 {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("epoch {epoch}: skipped ")))
            .unwrap_or_else(|| panic!("no skip line for epoch {epoch}:\n{err}"));
        assert!(line.contains(" files (first: "), "{line}");
        assert!(line.contains("zz-not-an-image-"), "{line}");
        assert!(line.contains("skipped.txt"), "{line}");
    }
    assert!(err.contains("unreadable images in total"), "{err}");
    let list = std::fs::read_to_string(exp.join("skipped.txt")).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    for i in 0..4 {
        let name = format!("zz-not-an-image-{i}.png");
        assert_eq!(
            lines.iter().filter(|l| l.contains(&name)).count(),
            1,
            "{name} listed once over both epochs:\n{list}"
        );
    }
    assert_eq!(lines.len(), 4, "{list}");
}

//! metrics.jsonl fields, config.toml, encoder export, plots, gradient clipping.

mod engine_support;

use engine_support::*;
use serde_json::Value;
use vicreg_core::engine::{plot_run, read_metrics, OnlineProbeConfig, TrainConfig};
use vicreg_core::optim::{LrSchedule, OptimizerKind};

#[test]
fn a_run_writes_every_metric_the_config_the_encoders_and_plots() {
    let dir = fresh_dir("metrics");
    let (model, store) = tiny_model(2);
    let cfg = TrainConfig {
        epochs: 2,
        warmup_epochs: 1,
        rank_every: 2,
        plot: true,
        online_probe: Some(OnlineProbeConfig {
            num_classes: CLASSES,
            ..Default::default()
        }),
        ..TrainConfig::smoke()
    };
    let mut t = trainer(&model, &store, &cfg, &dir)
        .with_encoder_export("a", "a.encoder.")
        .with_encoder_export("b", "b.encoder.");
    let summary = t
        .fit_with_eval(&mut source(4), &mut |epoch| {
            Ok(vec![("knn_top1".to_string(), 10.0 * epoch as f64)])
        })
        .unwrap();
    assert_eq!(summary.global_step, 8);

    // config.toml is the resolved configuration and reads back.
    let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let back: TrainConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);

    let records = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<&Value> = records.iter().filter(|r| r["type"] == "step").collect();
    let epochs: Vec<&Value> = records.iter().filter(|r| r["type"] == "epoch").collect();
    assert_eq!(steps.len(), 8);
    assert_eq!(epochs.len(), 2);
    let schedule = LrSchedule::official(cfg.base_lr, cfg.batch_size, 2, 4, 1);
    for (i, r) in steps.iter().enumerate() {
        let step = i as u64 + 1;
        assert_eq!(r["step"].as_u64(), Some(step));
        assert_eq!(r["epoch"].as_u64(), Some(i as u64 / 4));
        assert_eq!(r["batch_in_epoch"].as_u64(), Some(i as u64 % 4 + 1));
        assert!((r["lr"].as_f64().unwrap() - schedule.lr_at(step - 1)).abs() < 1e-12);
        for term in [
            "invariance",
            "variance_a",
            "variance_b",
            "covariance_a",
            "covariance_b",
            "total",
        ] {
            assert!(
                r["loss"][term].as_f64().unwrap().is_finite(),
                "{term} in {r}"
            );
        }
        for key in [
            "std_mean_a",
            "std_min_a",
            "std_mean_b",
            "std_min_b",
            "corr_a",
            "corr_b",
            "grad_norm",
            "pairs_per_s",
            "elapsed_s",
            "online_probe_acc",
        ] {
            assert!(r[key].as_f64().unwrap().is_finite(), "{key} in {r}");
        }
        let wait = r["data_wait_frac"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&wait), "data_wait_frac {wait}");
        let s = r["std_mean_a"].as_f64().unwrap();
        assert!(r["std_min_a"].as_f64().unwrap() <= s && s > 0.0);
        let corr = r["corr_a"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&corr));
        assert!((0.0..=100.0).contains(&r["online_probe_acc"].as_f64().unwrap()));
        // Effective rank every 2 steps only, between 1 and min(batch, dim).
        match r.get("effective_rank_a") {
            Some(v) => {
                assert_eq!(step % 2, 0);
                let er = v.as_f64().unwrap();
                assert!((1.0..=16.0).contains(&er), "{er}");
                assert!(r["effective_rank_b"].as_f64().is_some());
            }
            None => assert_eq!(step % 2, 1),
        }
    }
    assert!(steps[7]["elapsed_s"].as_f64() >= steps[0]["elapsed_s"].as_f64());
    for (e, r) in epochs.iter().enumerate() {
        assert_eq!(r["epoch"].as_u64(), Some(e as u64));
        assert_eq!(r["step"].as_u64(), Some(4 * (e as u64 + 1)));
        assert_eq!(r["eval"]["knn_top1"].as_f64(), Some(10.0 * e as f64));
        assert!(r["online_probe_acc"].as_f64().is_some());
        assert!(r["pairs_per_s"].as_f64().unwrap() > 0.0);
        // The epoch's mean total is the mean of its step records.
        let mean: f64 = steps[4 * e..4 * e + 4]
            .iter()
            .map(|s| s["loss"]["total"].as_f64().unwrap())
            .sum::<f64>()
            / 4.0;
        assert!((r["loss"]["total"].as_f64().unwrap() - mean).abs() < 1e-9);
    }

    // Encoder files hold the encoder alone, without the branch prefix.
    for branch in ["a", "b"] {
        let t =
            vicreg_core::io::load_safetensors(&dir.join(format!("{branch}-encoder.safetensors")))
                .unwrap();
        let mut names: Vec<&String> = t.keys().collect();
        names.sort();
        assert_eq!(names, ["bias", "weight"]);
        let w = store.tensors()[&format!("{branch}.encoder.weight")].clone();
        assert_eq!(bits(&t["weight"]), bits(&w));
    }

    // Plots: written at the end and again by plot_run.
    for name in [
        "plot_loss.svg",
        "plot_lr.svg",
        "plot_std.svg",
        "plot_corr.svg",
        "plot_rank.svg",
        "plot_eval.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{name}"
        );
    }
    std::fs::remove_file(dir.join("plot_loss.svg")).unwrap();
    let written = plot_run(&dir).unwrap();
    assert_eq!(written.len(), 6);
    let svg = std::fs::read_to_string(dir.join("plot_loss.svg")).unwrap();
    for term in ["invariance", "covariance_b", "total"] {
        assert!(svg.contains(term), "legend lacks {term}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gradient_clipping_bounds_the_first_update() {
    let dir = fresh_dir("clip");
    let (model, store) = tiny_model(4);
    let clip = 1e-3;
    let cfg = TrainConfig {
        epochs: 1,
        optimizer: OptimizerKind::Sgd,
        weight_decay: 0.0,
        clip_grad: Some(clip),
        ..TrainConfig::smoke()
    };
    let before = store.tensors();
    let mut t = trainer(&model, &store, &cfg, &dir);
    t.fit(&mut source(1)).unwrap();
    let after = store.tensors();
    let mut sq = 0.0;
    for (name, _) in store.trainable_vars() {
        let d = (&after[&name] - &before[&name]).unwrap();
        sq += d
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
    }
    let lr = cfg.base_lr * cfg.batch_size as f64 / 256.0;
    let records = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    let norm = records[0]["grad_norm"].as_f64().unwrap();
    assert!(
        norm > clip,
        "the raw gradient norm {norm} should exceed the clip"
    );
    // SGD's first step: p -= lr * g_clipped, with ||g_clipped|| = clip.
    let expected = lr * clip * norm / (norm + 1e-6);
    assert!(
        (sq.sqrt() - expected).abs() < 1e-3 * expected,
        "{} vs {expected}",
        sq.sqrt()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fresh_mode_starts_over() {
    let dir = fresh_dir("fresh");
    let (model, store) = tiny_model(4);
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::smoke()
    };
    trainer(&model, &store, &cfg, &dir)
        .fit(&mut source(2))
        .unwrap();
    let auto = trainer(&model, &store, &cfg, &dir)
        .fit(&mut source(2))
        .unwrap();
    assert_eq!(auto.resumed_from, Some(2));
    let fresh_cfg = TrainConfig {
        resume: vicreg_core::engine::ResumeMode::Fresh,
        ..cfg
    };
    let s = trainer(&model, &store, &fresh_cfg, &dir)
        .fit(&mut source(2))
        .unwrap();
    assert_eq!(s.resumed_from, None);
    assert_eq!(s.global_step, 2);
    let records = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(records.iter().filter(|r| r["type"] == "step").count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn online_probe_learns_while_pretraining() {
    let dir = fresh_dir("online-probe");
    let (model, store) = tiny_model(6);
    let cfg = TrainConfig {
        epochs: 4,
        online_probe: Some(OnlineProbeConfig {
            num_classes: CLASSES,
            lr: 0.1,
            weight_decay: 0.0,
        }),
        ..TrainConfig::smoke()
    };
    trainer(&model, &store, &cfg, &dir)
        .fit(&mut source(6))
        .unwrap();
    let acc: Vec<f64> = read_metrics(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "epoch")
        .map(|r| r["online_probe_acc"].as_f64().unwrap())
        .collect();
    assert_eq!(acc.len(), 4);
    // Chance is 33%; the classes are well separated in the input.
    assert!(acc[3] > 70.0, "{acc:?}");
    assert!(acc[3] > acc[0], "{acc:?}");
    // The probe's weights are in the checkpoint, under probe/.
    let ckpt = vicreg_core::engine::load_checkpoint(&dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ckpt.section("probe/")["weight"].dims(), &[CLASSES, 8]);
    assert!(ckpt
        .section("probe_optim/")
        .contains_key("weight.momentum_buffer"));
    let _ = std::fs::remove_dir_all(&dir);
}

//! Loading a BERT checkpoint from a local directory: round trip of a tiny
//! model, the optional `bert.` prefix, TF-style `gamma`/`beta` names, known
//! heads that are skipped, loading under a prefix next to other modules, and a
//! clear error (naming the file) for every way the files can be wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use encoders::text::{
    load_bert_weights, train_wordpiece, BertConfig, PretrainedFiles, TextBatch, TextTransformer,
    WordPieceTrainConfig,
};
use vicreg_core::io::save_safetensors_atomic;
use vicreg_core::model::Encoder;
use vicreg_core::ParamStore;

struct Fixture {
    dir: PathBuf,
    tensors: HashMap<String, Tensor>,
    reference: Tensor,
    batch: TextBatch,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes config.json, tokenizer.json and model.safetensors of a tiny model into a fresh directory.
fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("vicreg-bert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = [
        "a dog runs on the beach",
        "a cat sleeps on the sofa",
        "two dogs play in the park",
    ];
    let tok = train_wordpiece(corpus.iter(), &WordPieceTrainConfig::tiny()).unwrap();
    tok.save(&dir.join("tokenizer.json")).unwrap();
    let cfg = BertConfig::tiny().with_vocab_size(tok.vocab_size());
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let store = ParamStore::new(77);
    let model = TextTransformer::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let tensors = store.tensors();
    save_safetensors_atomic(&tensors, &dir.join("model.safetensors")).unwrap();
    let batch = tok
        .encode_batch(&["a dog on the sofa", "cats play"], 16, false, &Device::Cpu)
        .unwrap();
    let reference = model.forward_t(&batch, false).unwrap();
    Fixture {
        dir,
        tensors,
        reference,
        batch,
    }
}

fn load_repr(dir: &Path) -> encoders::Result<Tensor> {
    let files = PretrainedFiles::from_dir(dir)?;
    let store = ParamStore::new(0);
    let (model, _tok) =
        TextTransformer::from_pretrained(&files, &store, "", DType::F32, &Device::Cpu)?;
    let f = fixture_batch(dir);
    model.forward_t(&f, false).map_err(encoders::Error::from)
}

fn fixture_batch(dir: &Path) -> TextBatch {
    let tok = encoders::text::TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    tok.encode_batch(&["a dog on the sofa", "cats play"], 16, false, &Device::Cpu)
        .unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn rewrite(f: &Fixture, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let mut t = f.tensors.clone();
    edit(&mut t);
    save_safetensors_atomic(&t, &f.dir.join("model.safetensors")).unwrap();
}

#[test]
fn round_trip_and_name_variants() {
    let f = fixture("roundtrip");
    assert_eq!(max_abs(&load_repr(&f.dir).unwrap(), &f.reference), 0.0);
    assert_eq!(
        fixture_batch(&f.dir).ids.to_vec2::<u32>().unwrap(),
        f.batch.ids.to_vec2::<u32>().unwrap()
    );

    // `bert.` prefix, TF-style layer-norm names, and heads we do not use.
    rewrite(&f, |t| {
        let old = std::mem::take(t);
        for (k, v) in old {
            let k = k
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            t.insert(format!("bert.{k}"), v);
        }
        t.insert(
            "bert.pooler.dense.weight".into(),
            Tensor::zeros((16, 16), DType::F32, &Device::Cpu).unwrap(),
        );
        t.insert(
            "cls.predictions.bias".into(),
            Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert_eq!(max_abs(&load_repr(&f.dir).unwrap(), &f.reference), 0.0);
    let store = ParamStore::new(0);
    let cfg = BertConfig::from_json_file(&f.dir.join("config.json")).unwrap();
    TextTransformer::new(&cfg, store.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let report = load_bert_weights(&store, "", &f.dir.join("model.safetensors")).unwrap();
    assert_eq!(report.loaded, 37);
    assert_eq!(
        report.ignored,
        vec![
            "bert.pooler.dense.weight".to_string(),
            "cls.predictions.bias".to_string()
        ]
    );
}

#[test]
fn loads_under_a_prefix_next_to_other_modules() {
    let f = fixture("prefix");
    let files = PretrainedFiles::from_dir(&f.dir).unwrap();
    let store = ParamStore::new(0);
    // Another module in the same store must not disturb loading.
    let _other = vicreg_core::model::linear_torch_init(
        3,
        4,
        true,
        store
            .var_builder(DType::F32, &Device::Cpu)
            .pp("a.projector"),
    )
    .unwrap();
    let (model, _) =
        TextTransformer::from_pretrained(&files, &store, "a.encoder", DType::F32, &Device::Cpu)
            .unwrap();
    assert!(store
        .named_vars()
        .iter()
        .any(|(n, _)| n == "a.encoder.encoder.layer.1.output.dense.weight"));
    assert_eq!(
        max_abs(&model.forward_t(&f.batch, false).unwrap(), &f.reference),
        0.0
    );
}

fn expect_err(dir: &Path, needles: &[&str]) {
    let err = load_repr(dir).expect_err("loading should fail").to_string();
    for n in needles {
        assert!(err.contains(n), "error {err:?} should mention {n:?}");
    }
}

#[test]
fn missing_files_are_named() {
    let f = fixture("missing");
    std::fs::remove_file(f.dir.join("model.safetensors")).unwrap();
    expect_err(&f.dir, &["model.safetensors", "missing"]);
    expect_err(&f.dir.join("nope"), &["nope", "not found"]);
}

#[test]
fn wrong_shapes_unknown_and_missing_tensors_are_reported() {
    let f = fixture("tensors");
    rewrite(&f, |t| {
        t.insert(
            "encoder.layer.0.attention.self.query.weight".into(),
            Tensor::zeros((16, 8), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    expect_err(
        &f.dir,
        &[
            "model.safetensors",
            "wrong shape",
            "encoder.layer.0.attention.self.query.weight",
            "[16, 8]",
        ],
    );

    rewrite(&f, |t| {
        t.insert(
            "encoder.layer.7.extra.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    expect_err(
        &f.dir,
        &[
            "model.safetensors",
            "unknown 1 tensors",
            "encoder.layer.7.extra.weight",
        ],
    );

    rewrite(&f, |t| {
        t.remove("embeddings.LayerNorm.bias");
    });
    expect_err(
        &f.dir,
        &[
            "model.safetensors",
            "missing 1 tensors",
            "embeddings.LayerNorm.bias",
        ],
    );
}

#[test]
fn corrupt_files_are_reported() {
    let f = fixture("corrupt");
    let w = f.dir.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    expect_err(&f.dir, &["model.safetensors", "not a valid safetensors"]);

    std::fs::write(&w, &bytes).unwrap();
    std::fs::write(f.dir.join("config.json"), "{\"hidden_size\": 16}").unwrap();
    expect_err(&f.dir, &["config.json", "not a usable BERT config.json"]);

    std::fs::write(
        f.dir.join("config.json"),
        serde_json::to_string(&BertConfig {
            num_attention_heads: 3,
            ..BertConfig::tiny()
        })
        .unwrap(),
    )
    .unwrap();
    expect_err(&f.dir, &["config.json", "not a multiple"]);

    std::fs::write(
        f.dir.join("config.json"),
        serde_json::to_string(&BertConfig::tiny()).unwrap(),
    )
    .unwrap();
    std::fs::write(f.dir.join("tokenizer.json"), "garbage").unwrap();
    expect_err(&f.dir, &["tokenizer.json", "not a usable tokenizer.json"]);
}

#[test]
fn default_cache_dir_follows_hf_precedence() {
    // The only test in this binary that touches these variables.
    use encoders::text::default_hf_cache_dir;
    let keys = ["HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"];
    let saved: Vec<_> = keys.iter().map(std::env::var_os).collect();
    for k in keys {
        std::env::remove_var(k);
    }
    assert_eq!(default_hf_cache_dir(), None);
    std::env::set_var("HOME", "/home/u");
    assert_eq!(
        default_hf_cache_dir(),
        Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
    );
    std::env::set_var("XDG_CACHE_HOME", "/xdg");
    assert_eq!(
        default_hf_cache_dir(),
        Some(PathBuf::from("/xdg/huggingface/hub"))
    );
    std::env::set_var("HF_HOME", "/hf");
    assert_eq!(default_hf_cache_dir(), Some(PathBuf::from("/hf/hub")));
    std::env::set_var("HF_HUB_CACHE", "/cache");
    assert_eq!(default_hf_cache_dir(), Some(PathBuf::from("/cache")));
    for (k, v) in keys.iter().zip(saved) {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
}

#[test]
fn save_pretrained_round_trips_a_model_trained_under_a_prefix() {
    let f = fixture("save-src");
    let files = PretrainedFiles::from_dir(&f.dir).unwrap();
    let store = ParamStore::new(0);
    let _other = vicreg_core::model::linear_torch_init(
        3,
        4,
        true,
        store
            .var_builder(DType::F32, &Device::Cpu)
            .pp("a.projector"),
    )
    .unwrap();
    let (model, tok) =
        TextTransformer::from_pretrained(&files, &store, "a.encoder", DType::F32, &Device::Cpu)
            .unwrap();
    let out_dir = f.dir.join("saved");
    model
        .save_pretrained(&out_dir, &store, "a.encoder", &tok)
        .unwrap();
    let saved = vicreg_core::io::load_safetensors(&out_dir.join("model.safetensors")).unwrap();
    assert_eq!(saved.len(), 37, "only the BERT body, without prefix");
    assert!(saved.contains_key("encoder.layer.0.attention.self.query.weight"));
    assert_eq!(max_abs(&load_repr(&out_dir).unwrap(), &f.reference), 0.0);
    assert!(model
        .save_pretrained(&out_dir, &store, "b.encoder", &tok)
        .is_err());
}

//! The BERT-style transformer as a trainable encoder: every parameter gets a
//! gradient, the mask works, dropout is real and seeded, bad input is an
//! error, configs read HF files, and it trains inside a VICReg JointEmbedding.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use encoders::text::{BertConfig, NormPosition, TextBatch, TextPooling, TextTransformer};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
use vicreg_core::{ParamStore, SeededRng};

fn dev() -> Device {
    Device::Cpu
}

/// `n` rows of random ids in `5..vocab` with lengths in `3..=max_len` (right padded).
fn random_batch(n: usize, max_len: usize, vocab: u32, seed: u64) -> TextBatch {
    let mut rng = SeededRng::new(seed);
    let rows: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            let len = 3 + rng.below(max_len - 2);
            (0..len)
                .map(|_| 5 + rng.below(vocab as usize - 5) as u32)
                .collect()
        })
        .collect();
    TextBatch::from_rows(&rows, 0, &dev()).unwrap()
}

fn build(cfg: &BertConfig, store: &ParamStore, prefix: &str) -> TextTransformer {
    TextTransformer::new(cfg, store.var_builder(DType::F32, &dev()).pp(prefix)).unwrap()
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

fn every_parameter_gets_a_gradient(cfg: &BertConfig) {
    let store = ParamStore::new(1);
    let model = build(cfg, &store, "enc");
    let mut batch = random_batch(4, 10, cfg.vocab_size as u32, 2);
    let (b, s) = batch.ids.dims2().unwrap();
    batch.type_ids = Some(
        Tensor::from_vec((0..b * s).map(|i| (i % 2) as u32).collect(), (b, s), &dev()).unwrap(),
    );
    let out = model.forward_t(&batch, true).unwrap();
    assert_eq!(out.dims(), &[4, cfg.hidden_size]);
    let w = Tensor::randn(0f32, 1.0, out.shape(), &dev()).unwrap();
    let grads = (out * w).unwrap().sum_all().unwrap().backward().unwrap();
    let vars = store.named_vars();
    let extra = usize::from(cfg.norm_position == NormPosition::Pre) * 2;
    assert_eq!(vars.len(), 5 + 16 * cfg.num_hidden_layers + extra);
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: gradient norm {norm}"
        );
    }
}

#[test]
fn every_parameter_of_a_post_ln_model_gets_a_gradient() {
    every_parameter_gets_a_gradient(&BertConfig {
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        ..BertConfig::tiny()
    });
}

#[test]
fn every_parameter_of_a_pre_ln_cls_model_gets_a_gradient() {
    every_parameter_gets_a_gradient(&BertConfig {
        norm_position: NormPosition::Pre,
        pooling: TextPooling::Cls,
        ..BertConfig::tiny()
    });
}

#[test]
fn padding_does_not_change_the_representation() {
    let cfg = BertConfig::tiny();
    let store = ParamStore::new(3);
    let model = build(&cfg, &store, "");
    let rows = vec![vec![2u32, 10, 11, 12, 3], vec![2, 20, 3]];
    let both = model
        .forward_t(&TextBatch::from_rows(&rows, 0, &dev()).unwrap(), false)
        .unwrap();
    let alone = model
        .forward_t(&TextBatch::from_rows(&rows[1..], 0, &dev()).unwrap(), false)
        .unwrap();
    let d = max_abs(&both.narrow(0, 1, 1).unwrap(), &alone);
    assert!(d < 1e-6, "padded vs unpadded: {d}");
    // The padding id itself does not matter either.
    let other_pad = model
        .forward_t(&TextBatch::from_rows(&rows, 7, &dev()).unwrap(), false)
        .unwrap();
    assert!(max_abs(&both, &other_pad) < 1e-6);
}

#[test]
fn dropout_is_real_seeded_and_train_only() {
    let cfg = BertConfig {
        hidden_dropout_prob: 0.2,
        attention_probs_dropout_prob: 0.2,
        ..BertConfig::tiny()
    };
    let batch = random_batch(3, 8, cfg.vocab_size as u32, 4);
    let store = ParamStore::new(5);
    let model = build(&cfg, &store, "m");
    let eval1 = model.forward_t(&batch, false).unwrap();
    let eval2 = model.forward_t(&batch, false).unwrap();
    assert_eq!(max_abs(&eval1, &eval2), 0.0, "eval is deterministic");
    let train1 = model.forward_t(&batch, true).unwrap();
    let train2 = model.forward_t(&batch, true).unwrap();
    assert!(
        max_abs(&train1, &eval1) > 1e-3,
        "dropout active in train mode"
    );
    assert!(max_abs(&train1, &train2) > 1e-3, "fresh masks per call");
    // Same seed, same prefix -> the same masks.
    let twin = build(&cfg, &ParamStore::new(5), "m");
    assert_eq!(
        max_abs(&twin.forward_t(&batch, true).unwrap(), &train1),
        0.0
    );
    // Reseeding restarts the stream.
    model.reseed_dropout(cfg.dropout_seed, "m");
    assert_eq!(
        max_abs(&model.forward_t(&batch, true).unwrap(), &train1),
        0.0
    );
    // Without dropout, train == eval.
    let nodrop = build(&BertConfig::tiny(), &ParamStore::new(5), "m");
    assert_eq!(
        max_abs(
            &nodrop.forward_t(&batch, true).unwrap(),
            &nodrop.forward_t(&batch, false).unwrap()
        ),
        0.0
    );
}

#[test]
fn bad_input_is_an_error() {
    let cfg = BertConfig::tiny();
    let model = build(&cfg, &ParamStore::new(0), "");
    let too_big = TextBatch::from_rows(&[vec![2, 64, 3]], 0, &dev()).unwrap();
    let err = model.forward_t(&too_big, false).unwrap_err().to_string();
    assert!(
        err.contains("token id 64") && err.contains("64 ids"),
        "{err}"
    );
    let too_long = TextBatch::from_rows(&[vec![5; 17]], 0, &dev()).unwrap();
    let err = model.forward_t(&too_long, false).unwrap_err().to_string();
    assert!(err.contains("sequence length 17"), "{err}");
    let ids = Tensor::zeros((2, 4), DType::U32, &dev()).unwrap();
    let mask = Tensor::ones((2, 5), DType::U32, &dev()).unwrap();
    assert!(TextBatch::new(ids.clone(), mask).is_err());
    let float_ids = Tensor::zeros((2, 4), DType::F32, &dev()).unwrap();
    assert!(TextBatch::new(float_ids, ids.clone()).is_err());
    let bad_types = TextBatch {
        ids: ids.clone(),
        mask: ids.ones_like().unwrap(),
        type_ids: Some((ids.ones_like().unwrap() * 2.0).unwrap()),
    };
    assert!(model
        .forward_t(&bad_types, false)
        .unwrap_err()
        .to_string()
        .contains("token type 2"));
}

#[test]
fn configs_read_hf_json_and_validate() {
    let hf = r#"{
      "_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
      "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
      "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
      "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
      "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
      "position_embedding_type": "absolute", "transformers_version": "4.8.2", "type_vocab_size": 2,
      "use_cache": true, "vocab_size": 30522 }"#;
    let cfg: BertConfig = serde_json::from_str(hf).unwrap();
    assert_eq!(cfg, BertConfig::minilm_l6());
    assert_eq!(cfg.head_dim(), 32);
    let back: BertConfig =
        serde_json::from_str(&serde_json::to_string(&BertConfig::small()).unwrap()).unwrap();
    assert_eq!(back, BertConfig::small());
    for c in [
        BertConfig::default(),
        BertConfig::small(),
        BertConfig::tiny(),
        BertConfig::minilm_l6(),
    ] {
        c.validate().unwrap();
    }
    let bad = BertConfig {
        num_attention_heads: 5,
        ..BertConfig::tiny()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not a multiple"));
    assert!(
        TextTransformer::new(&bad, ParamStore::new(0).var_builder(DType::F32, &dev())).is_err()
    );
    let silu = hf.replace("\"gelu\"", "\"silu\"");
    assert!(serde_json::from_str::<BertConfig>(&silu).is_err());
}

/// Replaces ~20% of the real tokens by random ids: a second "view" of a sentence.
fn corrupt(batch: &TextBatch, vocab: u32, seed: u64) -> TextBatch {
    let mut rng = SeededRng::new(seed);
    let ids: Vec<Vec<u32>> = batch.ids.to_vec2().unwrap();
    let mask: Vec<Vec<u32>> = batch.mask.to_vec2().unwrap();
    let rows: Vec<Vec<u32>> = ids
        .iter()
        .zip(&mask)
        .map(|(r, m)| {
            r.iter()
                .zip(m)
                .filter(|(_, m)| **m == 1)
                .map(|(id, _)| {
                    if rng.bernoulli(0.2) {
                        5 + rng.below(vocab as usize - 5) as u32
                    } else {
                        *id
                    }
                })
                .collect()
        })
        .collect();
    TextBatch::from_rows(&rows, 0, &dev()).unwrap()
}

#[test]
fn trains_in_a_joint_embedding_with_decreasing_loss() {
    let cfg = BertConfig {
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.0,
        norm_position: NormPosition::Pre,
        ..BertConfig::tiny()
    };
    let store = ParamStore::new(11);
    let vb = store.var_builder(DType::F32, &dev());
    let encoder = TextTransformer::new(&cfg, vb.pp("encoder")).unwrap();
    let branch = Branch::new(
        encoder,
        &ExpanderConfig::with_mlp("32-32"),
        vb.pp("projector"),
    )
    .unwrap();
    let model = JointEmbedding::siamese(branch);
    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut opt = AdamW::new(
        vec![ParamGroup::new(store.trainable_vars())],
        AdamWConfig::default(),
    )
    .unwrap();

    let xa = random_batch(16, 12, cfg.vocab_size as u32, 21);
    let xb = corrupt(&xa, cfg.vocab_size as u32, 22);
    let mut losses = vec![];
    for _ in 0..12 {
        let out = model.forward_t(&xa, &xb, true).unwrap();
        let l = loss.compute(&out.a.emb, &out.b.emb, &single).unwrap();
        losses.push(l.total.to_scalar::<f32>().unwrap());
        let grads = l.total.backward().unwrap();
        opt.step(&grads, 3e-3).unwrap();
    }
    println!("VICReg loss per step: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    let first = losses[0];
    let last_mean = losses[9..].iter().sum::<f32>() / 3.0;
    assert!(last_mean < 0.9 * first, "loss did not decrease: {losses:?}");
}

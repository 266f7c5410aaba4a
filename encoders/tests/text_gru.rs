//! The VSE++-style GRU text encoder: shapes, mask semantics, agreement with a
//! scalar reference GRU, gradients to every parameter, training in a
//! JointEmbedding next to the transformer (the COCO image-text setting shape).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use encoders::text::{
    BertConfig, GruConfig, GruPooling, GruTextEncoder, TextBatch, TextTransformer,
};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
use vicreg_core::{ParamStore, SeededRng};

fn tiny(pooling: GruPooling) -> GruConfig {
    GruConfig {
        vocab_size: 30,
        embed_dim: 6,
        hidden_size: 8,
        pooling,
    }
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

#[test]
fn matches_a_scalar_reference_gru() {
    let cfg = tiny(GruPooling::Last);
    let store = ParamStore::new(4);
    let enc = GruTextEncoder::new(&cfg, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let get = |n: &str| -> Vec<f64> {
        store
            .named_vars()
            .into_iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (emb, w_ih, w_hh, b_ih, b_hh) = (
        get("embed.weight"),
        get("rnn.weight_ih_l0"),
        get("rnn.weight_hh_l0"),
        get("rnn.bias_ih_l0"),
        get("rnn.bias_hh_l0"),
    );
    let (e, h) = (cfg.embed_dim, cfg.hidden_size);
    let ids = [3u32, 17, 5, 29];
    // PyTorch nn.GRU equations, written out per element.
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let mut state = vec![0f64; h];
    for &id in &ids {
        let x = &emb[id as usize * e..(id as usize + 1) * e];
        let dot = |w: &[f64], row: usize, v: &[f64]| -> f64 {
            (0..v.len()).map(|k| w[row * v.len() + k] * v[k]).sum()
        };
        let mut next = vec![0f64; h];
        for j in 0..h {
            let r = sig(dot(&w_ih, j, x) + b_ih[j] + dot(&w_hh, j, &state) + b_hh[j]);
            let z =
                sig(dot(&w_ih, h + j, x) + b_ih[h + j] + dot(&w_hh, h + j, &state) + b_hh[h + j]);
            let n = (dot(&w_ih, 2 * h + j, x)
                + b_ih[2 * h + j]
                + r * (dot(&w_hh, 2 * h + j, &state) + b_hh[2 * h + j]))
                .tanh();
            next[j] = (1.0 - z) * n + z * state[j];
        }
        state = next;
    }
    let batch = TextBatch::from_rows(&[ids.to_vec()], 0, &Device::Cpu).unwrap();
    let got: Vec<f64> = enc
        .forward_t(&batch, false)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    for (g, w) in got.iter().zip(&state) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {state:?}");
    }
}

#[test]
fn last_state_and_mean_respect_the_mask() {
    for pooling in [GruPooling::Last, GruPooling::Mean] {
        let cfg = tiny(pooling);
        let enc = GruTextEncoder::new(
            &cfg,
            ParamStore::new(1).var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert_eq!(enc.repr_dim(), 8);
        let rows = vec![vec![1u32, 2, 3, 4, 5, 6], vec![7, 8, 9]];
        let both = enc
            .forward_t(&TextBatch::from_rows(&rows, 0, &Device::Cpu).unwrap(), true)
            .unwrap();
        assert_eq!(both.dims(), &[2, 8]);
        let alone = enc
            .forward_t(
                &TextBatch::from_rows(&rows[1..], 0, &Device::Cpu).unwrap(),
                true,
            )
            .unwrap();
        assert!(
            max_abs(&both.narrow(0, 1, 1).unwrap(), &alone) < 1e-6,
            "{pooling:?}"
        );
    }
    // Last and mean differ.
    let a = GruTextEncoder::new(
        &tiny(GruPooling::Last),
        ParamStore::new(1).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let m = GruTextEncoder::new(
        &tiny(GruPooling::Mean),
        ParamStore::new(1).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let b = TextBatch::from_rows(&[vec![1, 2, 3]], 0, &Device::Cpu).unwrap();
    assert!(
        max_abs(
            &a.forward_t(&b, false).unwrap(),
            &m.forward_t(&b, false).unwrap()
        ) > 1e-4
    );
    // Bad ids are an error.
    let bad = TextBatch::from_rows(&[vec![1, 30]], 0, &Device::Cpu).unwrap();
    assert!(a
        .forward_t(&bad, false)
        .unwrap_err()
        .to_string()
        .contains("token id 30"));
    assert!(GruTextEncoder::new(
        &GruConfig {
            hidden_size: 0,
            ..tiny(GruPooling::Last)
        },
        ParamStore::new(0).var_builder(DType::F32, &Device::Cpu)
    )
    .is_err());
}

#[test]
fn every_gru_parameter_gets_a_gradient() {
    let store = ParamStore::new(2);
    let enc = GruTextEncoder::new(
        &tiny(GruPooling::Last),
        store.var_builder(DType::F32, &Device::Cpu).pp("txt"),
    )
    .unwrap();
    let batch = TextBatch::from_rows(&[vec![1, 2, 3, 4], vec![5, 6]], 0, &Device::Cpu).unwrap();
    let out = enc.forward_t(&batch, true).unwrap();
    let grads = out.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let vars = store.named_vars();
    assert_eq!(vars.len(), 5);
    for (name, var) in vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0,
            "{name}"
        );
    }
}

#[test]
fn gru_and_transformer_train_together() {
    // Two different text encoders as the two branches (non-shared weights).
    let store = ParamStore::new(9);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let gru = GruTextEncoder::new(&tiny(GruPooling::Last).clone(), vb.pp("a.encoder")).unwrap();
    let tcfg = BertConfig {
        vocab_size: 30,
        ..BertConfig::tiny()
    };
    let trf = TextTransformer::new(&tcfg, vb.pp("b.encoder")).unwrap();
    let exp = ExpanderConfig::with_mlp("32-32");
    let model = JointEmbedding::new(
        Branch::new(gru, &exp, vb.pp("a.projector")).unwrap(),
        Branch::new(trf, &exp, vb.pp("b.projector")).unwrap(),
    );
    let mut rng = SeededRng::new(3);
    let rows: Vec<Vec<u32>> = (0..16)
        .map(|_| {
            (0..3 + rng.below(6))
                .map(|_| 1 + rng.below(29) as u32)
                .collect()
        })
        .collect();
    let batch = TextBatch::from_rows(&rows, 0, &Device::Cpu).unwrap();
    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let mut opt = AdamW::new(
        vec![ParamGroup::new(store.trainable_vars())],
        AdamWConfig::default(),
    )
    .unwrap();
    let mut losses = vec![];
    for _ in 0..10 {
        let out = model.forward_t(&batch, &batch, true).unwrap();
        let l = loss.compute(&out.a.emb, &out.b.emb, &single).unwrap();
        losses.push(l.total.to_scalar::<f32>().unwrap());
        opt.step(&l.total.backward().unwrap(), 3e-3).unwrap();
    }
    println!("losses: {losses:?}");
    assert!(losses[9] < 0.9 * losses[0], "{losses:?}");
}

//! NaN/Inf guard and corrupt checkpoints: clear errors, never a panic, and the
//! last good checkpoint stays loadable.

mod engine_support;

use std::sync::Arc;

use candle_core::Tensor;
use engine_support::*;
use vicreg_core::collective::Collective;
use vicreg_core::engine::{load_checkpoint, FnSource, PairBatch, ResumeMode, TrainConfig, Trainer};
use vicreg_core::loss::{JointLoss, LossOutput};
use vicreg_core::{Error, ParamStore};

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        checkpoint_every_steps: 2,
        ..TrainConfig::smoke()
    }
}

#[test]
fn nan_in_a_batch_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = fresh_dir("nan-batch");
    let (model, store) = tiny_model(1);
    let cfg = cfg();
    // 5 steps per epoch, checkpoints at steps 2, 4, 5 (epoch end), 6 and 8;
    // batch 3 of epoch 1 (step 9) carries a NaN in branch A's input.
    let mut src = FnSource::new(
        5,
        |e: usize, i: usize| -> vicreg_core::Result<PairBatch<Tensor, Tensor>> {
            let mut b = make_batch(e, i)?;
            if e == 1 && i == 3 {
                let mut v = b.a.flatten_all()?.to_vec1::<f32>()?;
                v[7] = f32::NAN;
                b.a = Tensor::from_vec(v, b.a.dims(), b.a.device())?;
            }
            Ok(b)
        },
    );
    let mut t = trainer(&model, &store, &cfg, &dir);
    let err = t.fit(&mut src).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::NonFinite(_)), "{msg}");
    assert!(msg.contains("step 9 (epoch 1, batch 3)"), "{msg}");
    // The NaN either reaches the embeddings (the loss names the branch) or is
    // zeroed by a ReLU and shows up in the first layer's weight gradient.
    assert!(
        msg.contains("branch A") || msg.contains("parameter a.encoder.weight"),
        "{msg}"
    );
    assert!(msg.contains("last good checkpoint (step 8)"), "{msg}");

    let ckpt = load_checkpoint(&dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ckpt.meta.global_step, 8);
    assert_eq!((ckpt.meta.epoch, ckpt.meta.batch_in_epoch), (1, 3));
    for (name, t) in ckpt.section("model/") {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name} not finite in the checkpoint"
        );
    }
    // It loads into a fresh model.
    let (_m2, store2) = tiny_model(99);
    store2
        .load_tensors(
            &ckpt.section("model/"),
            false,
            &dir.join("checkpoint.safetensors"),
        )
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loss whose value is finite but whose gradient is not:
/// `sum(sqrt(za - detach(za)))` has value 0 and an infinite gradient.
struct NanGradLoss;

impl JointLoss for NanGradLoss {
    fn name(&self) -> &'static str {
        "nan-grad"
    }
    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        _c: &Arc<dyn Collective>,
    ) -> vicreg_core::Result<LossOutput> {
        let bad = za.sub(&za.detach())?.sqrt()?.sum_all()?;
        let inv = za.sub(zb)?.sqr()?.mean_all()?;
        Ok(LossOutput {
            total: (&inv + &bad)?,
            terms: vec![("invariance".into(), inv), ("sqrt_zero".into(), bad)],
        })
    }
}

#[test]
fn nan_gradient_names_the_parameter() {
    let dir = fresh_dir("nan-grad");
    let (model, store) = tiny_model(1);
    let cfg = cfg();
    let mut t = Trainer::new(
        &model,
        &store,
        Box::new(NanGradLoss),
        single(),
        cfg.clone(),
        &dir,
        &cfg,
    )
    .unwrap();
    let msg = t.fit(&mut source(3)).unwrap_err().to_string();
    assert!(msg.contains("step 1 (epoch 0, batch 0)"), "{msg}");
    assert!(msg.contains("gradient of parameter a."), "{msg}");
    assert!(msg.contains("before any checkpoint"), "{msg}");
    assert!(!dir.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn trained_dir(name: &str) -> std::path::PathBuf {
    let dir = fresh_dir(name);
    let (model, store) = tiny_model(1);
    let cfg = TrainConfig { epochs: 1, ..cfg() };
    trainer(&model, &store, &cfg, &dir)
        .fit(&mut source(3))
        .unwrap();
    dir
}

fn resume_err(dir: &std::path::Path) -> String {
    let (model, store): (_, ParamStore) = tiny_model(1);
    let cfg = TrainConfig { epochs: 2, ..cfg() };
    let mut t = trainer(&model, &store, &cfg, dir);
    let err = t.fit(&mut source(3)).unwrap_err();
    assert!(
        matches!(err, Error::BadFile { .. } | Error::Io { .. }),
        "{err}"
    );
    err.to_string()
}

#[test]
fn corrupt_checkpoints_give_clear_errors() {
    let dir = trained_dir("corrupt");
    let path = dir.join("checkpoint.safetensors");
    let good = std::fs::read(&path).unwrap();
    assert!(load_checkpoint(&path).is_ok());

    // A flipped byte in the tensor data.
    let mut bytes = good.clone();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let msg = load_checkpoint(&path).unwrap_err().to_string();
    assert!(
        msg.contains("checkpoint.safetensors") && msg.contains("corrupt"),
        "{msg}"
    );
    let msg = resume_err(&dir);
    assert!(msg.contains("corrupt"), "{msg}");

    // Truncated.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let msg = resume_err(&dir);
    assert!(msg.contains("checkpoint.safetensors"), "{msg}");

    // Garbage.
    std::fs::write(&path, b"not a checkpoint at all").unwrap();
    let msg = resume_err(&dir);
    assert!(
        msg.contains("checkpoint.safetensors") && msg.contains("not a valid checkpoint"),
        "{msg}"
    );

    // An ordinary safetensors file without the training metadata.
    let (_m, store) = tiny_model(1);
    store.save_safetensors(&path).unwrap();
    let msg = resume_err(&dir);
    assert!(msg.contains("not a training checkpoint"), "{msg}");

    // --resume without a checkpoint.
    std::fs::remove_file(&path).unwrap();
    let (model, store) = tiny_model(1);
    let cfg = TrainConfig {
        resume: ResumeMode::Require,
        ..cfg()
    };
    let err = trainer(&model, &store, &cfg, &dir)
        .fit(&mut source(3))
        .unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_of_another_model_is_rejected() {
    let dir = trained_dir("other-model");
    let store = ParamStore::new(0);
    let vb = store.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu);
    let enc = TinyEncoder(candle_nn::linear(IN_DIM + 1, 8, vb.pp("a").pp("encoder")).unwrap());
    let branch = vicreg_core::model::Branch::new(
        enc,
        &vicreg_core::model::ExpanderConfig::with_mlp("16-16"),
        vb.pp("a").pp("projector"),
    )
    .unwrap();
    let _model = vicreg_core::model::JointEmbedding::siamese(branch);
    let ckpt = load_checkpoint(&dir.join("checkpoint.safetensors")).unwrap();
    let err = store
        .load_tensors(
            &ckpt.section("model/"),
            false,
            &dir.join("checkpoint.safetensors"),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wrong shape") || err.contains("unexpected"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loss with a term that turns NaN at the third call.
struct NanTermLoss(std::sync::atomic::AtomicUsize);

impl JointLoss for NanTermLoss {
    fn name(&self) -> &'static str {
        "nan-term"
    }
    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        _c: &Arc<dyn Collective>,
    ) -> vicreg_core::Result<LossOutput> {
        let calls = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inv = za.sub(zb)?.sqr()?.mean_all()?;
        let factor = if calls == 2 { f64::NAN } else { 1.0 };
        let spread = (za.sqr()?.mean_all()? * factor)?;
        Ok(LossOutput {
            total: (&inv + &spread)?,
            terms: vec![("invariance".into(), inv), ("spread".into(), spread)],
        })
    }
}

#[test]
fn nan_loss_term_is_named() {
    let dir = fresh_dir("nan-term");
    let (model, store) = tiny_model(1);
    let cfg = TrainConfig {
        checkpoint_every_steps: 1,
        ..cfg()
    };
    let loss = Box::new(NanTermLoss(Default::default()));
    let mut t = Trainer::new(&model, &store, loss, single(), cfg.clone(), &dir, &cfg).unwrap();
    let msg = t.fit(&mut source(4)).unwrap_err().to_string();
    assert!(
        msg.contains("step 3 (epoch 0, batch 2): loss term spread is NaN"),
        "{msg}"
    );
    assert!(msg.contains("last good checkpoint (step 2)"), "{msg}");
    assert_eq!(
        load_checkpoint(&dir.join("checkpoint.safetensors"))
            .unwrap()
            .meta
            .global_step,
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

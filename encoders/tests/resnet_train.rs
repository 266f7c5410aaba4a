//! A small ResNet trains inside the two-branch VICReg model: every parameter
//! receives a gradient, none reaches the images, and SGD lowers the loss.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use encoders::resnet::{ResNet, ResNetConfig};
use vicreg_core::collective::{Collective, SingleProcess};
use vicreg_core::loss::{JointLoss, VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
use vicreg_core::{ParamStore, SeededRng};

fn randn(rng: &mut SeededRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn resnet18_trains_in_siamese_vicreg() {
    let dev = Device::Cpu;
    let store = ParamStore::new(11);
    let vb = store.var_builder(DType::F32, &dev);
    let cfg = ResNetConfig::resnet18();
    let encoder = ResNet::new(&cfg, vb.pp("backbone")).unwrap();
    assert_eq!(encoder.repr_dim(), 512);
    // official init: the last BN of every residual branch starts at 0
    assert_eq!(
        encoder
            .tensor("layer3.1.bn2.weight")
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    let branch = Branch::new(
        encoder,
        &ExpanderConfig::with_mlp("64-64"),
        vb.pp("projector"),
    )
    .unwrap();
    let model = JointEmbedding::siamese(branch);
    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    let backbone_vars = store.vars_with_prefix("backbone.");
    assert_eq!(backbone_vars.len(), 100, "resnet18 has 100 tensors");
    let mut opt = Sgd::new(
        vec![ParamGroup::new(store.trainable_vars())],
        SgdConfig::default(),
    )
    .unwrap();

    let mut rng = SeededRng::new(5);
    let xa = randn(&mut rng, &[4, 3, 32, 32]);
    let xb = (&xa + (randn(&mut rng, &[4, 3, 32, 32]) * 0.5).unwrap()).unwrap();

    let mut losses = Vec::new();
    for step in 0..3 {
        let out = model.forward_t(&xa, &xb, true).unwrap();
        assert_eq!(out.a.repr.dims(), &[4, 512]);
        let l = loss.compute(&out.a.emb, &out.b.emb, &single).unwrap();
        let total = l.total.to_scalar::<f32>().unwrap();
        assert!(total.is_finite());
        losses.push(total);
        let grads = l.total.backward().unwrap();
        if step == 0 {
            for (name, var) in &backbone_vars {
                let has = grads.get(var.as_tensor()).is_some();
                assert_eq!(
                    has,
                    !vicreg_core::is_buffer_name(name),
                    "gradient presence wrong for {name}"
                );
            }
            assert!(
                grads.get(&xa).is_none() && grads.get(&xb).is_none(),
                "images must get no gradient"
            );
        }
        opt.step(&grads, 0.02).unwrap();
    }
    println!("losses {losses:?}");
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.95),
        "loss did not decrease: {losses:?}"
    );
}

use candle_core::{DType, Device, Tensor};
use vicreg_core::loss::{VicRegConfig, VicRegLoss};
use vicreg_core::model::{Branch, Encoder, ExpanderConfig, JointEmbedding};
use vicreg_core::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap()
        .to_string()
}
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let dev = Device::Cpu;
    let store = vicreg_core::ParamStore::new(0);
    let vb = store.var_builder(DType::F32, &dev);
    let net = encoders::resnet::ResNet::new(&encoders::ResNetConfig::resnet18(), vb.pp("backbone"))
        .unwrap();
    let br = Branch::new(
        net,
        &ExpanderConfig::with_mlp("1024-1024-1024"),
        vb.pp("projector"),
    )
    .unwrap();
    let m = JointEmbedding::siamese(br);
    let loss = VicRegLoss::new(VicRegConfig::default()).unwrap();
    let mut opt = Sgd::new(
        vec![ParamGroup::new(store.trainable_vars())],
        SgdConfig::default(),
    )
    .unwrap();
    let x = Tensor::randn(0f32, 1.0, (64, 3, 32, 32), &dev).unwrap();
    for i in 0..8 {
        if mode == "fwd" {
            let r = m.branch_a().encoder.forward_t(&x, true).unwrap();
            let g = r.sum_all().unwrap().backward().unwrap();
            drop(g);
        } else {
            let o = m.forward_t(&x, &x, true).unwrap();
            let t = loss.terms(&o.a.emb, &o.b.emb).unwrap();
            let g = t.total.backward().unwrap();
            opt.step(&g, 0.01).unwrap();
        }
        println!("step {i} {}", rss());
    }
}

use candle_core::Device;
use datasets::augment::VicregAugConfig;
use datasets::image::{collate_two_view, FolderOptions, ImageFolder, TwoViewDataset};
use datasets::loader::{Loader, LoaderConfig};
use std::sync::Arc;
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap()
        .to_string()
}
fn main() {
    let f = ImageFolder::open(
        std::path::Path::new("/root/.cache/vicreg-rs/synth-images"),
        "train",
        &FolderOptions::default(),
    )
    .unwrap();
    let ds = TwoViewDataset::new(f, VicregAugConfig::small_images(32)).unwrap();
    let dev = Device::Cpu;
    let l = Loader::new(
        Arc::new(ds),
        LoaderConfig {
            batch_size: 64,
            num_workers: 2,
            ..Default::default()
        },
        move |it| collate_two_view(it, &dev),
    )
    .unwrap();
    for (i, b) in l.iter_epoch(0, 0).enumerate() {
        let _ = b.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        if i % 4 == 0 {
            println!("batch {i} {}", rss());
        }
    }
}

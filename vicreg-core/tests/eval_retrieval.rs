//! Retrieval metrics against a small example computed by hand.

use candle_core::{Device, Tensor};
use vicreg_core::eval::{retrieval_from_scores, retrieval_metrics, retrieval_metrics_folds};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// 4 images with 2 captions each: captions 2i and 2i+1 belong to image i.
///
/// Image -> text, rank of the best ground-truth caption (captions scored strictly higher):
/// - img0: cap0 0.9 is the top score -> rank 0
/// - img1: cap2 0.1 is beaten by 0.9 0.8 0.7 0.6 0.5 0.4 -> rank 6 (cap3 0.05 -> 7)
/// - img2: cap4 0.35 is beaten by 0.4 -> rank 1
/// - img3: cap7 0.6 is the top score -> rank 0
///
/// so R@1 = 2/4 = 50, R@5 = 3/4 = 75, R@10 = 100.
///
/// Text -> image, column by column (ties count in the query's favour):
/// cap0 [.9 .9 .1 0] -> 0; cap1 [.1 .8 .2 0] -> 2; cap2 [.8 .1 .3 0] -> 2;
/// cap3 [.2 .05 .4 0] -> 2; cap4 [.3 .7 .35 0] -> 1; cap5 [0 .6 .05 0] -> 1;
/// cap6 [.1 .5 0 .5] -> 0; cap7 [.1 .4 0 .6] -> 0
///
/// so R@1 = 3/8 = 37.5, R@5 = R@10 = 100 (only 4 images), rsum = 462.5.
#[test]
fn hand_computed_example() {
    let scores = Tensor::new(
        &[
            [0.9f32, 0.1, 0.8, 0.2, 0.3, 0.0, 0.1, 0.1],
            [0.9, 0.8, 0.1, 0.05, 0.7, 0.6, 0.5, 0.4],
            [0.1, 0.2, 0.3, 0.4, 0.35, 0.05, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.6],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let caption_image = [0, 0, 1, 1, 2, 2, 3, 3];
    let m = retrieval_from_scores(&scores, &caption_image).unwrap();
    assert_eq!(m.i2t, [50.0, 75.0, 100.0]);
    assert_eq!(m.t2i, [37.5, 100.0, 100.0]);
    assert!(close(m.rsum, 462.5));
    let named = m.named();
    assert_eq!(named[0], ("i2t_r1".to_string(), 50.0));
    assert_eq!(named[6].0, "rsum");
}

#[test]
fn embeddings_use_cosine_similarity_and_folds_average() {
    // 4 images on orthogonal axes; each caption near its image, scaled arbitrarily.
    let dev = Device::Cpu;
    let img = Tensor::new(
        &[
            [1f32, 0., 0., 0.],
            [0., 1., 0., 0.],
            [0., 0., 1., 0.],
            [0., 0., 0., 1.],
        ],
        &dev,
    )
    .unwrap();
    let caps = Tensor::new(
        &[
            [5f32, 0.1, 0., 0.],
            [0.3, 0., 0., 0.01],
            [0., 2., 0., 0.3],
            [0.9, 1., 0., 0.], // image 1 (its own) beats image 0: 1.0 > 0.9
            [0., 0., 7., 0.],
            [0., 0., 0.2, 0.],
            [0., 0.5, 0., 0.4], // image 1 wins: a miss for image 3
            [0., 0., 0., 3.],
        ],
        &dev,
    )
    .unwrap();
    let map = [0, 0, 1, 1, 2, 2, 3, 3];
    let m = retrieval_metrics(&img, &caps, &map).unwrap();
    // Text -> image: every caption but cap6 finds its image first.
    assert!(close(m.t2i[0], 7.0 / 8.0 * 100.0), "{:?}", m);
    assert_eq!(m.i2t[0], 100.0);
    // Scaling the embeddings changes nothing (cosine).
    let m2 = retrieval_metrics(&(img.clone() * 3.0).unwrap(), &caps, &map).unwrap();
    assert_eq!(m, m2);
    // Folds of 2 images = the mean of the metrics of each half.
    let f = retrieval_metrics_folds(&img, &caps, &map, 2).unwrap();
    let h0 = retrieval_metrics(
        &img.narrow(0, 0, 2).unwrap(),
        &caps.narrow(0, 0, 4).unwrap(),
        &map[..4],
    )
    .unwrap();
    let h1 = retrieval_metrics(
        &img.narrow(0, 2, 2).unwrap(),
        &caps.narrow(0, 4, 4).unwrap(),
        &[0, 0, 1, 1],
    )
    .unwrap();
    for k in 0..3 {
        assert!(close(f.i2t[k], (h0.i2t[k] + h1.i2t[k]) / 2.0));
        assert!(close(f.t2i[k], (h0.t2i[k] + h1.t2i[k]) / 2.0));
    }
    assert!(close(f.rsum, (h0.rsum + h1.rsum) / 2.0));
    // In the second fold (images 2, 3), cap6 has no competitor from image 1: a hit.
    assert_eq!(h1.t2i[0], 100.0);
    // With folds the size of the set, folds = full set.
    assert_eq!(retrieval_metrics_folds(&img, &caps, &map, 4).unwrap(), m);
}

#[test]
fn bad_inputs_are_errors() {
    let dev = Device::Cpu;
    let s = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
    assert!(retrieval_from_scores(&s, &[0, 1])
        .unwrap_err()
        .to_string()
        .contains("3 captions"));
    assert!(retrieval_from_scores(&s, &[0, 0, 5])
        .unwrap_err()
        .to_string()
        .contains("image 5"));
    assert!(retrieval_from_scores(&s, &[0, 0, 0])
        .unwrap_err()
        .to_string()
        .contains("image 1 has no caption"));
    let img = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
    let caps = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(retrieval_metrics_folds(&img, &caps, &[0, 1], 5).is_err());
}

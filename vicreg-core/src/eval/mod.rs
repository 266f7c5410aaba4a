//! Evaluation tools shared by the apps: frozen-feature extraction, the linear
//! probe (with [`ProbeSettings`]) and the [`LinearHead`] an app keeps for
//! classifying, weighted k-NN, cross-modal retrieval metrics, the online probe,
//! the dense (segmentation) probe on feature maps, and baseline rows and chance.
//! Accuracies and recalls are in percent.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vicreg_core::eval::{knn_classify, linear_probe, Features, KnnConfig, LinearProbeConfig};
//!
//! // Two well separated classes in 2-D.
//! let x = Tensor::new(&[[1f32, 0.1], [0.9, -0.1], [-1.0, 0.2], [-0.8, -0.1]], &Device::Cpu)?;
//! let f = Features::new(x, vec![0, 0, 1, 1])?;
//! let probe = linear_probe(&f, &f, 2, &LinearProbeConfig { epochs: 50, lr: 0.5, batch_size: 4, ..Default::default() })?;
//! assert_eq!(probe.top1, 100.0);
//! let knn = knn_classify(&f, &f, 2, &KnnConfig { ks: vec![1], ..Default::default() })?;
//! assert_eq!(knn[0].top1, 100.0);
//! # Ok::<(), vicreg_core::Error>(())
//! ```

mod baselines;
mod dense_probe;
mod features;
mod finetune;
mod head;
mod knn;
mod linear_probe;
mod online_probe;
mod probe_select;
mod probe_settings;
mod retrieval;
mod retrieval_report;

pub use baselines::{centred_knn, chance, mean_std, BaselineRow};
pub use dense_probe::{dense_probe, mean_iou, DenseProbeResult};
pub use features::{extract_features, extract_with, extraction_bar, l2_normalize, Features};
pub use finetune::{finetune, EpochAccuracy, FinetuneConfig, LabelledBatches};
pub use head::{moments, standardize, LinearHead, MAX_HEAD_BYTES};
pub use knn::{knn_classify, KnnConfig, KnnResult};
pub use linear_probe::{
    label_ranks, linear_classifier, linear_probe, LinearProbeConfig, ProbeOptimizer, ProbeResult,
};
pub use online_probe::{OnlineProbe, OnlineProbeConfig, ProbeStep};
pub use probe_select::{
    linear_probe_selected, select_weight_decay, with_min_steps, WdSelection, MIN_PROBE_STEPS,
    VAL_FRAC, WD_GRID,
};
pub use probe_settings::ProbeSettings;
pub use retrieval::{
    retrieval_from_scores, retrieval_metrics, retrieval_metrics_folds, RetrievalMetrics,
};
pub use retrieval_report::{
    retrieval_chance, retrieval_table, write_retrieval_json, RetrievalEvaluation, FOLD_IMAGES,
};

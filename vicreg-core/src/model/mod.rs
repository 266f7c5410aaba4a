//! The two-branch joint-embedding model: [`Encoder`] -> [`Expander`] per
//! [`Branch`], two branches in a [`JointEmbedding`] (shared or not); or one
//! backbone over many crops in a [`MultiCropModel`] (VICRegL).

mod asymmetric;
mod branch;
mod encoder;
mod expander;
mod joint;
mod joint_model;
mod linear;
mod momentum;
mod multicrop;
mod predictor;

pub use asymmetric::AsymmetricModel;
pub use branch::{Branch, BranchOutput};
pub use encoder::Encoder;
pub use expander::{parse_mlp_spec, Expander, ExpanderConfig};
pub use joint::{JointEmbedding, JointOutput};
pub use joint_model::JointModel;
pub use linear::linear_torch_init;
pub use momentum::{EmaOptimizer, EmaTarget, MomentumSchedule, EMA_STEP_STATE};
pub use multicrop::{CropGeometry, DenseEncoder, MultiCropModel, MultiCropViews, MultiViewOutput};
pub use predictor::{Predictor, PredictorConfig};

//! COCO captions: the 2017 annotation files, the Karpathy split, and the image-caption
//! datasets (pretraining pairs and retrieval evaluation).

pub mod captions;
pub mod dataset;
pub mod karpathy;
pub mod layout;
pub mod view;

pub use captions::{Coco2017Split, CocoCaptions, CocoImageEntry};
pub use dataset::{
    collate_image_all_captions, collate_image_tokens, CaptionEncoder, CocoEval, CocoPretrain,
    RawText,
};
pub use karpathy::KarpathySplit;
pub use layout::{open, open_part, Part};
pub use view::{SingleViewConfig, SingleViewTransform};

//! Image sources in their on-disk formats (image folders, IDX files), decoding,
//! and the two `Dataset`s built on them: two-view pretraining and labelled evaluation.

pub mod datasets;
pub mod decode;
pub mod files;
pub mod folder;
pub mod idx;
pub mod splits;

use image::RgbImage;

use crate::Result;

pub use datasets::{
    collate_labelled, collate_multi_crop, collate_two_view, LabelledImageDataset, MultiCropDataset,
    TwoViewDataset,
};
pub use decode::{
    check_image_size, decode_rgb, load_rgb, MAX_ASPECT_RATIO, MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE,
};
pub use folder::{BadSamplePolicy, FolderOptions, ImageFolder, IndexReport};
pub use idx::{parse_idx, IdxDataset, IdxSplit, MAX_IDX_BYTES, MAX_IDX_SIDE};
pub use splits::{
    default_image_size, detect, eval_batches, eval_transform, labelled_subset, onto_train_classes,
    open_split, AnySource, Format, OnTrainClasses, Subset,
};

/// An indexable collection of labelled RGB images (decoded on demand).
pub trait ImageSource: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes (labels are `0..num_classes()`).
    fn num_classes(&self) -> usize;
    /// Label of image `index`.
    fn label(&self, index: usize) -> usize;
    /// Decodes image `index` to 8-bit RGB; errors name the file.
    fn load(&self, index: usize) -> Result<RgbImage>;
    /// A name for image `index` in error messages (its file path); `None`
    /// when the source has no per-image files (e.g. IDX).
    fn name(&self, index: usize) -> Option<String> {
        let _ = index;
        None
    }
}

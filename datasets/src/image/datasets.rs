//! `Dataset`s over an [`ImageSource`]: two augmented views for pretraining, or
//! one transformed view with its label for linear evaluation; and the collate
//! functions that stack items into `(B, C, H, W)` f32 tensors.

use candle_core::{Device, Tensor};
use vicreg_core::SeededRng;

use super::ImageSource;
use vicreg_core::model::{CropGeometry, MultiCropViews};

use crate::augment::{
    ChwImage, MultiCropConfig, MultiCropTransform, TwoViewTransform, VicregAugConfig, ViewTransform,
};
use crate::{Dataset, Error, Result};

/// A transform's error on a file-backed sample names the file (as
/// [`Error::BadFile`], so training may skip and report it like a corrupt file).
fn name_transform_error(name: Option<String>, e: Error) -> Error {
    match (name, e) {
        (_, e @ (Error::BadFile { .. } | Error::Io { .. })) => e,
        (Some(name), e) => Error::bad_file(name, format!("cannot transform the image: {e}")),
        (None, e) => e,
    }
}

/// Pretraining dataset: item = the two augmented views of image `index`.
pub struct TwoViewDataset<S: ImageSource> {
    source: S,
    transform: TwoViewTransform,
}

impl<S: ImageSource> TwoViewDataset<S> {
    /// Wraps `source` with the two-view augmentation `cfg` (validated).
    pub fn new(source: S, cfg: VicregAugConfig) -> Result<Self> {
        Ok(Self {
            source,
            transform: TwoViewTransform::new(cfg)?,
        })
    }

    /// The underlying images.
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl<S: ImageSource> Dataset for TwoViewDataset<S> {
    type Item = (ChwImage, ChwImage);
    fn len(&self) -> usize {
        self.source.len()
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let img = self.source.load(index)?;
        self.transform
            .apply(&img, rng)
            .map_err(|e| name_transform_error(self.source.name(index), e))
    }
    fn sample_name(&self, index: usize) -> Option<String> {
        self.source.name(index)
    }
}

/// Multi-crop pretraining dataset: item = every view of image `index` with
/// its crop geometry (global views first).
pub struct MultiCropDataset<S: ImageSource> {
    source: S,
    transform: MultiCropTransform,
}

impl<S: ImageSource> MultiCropDataset<S> {
    /// Wraps `source` with the views of `crops`, augmented as `base`.
    pub fn new(source: S, base: VicregAugConfig, crops: &MultiCropConfig) -> Result<Self> {
        Ok(Self {
            source,
            transform: MultiCropTransform::new(base, crops)?,
        })
    }

    /// The underlying images.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Number of global views.
    pub fn num_global(&self) -> usize {
        self.transform.num_global()
    }
}

impl<S: ImageSource> Dataset for MultiCropDataset<S> {
    type Item = Vec<(ChwImage, CropGeometry)>;
    fn len(&self) -> usize {
        self.source.len()
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let img = self.source.load(index)?;
        self.transform
            .apply(&img, rng)
            .map_err(|e| name_transform_error(self.source.name(index), e))
    }
    fn sample_name(&self, index: usize) -> Option<String> {
        self.source.name(index)
    }
}

/// Collate for [`MultiCropDataset`]: view `v` of every item stacked into
/// `(B, C, H_v, W_v)`, with the items' crop geometries.
pub fn collate_multi_crop(
    items: Vec<Vec<(ChwImage, CropGeometry)>>,
    num_global: usize,
    dev: &Device,
) -> Result<MultiCropViews> {
    let views = items.first().map_or(0, Vec::len);
    if items.iter().any(|it| it.len() != views) {
        return Err(Error::Config(
            "collate: items have different numbers of views".into(),
        ));
    }
    let mut tensors = Vec::with_capacity(views);
    let mut crops = Vec::with_capacity(views);
    for v in 0..views {
        tensors.push(stack_chw(items.iter().map(|it| &it[v].0), dev)?);
        crops.push(items.iter().map(|it| it[v].1).collect());
    }
    Ok(MultiCropViews {
        views: tensors,
        crops,
        num_global,
    })
}

/// Evaluation dataset: item = (transformed image, label).
pub struct LabelledImageDataset<S: ImageSource> {
    source: S,
    transform: Box<dyn ViewTransform>,
}

impl<S: ImageSource> LabelledImageDataset<S> {
    /// Wraps `source` with `transform` (e.g. [`crate::augment::EvalTransform`] or
    /// [`crate::augment::LinearTrainTransform`]).
    pub fn new(source: S, transform: impl ViewTransform + 'static) -> Self {
        Self {
            source,
            transform: Box::new(transform),
        }
    }

    /// The underlying images.
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl<S: ImageSource> Dataset for LabelledImageDataset<S> {
    type Item = (ChwImage, usize);
    fn len(&self) -> usize {
        self.source.len()
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        let img = self.source.load(index)?;
        let x = self
            .transform
            .apply(&img, rng)
            .map_err(|e| name_transform_error(self.source.name(index), e))?;
        Ok((x, self.source.label(index)))
    }
    fn sample_name(&self, index: usize) -> Option<String> {
        self.source.name(index)
    }
}

/// Stacks equally-shaped images into one `(B, C, H, W)` tensor.
pub fn stack_chw<'a>(
    items: impl ExactSizeIterator<Item = &'a ChwImage>,
    dev: &Device,
) -> Result<Tensor> {
    let b = items.len();
    let mut data = Vec::new();
    let mut shape = None;
    for im in items {
        let s = (im.channels, im.height, im.width);
        match shape {
            None => {
                data.reserve(b * im.data.len());
                shape = Some(s);
            }
            Some(prev) if prev != s => {
                return Err(Error::Config(format!(
                    "collate: image shapes differ in a batch: {prev:?} vs {s:?}"
                )));
            }
            _ => {}
        }
        data.extend_from_slice(&im.data);
    }
    let (c, h, w) = shape.ok_or_else(|| Error::Config("collate: empty batch".into()))?;
    Ok(Tensor::from_vec(data, (b, c, h, w), dev)?)
}

/// Collate for [`TwoViewDataset`]: `(view1 (B, C, H, W), view2 (B, C, H, W))`.
pub fn collate_two_view(
    items: Vec<(ChwImage, ChwImage)>,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let a = stack_chw(items.iter().map(|x| &x.0), dev)?;
    let b = stack_chw(items.iter().map(|x| &x.1), dev)?;
    Ok((a, b))
}

/// Collate for [`LabelledImageDataset`]: `(images (B, C, H, W) f32, labels (B,) u32)`.
pub fn collate_labelled(items: Vec<(ChwImage, usize)>, dev: &Device) -> Result<(Tensor, Tensor)> {
    let x = stack_chw(items.iter().map(|x| &x.0), dev)?;
    let labels: Vec<u32> = items.iter().map(|x| x.1 as u32).collect();
    let n = labels.len();
    Ok((x, Tensor::from_vec(labels, n, dev)?))
}

//! Multi-crop joint embedding (VICRegL, and VICReg with `--multi-crop`): one
//! backbone shared by every view (global crops first, then local crops), a
//! global expander on the pooled features and, for the local criterion, a
//! second expander on every feature-map vector, whose grid cells are placed
//! in the original image by the crops' geometry.

use candle_core::{Device, ModuleT, Tensor};
use candle_nn::VarBuilder;

use super::{BranchOutput, Encoder, Expander, ExpanderConfig, JointModel, JointOutput};
use crate::loss::location_grid;
use crate::{Error, Result};

/// Where one crop came from: its box in the original image's pixels and
/// whether it was flipped horizontally.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropGeometry {
    /// Top edge (pixels of the original image).
    pub top: f32,
    /// Left edge.
    pub left: f32,
    /// Height of the box.
    pub height: f32,
    /// Width of the box.
    pub width: f32,
    /// The crop was mirrored left-right after cropping.
    pub flipped: bool,
}

/// One batch of multi-crop views: `views[v]` is `(batch, C, H_v, W_v)`
/// (views of one size share a forward pass), `crops[v][i]` the geometry of
/// image `i`'s crop in view `v`; the first `num_global` views are global.
#[derive(Clone, Debug)]
pub struct MultiCropViews {
    /// `(batch, C, H_v, W_v)` per view.
    pub views: Vec<Tensor>,
    /// Per view, per image.
    pub crops: Vec<Vec<CropGeometry>>,
    /// Number of global views (at the front).
    pub num_global: usize,
}

/// An encoder that also exposes its last feature map.
pub trait DenseEncoder: Encoder<Input = Tensor> {
    /// `(batch, C, H, W)` images -> the final feature-map vectors `(batch,
    /// rows * cols, dim)` (row-major over the grid), the grid `(rows, cols)`,
    /// and the pooled representation `(batch, repr_dim)` (what
    /// [`Encoder::forward_t`] returns).
    fn forward_maps(&self, x: &Tensor, train: bool) -> Result<(Tensor, (usize, usize), Tensor)>;
}

/// What a multi-crop model produced for the loss, besides the two global
/// views' [`BranchOutput`]s.
#[derive(Clone, Debug)]
pub struct MultiViewOutput {
    /// `(batch, dim)` global embedding of every view.
    pub embeddings: Vec<Tensor>,
    /// `(batch, cells_v, local_dim)` local embeddings of every view (empty
    /// when the model has no local expander).
    pub maps: Vec<Tensor>,
    /// `(batch, cells_v, 2)` location `(y, x)` of every cell in its original
    /// image (empty with `maps`).
    pub locations: Vec<Tensor>,
    /// Number of global views (at the front).
    pub num_global: usize,
}

/// Backbone + global expander (+ local expander) over all views of a
/// [`MultiCropViews`] batch. As a [`JointModel`], its `A` input is the whole
/// batch and `B` is `()`; the [`JointOutput`]'s `a` / `b` are the first two
/// views (for the trainer's diagnostics and online probe) and `views` carries
/// every view for the loss.
pub struct MultiCropModel<E: DenseEncoder> {
    backbone: E,
    projector: Expander,
    maps_projector: Option<Expander>,
    flip_grid: bool,
}

impl<E: DenseEncoder> MultiCropModel<E> {
    /// `projector` under `vb.pp("projector")`; with `maps` a local expander
    /// under `vb.pp("maps_projector")` (official VICRegL names). `flip_grid`:
    /// mirror the location grid of flipped crops (official default: off,
    /// `--no-flip-grid 1`).
    pub fn new(
        backbone: E,
        projector: &ExpanderConfig,
        maps: Option<&ExpanderConfig>,
        flip_grid: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = backbone.repr_dim();
        Ok(Self {
            projector: Expander::new(d, projector, vb.pp("projector"))?,
            maps_projector: maps
                .map(|m| Expander::new(d, m, vb.pp("maps_projector")))
                .transpose()?,
            backbone,
            flip_grid,
        })
    }

    /// The backbone.
    pub fn backbone(&self) -> &E {
        &self.backbone
    }

    /// `(batch, rows * cols, 2)` cell centres of every image's crop.
    fn locations(
        &self,
        crops: &[CropGeometry],
        grid: (usize, usize),
        device: &Device,
    ) -> Result<Tensor> {
        let mut flat = Vec::with_capacity(crops.len() * grid.0 * grid.1 * 2);
        for c in crops {
            let g = location_grid(
                (c.top as f64, c.left as f64, c.height as f64, c.width as f64),
                grid,
                c.flipped && self.flip_grid,
            );
            flat.extend(g.into_iter().flatten());
        }
        Ok(Tensor::from_vec(
            flat,
            (crops.len(), grid.0 * grid.1, 2),
            device,
        )?)
    }

    /// Runs every view.
    pub fn forward_views(&self, batch: &MultiCropViews, train: bool) -> Result<JointOutput> {
        let n = batch.views.len();
        if n < 2 || batch.crops.len() != n || batch.num_global == 0 || batch.num_global > n {
            return Err(Error::invalid(format!(
                "multi-crop batch: {n} views, {} crop lists, {} global views (needs >= 2 views, one crop list each, 1..=views global)",
                batch.crops.len(),
                batch.num_global
            )));
        }
        let mut reprs = Vec::with_capacity(n);
        let mut embeddings = Vec::with_capacity(n);
        let mut maps = Vec::new();
        let mut locations = Vec::new();
        for (x, crops) in batch.views.iter().zip(&batch.crops) {
            let (fmap, grid, pooled) = self.backbone.forward_maps(x, train)?;
            embeddings.push(self.projector.forward_t(&pooled, train)?);
            if let Some(mp) = &self.maps_projector {
                let (b, cells, c) = fmap.dims3()?;
                if crops.len() != b {
                    return Err(Error::invalid(format!(
                        "multi-crop batch: {b} images but {} crop geometries",
                        crops.len()
                    )));
                }
                let e = mp.forward_t(&fmap.reshape((b * cells, c))?, train)?;
                maps.push(e.reshape((b, cells, ()))?);
                locations.push(self.locations(crops, grid, x.device())?);
            }
            reprs.push(pooled);
        }
        Ok(JointOutput {
            a: BranchOutput::new(reprs[0].clone(), embeddings[0].clone()),
            b: BranchOutput::new(reprs[1].clone(), embeddings[1].clone()),
            views: Some(MultiViewOutput {
                embeddings,
                maps,
                locations,
                num_global: batch.num_global,
            }),
        })
    }
}

impl<E: DenseEncoder> JointModel for MultiCropModel<E> {
    type A = MultiCropViews;
    type B = ();

    fn forward_t(&self, a: &MultiCropViews, _b: &(), train: bool) -> Result<JointOutput> {
        self.forward_views(a, train)
    }

    fn repr_dims(&self) -> (usize, usize) {
        let d = self.backbone.repr_dim();
        (d, d)
    }
}

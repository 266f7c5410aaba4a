//! The VICRegL criterion (Bardes, Ponce & LeCun, NeurIPS 2022; official
//! `main_vicregl.py`): a global VICReg loss over multi-crop embeddings plus a
//! local VICReg loss on feature-map vectors matched between views, combined
//! as `alpha * global + (1 - alpha) * local`.
//!
//! Conventions (all the official code's):
//! - views: `num_global` global crops first, then local crops; every term
//!   pairs a global view `i` with every other view `j != i`;
//! - global: invariance averaged over those pairs, variance (not halved) and
//!   covariance averaged over all views, each scaled by its coefficient;
//! - local, for each pair: the `(batch, cells, dim)` feature-map embeddings
//!   are matched twice, by feature-space L2 nearest neighbour (all cells of
//!   each side) and by the crops' geometry (the `num_matches` cells of each
//!   side closest to a cell of the other), each match in both directions,
//!   and every matched pair of `(batch, k, dim)` tensors gets a VICReg loss
//!   whose variance / covariance statistics run over the batch separately for
//!   each match index `k`; the pair's terms are summed, then averaged over
//!   pairs;
//! - matching indices carry no gradient (as `topk` / `sort` in PyTorch);
//!   ties break towards the lower index.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::{invariance, JointLoss, LossOutput};
use crate::collective::{gather_with_grad, Collective, SingleProcess};
use crate::model::JointOutput;
use crate::{Error, Result};

/// Coefficients of the VICRegL criterion; defaults are the official code's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VicRegLConfig {
    /// Weight of the global criterion; the local one gets `1 - alpha`
    /// (official: 0.75 for ResNet-50 / ConvNeXt-S runs, 0.9 also reported).
    pub alpha: f64,
    /// Invariance coefficient (25).
    pub inv_coeff: f64,
    /// Variance coefficient (25).
    pub var_coeff: f64,
    /// Covariance coefficient (1).
    pub cov_coeff: f64,
    /// Location matches kept per direction of a pair: `[from the global view,
    /// from the other view]` (official `--num_matches 20 4`).
    pub num_matches: [usize; 2],
    /// Feature-space matching uses every cell (official `--l2_all_matches 1`);
    /// when false it keeps `num_matches` as the location matching does.
    pub l2_all_matches: bool,
}

impl Default for VicRegLConfig {
    fn default() -> Self {
        Self {
            alpha: 0.75,
            inv_coeff: 25.0,
            var_coeff: 25.0,
            cov_coeff: 1.0,
            num_matches: [20, 4],
            l2_all_matches: true,
        }
    }
}

impl VicRegLConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::Config(format!(
                "VICRegL alpha must be in [0, 1], got {}",
                self.alpha
            )));
        }
        for (name, v) in [
            ("inv_coeff", self.inv_coeff),
            ("var_coeff", self.var_coeff),
            ("cov_coeff", self.cov_coeff),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "VICRegL {name} must be finite and >= 0, got {v}"
                )));
            }
        }
        if self.num_matches.contains(&0) {
            return Err(Error::Config(format!(
                "VICRegL num_matches must be >= 1, got {:?}",
                self.num_matches
            )));
        }
        Ok(())
    }
}

/// The three terms of one criterion, each already scaled by its coefficient.
#[derive(Clone, Debug)]
pub struct ScaledTerms {
    /// Invariance.
    pub invariance: Tensor,
    /// Variance.
    pub variance: Tensor,
    /// Covariance.
    pub covariance: Tensor,
}

impl ScaledTerms {
    /// `invariance + variance + covariance`.
    pub fn sum(&self) -> Result<Tensor> {
        Ok(((&self.invariance + &self.variance)? + &self.covariance)?)
    }

    /// Term by term, the mean of `terms` (at least one).
    fn mean(terms: &[ScaledTerms]) -> Result<ScaledTerms> {
        let field =
            |f: fn(&ScaledTerms) -> &Tensor| mean_of(terms.iter().map(f).cloned().collect());
        Ok(ScaledTerms {
            invariance: field(|t| &t.invariance)?,
            variance: field(|t| &t.variance)?,
            covariance: field(|t| &t.covariance)?,
        })
    }

    /// Term by term, `self + other`.
    fn add(&self, other: &ScaledTerms) -> Result<ScaledTerms> {
        Ok(ScaledTerms {
            invariance: (&self.invariance + &other.invariance)?,
            variance: (&self.variance + &other.variance)?,
            covariance: (&self.covariance + &other.covariance)?,
        })
    }
}

/// The mean of scalar tensors (at least one).
fn mean_of(scalars: Vec<Tensor>) -> Result<Tensor> {
    if scalars.is_empty() {
        return Err(Error::InvalidInput("VICRegL: no terms to average".into()));
    }
    Ok(Tensor::stack(&scalars, 0)?.mean(0)?)
}

/// The global and local terms and the total
/// `alpha * global + (1 - alpha) * local`.
#[derive(Clone, Debug)]
pub struct VicRegLTerms {
    /// Global criterion on the `(batch, dim)` embeddings (absent when `alpha = 0`).
    pub global: Option<ScaledTerms>,
    /// Local criterion on the feature-map embeddings (absent when `alpha = 1`).
    pub local: Option<ScaledTerms>,
    /// The scalar to differentiate.
    pub total: Tensor,
}

impl VicRegLTerms {
    /// Named scalars for logging: `global_{inv,var,cov}`, `local_{inv,var,cov}`, `total`.
    pub fn scalars(&self) -> Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        for (prefix, t) in [("global", &self.global), ("local", &self.local)] {
            if let Some(t) = t {
                for (name, v) in [
                    ("inv", &t.invariance),
                    ("var", &t.variance),
                    ("cov", &t.covariance),
                ] {
                    out.push((
                        format!("{prefix}_{name}"),
                        v.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                    ));
                }
            }
        }
        out.push((
            "total".into(),
            self.total.to_dtype(DType::F64)?.to_scalar::<f64>()?,
        ));
        Ok(out)
    }
}

/// The centre of every cell of a `grid = (rows, cols)` grid laid over a crop
/// of the original image, in original-image pixels `(y, x)`, row-major
/// `(rows * cols)` (the official `_location_to_NxN_grid`). `crop = (top,
/// left, height, width)` in original pixels; `flip` mirrors the columns (a
/// horizontally flipped crop).
pub fn location_grid(
    crop: (f64, f64, f64, f64),
    grid: (usize, usize),
    flip: bool,
) -> Vec<[f32; 2]> {
    let (top, left, h, w) = crop;
    let (rows, cols) = grid;
    let (ch, cw) = (h / rows as f64, w / cols as f64);
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let cc = if flip { cols - 1 - c } else { c };
            out.push([
                (top + ch * (r as f64 + 0.5)) as f32,
                (left + cw * (cc as f64 + 0.5)) as f32,
            ]);
        }
    }
    out
}

/// For each `(n, m)` distance matrix of one image (row-major `dist[i * m +
/// j]`): the nearest candidate of every input row, then the `keep` input rows
/// whose nearest candidate is closest (all rows when `keep >= n`), in
/// ascending row order. Returns `(rows, their nearest candidates)`. Ties
/// break towards the lower index (the official code uses PyTorch's `topk`
/// and `sort`, whose tie order is unspecified).
pub fn nearest_neighbor_matches(
    dist: &[f64],
    n: usize,
    m: usize,
    keep: usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut nn = Vec::with_capacity(n);
    for i in 0..n {
        let row = &dist[i * m..(i + 1) * m];
        let mut best = 0;
        for (j, &d) in row.iter().enumerate() {
            if d < row[best] {
                best = j;
            }
        }
        nn.push((row[best], best));
    }
    let keep = keep.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| nn[a].0.total_cmp(&nn[b].0).then(a.cmp(&b)));
    let mut rows: Vec<usize> = order[..keep].to_vec();
    rows.sort_unstable();
    let cands = rows.iter().map(|&r| nn[r].1).collect();
    (rows, cands)
}

/// Euclidean distances between every row of `a (n, c)` and of `b (m, c)`,
/// row-major `(n, m)`.
fn pairwise_l2(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let s: f64 = x.iter().zip(y).map(|(u, v)| (u - v) * (u - v)).sum();
            out.push(s.sqrt());
        }
    }
    out
}

/// `(batch, cells, c)` -> per image, per cell, the c values (f64, detached).
fn host_rows(t: &Tensor) -> Result<Vec<Vec<Vec<f64>>>> {
    Ok(t.detach().to_dtype(DType::F64)?.to_vec3::<f64>()?)
}

/// Picks, for every image `b`, the cells `idx[b]` (each of the same length
/// `k`) of `maps (batch, cells, dim)`: `(batch, k, dim)`, differentiable.
fn select_cells(maps: &Tensor, idx: &[Vec<usize>]) -> Result<Tensor> {
    let (b, cells, d) = maps.dims3()?;
    let k = idx.first().map_or(0, Vec::len);
    let flat: Vec<u32> = idx
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().map(move |&c| (i * cells + c) as u32))
        .collect();
    let ids = Tensor::from_vec(flat, b * k, maps.device())?;
    Ok(maps
        .reshape((b * cells, d))?
        .index_select(&ids, 0)?
        .reshape((b, k, d))?)
}

/// Matches the cells of `input (batch, n, dim)` to those of `candidate
/// (batch, m, dim)` given per-image distances `dist[b]` (`(n, m)`
/// row-major), keeping `keep` cells per image: `(input cells, their
/// nearest candidate cells)`, both `(batch, keep.min(n), dim)`.
fn matched(
    input: &Tensor,
    candidate: &Tensor,
    dist: &[Vec<f64>],
    m: usize,
    keep: usize,
) -> Result<(Tensor, Tensor)> {
    let n = input.dim(1)?;
    let (rows, cands): (Vec<_>, Vec<_>) = dist
        .iter()
        .map(|d| nearest_neighbor_matches(d, n, m, keep))
        .unzip();
    Ok((
        select_cells(input, &rows)?,
        select_cells(candidate, &cands)?,
    ))
}

/// Per-image distance matrices between the rows of `a (batch, n, c)` and
/// `b (batch, m, c)`.
fn distances(a: &Tensor, b: &Tensor) -> Result<Vec<Vec<f64>>> {
    let (ha, hb) = (host_rows(a)?, host_rows(b)?);
    Ok(ha.iter().zip(&hb).map(|(x, y)| pairwise_l2(x, y)).collect())
}

/// Each `(n, m)` row-major matrix of `d` as `(m, n)`.
fn transposed(d: &[Vec<f64>], n: usize, m: usize) -> Vec<Vec<f64>> {
    d.iter()
        .map(|x| (0..m * n).map(|k| x[(k % n) * m + k / n]).collect())
        .collect()
}

/// The VICReg terms of two matched `(batch, k, dim)` tensors, with the
/// batch statistics taken separately for each match index `k` and averaged
/// (official `_vicreg_loss`): invariance `inv_coeff * mse`, variance
/// `var_coeff * (v(x) + v(y)) / 2`, covariance `cov_coeff * (c(x) + c(y)) / 2`.
/// Variance and covariance use the batch gathered from every rank.
pub fn matched_vicreg_terms(
    x: &Tensor,
    y: &Tensor,
    cfg: &VicRegLConfig,
    collective: &Arc<dyn Collective>,
) -> Result<ScaledTerms> {
    if x.dims() != y.dims() || x.rank() != 3 {
        return Err(Error::InvalidInput(format!(
            "matched feature-map embeddings must be two (batch, k, dim) tensors of one shape, got {:?} and {:?}",
            x.dims(),
            y.dims()
        )));
    }
    let inv = (invariance(&x.flatten_to(1)?, &y.flatten_to(1)?)? * cfg.inv_coeff)?;
    let gx = gather_with_grad(collective, x)?;
    let gy = gather_with_grad(collective, y)?;
    let (vx, cx) = batch_var_cov(&gx)?;
    let (vy, cy) = batch_var_cov(&gy)?;
    Ok(ScaledTerms {
        invariance: inv,
        variance: ((vx + vy)? * (cfg.var_coeff / 2.0))?,
        covariance: ((cx + cy)? * (cfg.cov_coeff / 2.0))?,
    })
}

/// Unscaled variance hinge and covariance penalty of `z (batch, k, dim)`,
/// statistics over the batch for each `k`: `mean_{k,d} relu(1 - sqrt(var +
/// 1e-4))` and `mean_k sum_{i != j} C_k[i, j]^2 / dim`.
fn batch_var_cov(z: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, _, d) = z.dims3()?;
    if b < 2 {
        return Err(Error::InvalidInput(format!(
            "the local VICReg criterion needs a batch of at least 2 images (statistics run over the batch), got {b}"
        )));
    }
    let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let col_sq = zc.sqr()?.sum(0)?; // (k, d): (B - 1) var
    let var = (&col_sq / (b as f64 - 1.0))?;
    let variance = (var + 1e-4)?
        .sqrt()?
        .affine(-1.0, 1.0)?
        .relu()?
        .mean_all()?;
    let zt = zc.transpose(0, 1)?.contiguous()?; // (k, B, d)
    let full_sq = if b < d {
        zt.matmul(&zt.transpose(1, 2)?)?.sqr()?.sum((1, 2))?
    } else {
        zt.transpose(1, 2)?.matmul(&zt)?.sqr()?.sum((1, 2))?
    };
    let diag_sq = col_sq.sqr()?.sum(1)?;
    let norm = (b as f64 - 1.0).powi(2) * d as f64;
    let covariance = ((full_sq - diag_sq)? / norm)?.mean_all()?;
    Ok((variance, covariance))
}

/// The local terms of one pair of views (official `_local_loss`): feature
/// maps `maps_a (batch, n, dim)`, `maps_b (batch, m, dim)` and their cells'
/// image locations `loc_a (batch, n, 2)`, `loc_b (batch, m, 2)`. Sum of the
/// L2-matched and location-matched terms, each the mean of both directions.
pub fn local_pair_terms(
    maps_a: &Tensor,
    maps_b: &Tensor,
    loc_a: &Tensor,
    loc_b: &Tensor,
    cfg: &VicRegLConfig,
    collective: &Arc<dyn Collective>,
) -> Result<ScaledTerms> {
    let (b, n, d) = maps_a.dims3()?;
    let (b2, m, d2) = maps_b.dims3()?;
    if b != b2 || d != d2 || loc_a.dims() != [b, n, 2] || loc_b.dims() != [b, m, 2] {
        return Err(Error::InvalidInput(format!(
            "local criterion: maps {:?} / {:?} and locations {:?} / {:?} do not fit (maps (batch, cells, dim), locations (batch, cells, 2))",
            maps_a.dims(),
            maps_b.dims(),
            loc_a.dims(),
            loc_b.dims()
        )));
    }
    if n == 0 || m == 0 {
        return Err(Error::InvalidInput(format!(
            "local criterion: feature maps need at least one cell, got {:?} and {:?}",
            maps_a.dims(),
            maps_b.dims()
        )));
    }
    // The mean over both directions of the pairs matched by the distances
    // `dist` (per image, `(n, m)`; the other direction is its transpose).
    let both = |dist: &[Vec<f64>], keep: [usize; 2]| -> Result<ScaledTerms> {
        let (x1, y1) = matched(maps_a, maps_b, dist, m, keep[0])?;
        let (x2, y2) = matched(maps_b, maps_a, &transposed(dist, n, m), n, keep[1])?;
        ScaledTerms::mean(&[
            matched_vicreg_terms(&x1, &y1, cfg, collective)?,
            matched_vicreg_terms(&x2, &y2, cfg, collective)?,
        ])
    };
    let l2_keep = if cfg.l2_all_matches {
        [usize::MAX, usize::MAX]
    } else {
        cfg.num_matches
    };
    let l2 = both(&distances(maps_a, maps_b)?, l2_keep)?;
    let loc = both(&distances(loc_a, loc_b)?, cfg.num_matches)?;
    l2.add(&loc)
}

/// Every `(global i, other view j != i)` pair, in the official order.
fn view_pairs(views: usize, num_global: usize) -> Vec<(usize, usize)> {
    (0..num_global)
        .flat_map(|i| (0..views).filter(move |&j| j != i).map(move |j| (i, j)))
        .collect()
}

fn check_views(views: usize, num_global: usize, what: &str) -> Result<()> {
    if num_global == 0 || num_global > views || views < 2 {
        return Err(Error::InvalidInput(format!(
            "{what}: needs at least 2 views with 1..=views global ones, got {views} views and {num_global} global"
        )));
    }
    Ok(())
}

/// The local criterion over all views (official `local_loss`): the mean of
/// [`local_pair_terms`] over every pair of a global view with another view.
/// `maps[v] (batch, cells_v, dim)`, `locations[v] (batch, cells_v, 2)`.
pub fn local_terms(
    maps: &[Tensor],
    locations: &[Tensor],
    num_global: usize,
    cfg: &VicRegLConfig,
    collective: &Arc<dyn Collective>,
) -> Result<ScaledTerms> {
    check_views(maps.len(), num_global, "local criterion")?;
    if locations.len() != maps.len() {
        return Err(Error::InvalidInput(format!(
            "local criterion: {} feature maps but {} location grids",
            maps.len(),
            locations.len()
        )));
    }
    let terms = view_pairs(maps.len(), num_global)
        .into_iter()
        .map(|(i, j)| {
            local_pair_terms(
                &maps[i],
                &maps[j],
                &locations[i],
                &locations[j],
                cfg,
                collective,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    ScaledTerms::mean(&terms)
}

/// The global criterion over multi-crop `(batch, dim)` embeddings (official
/// `global_loss`): `inv_coeff *` the mean MSE over global-other pairs, and
/// `var_coeff *` / `cov_coeff *` the mean over all views of each view's
/// variance hinge / covariance penalty (gathered batch). With two views this
/// is VICReg with the variance term averaged over branches.
pub fn global_terms(
    embeddings: &[Tensor],
    num_global: usize,
    cfg: &VicRegLConfig,
    collective: &Arc<dyn Collective>,
) -> Result<ScaledTerms> {
    check_views(embeddings.len(), num_global, "global criterion")?;
    let inv = view_pairs(embeddings.len(), num_global)
        .into_iter()
        .map(|(i, j)| invariance(&embeddings[i], &embeddings[j]))
        .collect::<Result<Vec<_>>>()?;
    let (var, cov): (Vec<_>, Vec<_>) = embeddings
        .iter()
        .map(|z| batch_var_cov(&gather_with_grad(collective, z)?.unsqueeze(1)?))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    Ok(ScaledTerms {
        invariance: (mean_of(inv)? * cfg.inv_coeff)?,
        variance: (mean_of(var)? * cfg.var_coeff)?,
        covariance: (mean_of(cov)? * cfg.cov_coeff)?,
    })
}

/// The VICRegL loss (single process): `alpha * global + (1 - alpha) * local`.
/// `embeddings[v] (batch, dim)`, `maps[v] (batch, cells_v, map_dim)`,
/// `locations[v] (batch, cells_v, 2)`; the first `num_global` views are the
/// global crops. A criterion whose weight is 0 is not computed.
pub fn vicregl_loss(
    embeddings: &[Tensor],
    maps: &[Tensor],
    locations: &[Tensor],
    num_global: usize,
    cfg: &VicRegLConfig,
) -> Result<VicRegLTerms> {
    let single: Arc<dyn Collective> = Arc::new(SingleProcess);
    vicregl_loss_distributed(embeddings, maps, locations, num_global, cfg, &single)
}

/// [`vicregl_loss`] with variance and covariance statistics over the batch
/// gathered from every rank (official `gather_center`).
pub fn vicregl_loss_distributed(
    embeddings: &[Tensor],
    maps: &[Tensor],
    locations: &[Tensor],
    num_global: usize,
    cfg: &VicRegLConfig,
    collective: &Arc<dyn Collective>,
) -> Result<VicRegLTerms> {
    cfg.validate()?;
    let global = if cfg.alpha > 0.0 {
        Some(global_terms(embeddings, num_global, cfg, collective)?)
    } else {
        None
    };
    let local = if cfg.alpha < 1.0 {
        Some(local_terms(maps, locations, num_global, cfg, collective)?)
    } else {
        None
    };
    let total = match (&global, &local) {
        (Some(g), Some(l)) => ((g.sum()? * cfg.alpha)? + (l.sum()? * (1.0 - cfg.alpha))?)?,
        (Some(g), None) => (g.sum()? * cfg.alpha)?,
        (None, Some(l)) => (l.sum()? * (1.0 - cfg.alpha))?,
        (None, None) => return Err(Error::Config("VICRegL: no criterion".into())),
    };
    Ok(VicRegLTerms {
        global,
        local,
        total,
    })
}

impl VicRegLTerms {
    /// Converts to the generic [`LossOutput`] (terms `global_inv`, ...,
    /// `local_cov`, each already scaled by its coefficient, not by alpha).
    pub fn into_output(self) -> LossOutput {
        let mut terms = Vec::new();
        for (prefix, t) in [("global", self.global), ("local", self.local)] {
            if let Some(t) = t {
                terms.push((format!("{prefix}_inv"), t.invariance));
                terms.push((format!("{prefix}_var"), t.variance));
                terms.push((format!("{prefix}_cov"), t.covariance));
            }
        }
        LossOutput {
            total: self.total,
            terms,
        }
    }
}

/// The VICRegL criterion as a [`JointLoss`]: reads every view of a
/// multi-crop model's output (`JointOutput::views`); on a plain two-branch
/// output it is the global criterion of the two embeddings (then `alpha`
/// must be 1: there are no feature maps).
#[derive(Clone, Debug)]
pub struct VicRegLLoss {
    cfg: VicRegLConfig,
}

impl VicRegLLoss {
    /// A loss with `cfg` (checked).
    pub fn new(cfg: VicRegLConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &VicRegLConfig {
        &self.cfg
    }
}

impl JointLoss for VicRegLLoss {
    fn name(&self) -> &'static str {
        if self.cfg.alpha >= 1.0 {
            "vicreg-multi-crop"
        } else {
            "vicregl"
        }
    }

    fn compute(
        &self,
        za: &Tensor,
        zb: &Tensor,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        if self.cfg.alpha < 1.0 {
            return Err(Error::Config(format!(
                "VICRegL with alpha {} needs feature maps: train it with a multi-crop model",
                self.cfg.alpha
            )));
        }
        let views = [za.clone(), zb.clone()];
        Ok(vicregl_loss_distributed(&views, &[], &[], 2, &self.cfg, collective)?.into_output())
    }

    fn compute_joint(
        &self,
        out: &JointOutput,
        collective: &Arc<dyn Collective>,
    ) -> Result<LossOutput> {
        match &out.views {
            Some(v) => Ok(vicregl_loss_distributed(
                &v.embeddings,
                &v.maps,
                &v.locations,
                v.num_global,
                &self.cfg,
                collective,
            )?
            .into_output()),
            None => self.compute_outputs(&out.a, &out.b, collective),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_centres_and_flip() {
        let g = location_grid((10.0, 20.0, 70.0, 140.0), (7, 7), false);
        assert_eq!(g.len(), 49);
        assert_eq!(g[0], [15.0, 30.0]);
        assert_eq!(g[1], [15.0, 50.0]);
        assert_eq!(g[7], [25.0, 30.0]);
        let f = location_grid((10.0, 20.0, 70.0, 140.0), (7, 7), true);
        assert_eq!(f[0], g[6]);
        assert_eq!(f[6], g[0]);
    }

    #[test]
    fn matches_keep_the_closest_rows_in_order() {
        // 3 inputs, 2 candidates.
        let dist = [5.0, 1.0, 0.5, 9.0, 3.0, 3.0];
        let (rows, cands) = nearest_neighbor_matches(&dist, 3, 2, 2);
        assert_eq!(rows, vec![0, 1]); // nn distances 1.0, 0.5, 3.0
        assert_eq!(cands, vec![1, 0]);
        let (rows, cands) = nearest_neighbor_matches(&dist, 3, 2, 10);
        assert_eq!(rows, vec![0, 1, 2]);
        assert_eq!(cands, vec![1, 0, 0]); // tie -> lower index
    }

    #[test]
    fn config_is_checked() {
        assert!(VicRegLConfig::default().validate().is_ok());
        let bad = VicRegLConfig {
            alpha: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = VicRegLConfig {
            num_matches: [0, 4],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}

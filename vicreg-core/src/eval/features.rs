//! Frozen features: an encoder run in eval mode over a dataset, no graph kept.

use candle_core::{DType, Device, Tensor};

use crate::model::Encoder;
use crate::{Error, Result};

/// Features with their class labels.
#[derive(Clone, Debug)]
pub struct Features {
    /// `(n, dim)` f32 features.
    pub x: Tensor,
    /// `n` class labels.
    pub labels: Vec<usize>,
}

impl Features {
    /// Checks that `x` is `(n, dim)` with one label per row, and converts it to f32 without a graph.
    pub fn new(x: Tensor, labels: Vec<usize>) -> Result<Self> {
        let (n, _) = x.dims2().map_err(|_| {
            Error::invalid(format!("features must be (n, dim), got {:?}", x.dims()))
        })?;
        if n != labels.len() {
            return Err(Error::invalid(format!(
                "{n} feature rows but {} labels",
                labels.len()
            )));
        }
        if n == 0 {
            return Err(Error::invalid("no features"));
        }
        Ok(Self {
            x: x.detach().to_dtype(DType::F32)?,
            labels,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples (never, for a value built by [`Features::new`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.x.dims()[1]
    }

    /// The same features moved to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            x: self.x.to_device(device)?,
            labels: self.labels.clone(),
        })
    }

    /// Largest label + 1.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().copied().max().map_or(0, |m| m + 1)
    }
}

/// Runs `encoder` in eval mode (`train = false`: BatchNorm running statistics,
/// no dropout) over `batches` of `(input, labels)` and concatenates the
/// detached representations into [`Features`] on the encoder's device.
pub fn extract_features<E, I>(encoder: &E, batches: I) -> Result<Features>
where
    E: Encoder,
    E::Input: Sized,
    I: IntoIterator<Item = Result<(E::Input, Vec<usize>)>>,
{
    extract_with(|x: &E::Input| encoder.forward_t(x, false), batches)
}

/// Like [`extract_features`] with any function from an input batch to
/// `(batch, dim)` features (e.g. a representation followed by pooling).
pub fn extract_with<X, F, I>(mut f: F, batches: I) -> Result<Features>
where
    F: FnMut(&X) -> Result<Tensor>,
    I: IntoIterator<Item = Result<(X, Vec<usize>)>>,
{
    let mut parts = Vec::new();
    let mut labels = Vec::new();
    let batches = batches.into_iter();
    let bar = extraction_bar(batches.size_hint().1);
    for item in batches {
        bar.inc(1);
        let (input, y) = item?;
        let feats = f(&input)?.detach();
        let b = feats.dims2().map_err(|_| {
            Error::invalid(format!(
                "encoder output must be (batch, dim), got {:?}",
                feats.dims()
            ))
        })?;
        if b.0 != y.len() {
            return Err(Error::invalid(format!(
                "batch of {} features but {} labels",
                b.0,
                y.len()
            )));
        }
        parts.push(feats.to_dtype(DType::F32)?);
        labels.extend(y);
    }
    bar.finish_and_clear();
    if parts.is_empty() {
        return Err(Error::invalid("no batches to extract features from"));
    }
    Features::new(Tensor::cat(&parts, 0)?, labels)
}

/// A progress bar over feature-extraction batches on stderr (a counter when
/// the number of batches is unknown); hidden when stderr is not a terminal.
pub fn extraction_bar(batches: Option<usize>) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match batches {
        Some(n) => (
            indicatif::ProgressBar::new(n as u64),
            "features [{bar:20.cyan/blue}] {pos}/{len} batches, eta {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "features {spinner} {pos} batches, {per_sec}",
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Rows scaled to unit L2 norm (`(n, dim)`; a zero row stays zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

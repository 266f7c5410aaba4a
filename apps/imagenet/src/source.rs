//! Adapts the datasets crate's [`Loader`] to the engine's [`BatchSource`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use datasets::augment::ChwImage;
use datasets::image::{collate_two_view, ImageSource, TwoViewDataset};
use datasets::loader::Loader;
use datasets::Dataset;
use vicreg_core::engine::{BatchSource, PairBatch, Positioned};
use vicreg_core::SeededRng;

/// Two augmented views of an image and its class label (used only by the
/// optional online probe; pretraining itself never sees labels).
pub struct LabelledPairs<S: ImageSource> {
    /// The two-view dataset.
    pub inner: TwoViewDataset<S>,
}

impl<S: ImageSource> Dataset for LabelledPairs<S> {
    type Item = ((ChwImage, ChwImage), usize);
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> datasets::Result<Self::Item> {
        Ok((
            self.inner.get(index, rng)?,
            self.inner.source().label(index),
        ))
    }
    fn sample_name(&self, index: usize) -> Option<String> {
        self.inner.sample_name(index)
    }
}

/// A collated batch: view 1, view 2 (each `(B, C, S, S)`) and labels.
pub type ViewBatch = (Tensor, Tensor, Vec<usize>);

/// Collates [`LabelledPairs`] items on `device`.
pub fn collate(
    items: Vec<((ChwImage, ChwImage), usize)>,
    device: &Device,
) -> datasets::Result<ViewBatch> {
    let labels = items.iter().map(|x| x.1).collect();
    let (a, b) = collate_two_view(items.into_iter().map(|x| x.0).collect(), device)?;
    Ok((a, b, labels))
}

/// Two-view image batches for the engine.
pub struct ImagePairs<S: ImageSource + 'static> {
    /// The loader over the two-view dataset.
    pub loader: Loader<LabelledPairs<S>, ViewBatch>,
    /// Where skipped images are reported.
    pub skips: SkipLog,
}

impl<S: ImageSource + 'static> BatchSource<Tensor, Tensor> for ImagePairs<S> {
    fn batches_per_epoch(&self) -> usize {
        self.loader.steps_per_epoch()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> vicreg_core::Result<
        Box<dyn Iterator<Item = vicreg_core::Result<Positioned<Tensor, Tensor>>> + '_>,
    > {
        let mut iter = self.loader.iter_epoch(epoch as u64, start);
        let skips = &mut self.skips;
        let mut step = start;
        let mut reported = false;
        // Reported once, as soon as the epoch's last batch is out (the engine
        // stops pulling there) or the loader ends.
        Ok(Box::new(std::iter::from_fn(move || {
            let item = match iter.next() {
                Some(Ok((a, b, labels))) => {
                    let pos = step;
                    step += 1;
                    Some(Ok((
                        epoch,
                        pos,
                        PairBatch::new(a, b, labels.len()).with_labels(labels),
                    )))
                }
                Some(Err(e)) => return Some(Err(vicreg_core::Error::invalid(e.to_string()))),
                None => None,
            };
            if !reported && (item.is_none() || iter.remaining() == 0) {
                reported = true;
                if let Err(e) = skips.record(epoch, iter.skipped(), iter.skipped_messages()) {
                    return Some(Err(vicreg_core::Error::invalid(format!("{e:#}"))));
                }
            }
            item
        })))
    }
}

/// Name of the file in the run directory that lists every skipped sample.
pub const SKIPPED_FILE: &str = "skipped.txt";

/// The samples the loader skipped during training: each epoch with skips
/// prints `epoch E: skipped N files (first: ...)` on stderr, and every
/// distinct skip message (each names its file) of all epochs so far is kept,
/// one per line, in `<run dir>/skipped.txt` (rank `r > 0` of a multi-process
/// run: `skipped-rank<r>.txt`). A resumed run keeps the earlier lines.
pub struct SkipLog {
    path: Option<PathBuf>,
    seen: HashSet<String>,
    lines: Vec<String>,
    total: usize,
}

impl SkipLog {
    /// A log writing to `run_dir` (none: stderr only) for process `rank`.
    pub fn new(run_dir: Option<&Path>, rank: usize) -> Self {
        let path = run_dir.map(|d| {
            if rank == 0 {
                d.join(SKIPPED_FILE)
            } else {
                d.join(format!("skipped-rank{rank}.txt"))
            }
        });
        let mut log = Self {
            path,
            seen: HashSet::new(),
            lines: Vec::new(),
            total: 0,
        };
        if let Some(text) = log
            .path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            for l in text.lines().filter(|l| !l.is_empty()) {
                log.add(l.to_string());
            }
        }
        log
    }

    fn add(&mut self, m: String) {
        if self.seen.insert(m.clone()) {
            self.lines.push(m);
        }
    }

    /// Skips counted by this process since it started.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Records the `count` skips of `epoch` (with their messages, each naming
    /// its file), prints the epoch's line and rewrites the list file.
    pub fn record(
        &mut self,
        epoch: usize,
        count: usize,
        messages: &[String],
    ) -> anyhow::Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.total += count;
        let first: Vec<&str> = messages.iter().take(3).map(String::as_str).collect();
        let more = if messages.len() > first.len() {
            "; ..."
        } else {
            ""
        };
        eprintln!(
            "epoch {epoch}: skipped {count} files (first: {}{more}){}",
            first.join("; "),
            self.path
                .as_ref()
                .map(|p| format!("; list: {}", p.display()))
                .unwrap_or_default()
        );
        for m in messages {
            self.add(m.clone());
        }
        if let Some(p) = &self.path {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            }
            let mut text = self.lines.join("\n");
            text.push('\n');
            vicreg_core::io::write_atomic(p, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
        }
        Ok(())
    }
}

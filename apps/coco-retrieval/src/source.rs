//! Adapts the datasets crate's [`Loader`] over COCO image-caption pairs to the
//! engine's [`BatchSource`]: branch A gets a `(B, 3, S, S)` image view,
//! branch B a [`TextBatch`] of one caption per image (drawn per epoch).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use datasets::coco::CocoPretrain;
use datasets::loader::Loader;
use encoders::text::TextBatch;
use vicreg_core::engine::{BatchSource, EpochIter, PairBatch};

use crate::text::text_batch;

/// A collated batch: images `(B, 3, S, S)` f32, token ids and mask `(B, L)` u32.
pub type CaptionBatch = (Tensor, Tensor, Tensor);

/// Image-caption pair batches for the engine.
pub struct CaptionPairs {
    /// The loader over the pretraining pairs.
    pub loader: Loader<CocoPretrain<datasets::text::TextTokenizer>, CaptionBatch>,
    /// Where skipped images are reported.
    pub skips: SkipLog,
}

impl BatchSource<Tensor, TextBatch> for CaptionPairs {
    fn batches_per_epoch(&self) -> usize {
        self.loader.steps_per_epoch()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> vicreg_core::Result<EpochIter<'_, Tensor, TextBatch>> {
        let mut iter = self.loader.iter_epoch(epoch as u64, start);
        let skips = &mut self.skips;
        let mut step = start;
        let mut reported = false;
        // Reported once, as soon as the epoch's last batch is out (the engine
        // stops pulling there) or the loader ends.
        Ok(Box::new(std::iter::from_fn(move || {
            let item = match iter.next() {
                Some(Ok((images, ids, mask))) => {
                    let pos = step;
                    step += 1;
                    let n = images.dims().first().copied().unwrap_or(0);
                    Some(
                        text_batch(&ids, &mask)
                            .map_err(|e| vicreg_core::Error::invalid(format!("{e:#}")))
                            .map(|t| (epoch, pos, PairBatch::new(images, t, n))),
                    )
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

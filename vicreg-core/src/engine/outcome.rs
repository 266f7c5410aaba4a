//! [`RunOutcome`]: what one pretraining invocation produced, timed, and the
//! closing lines an app prints for it.

use std::path::Path;
use std::time::Instant;

use super::TrainSummary;

/// The engine's summary of an invocation with its wall-clock time, speed and
/// the samples its loader skipped.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The engine's summary.
    pub summary: TrainSummary,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
    /// Pairs seen per second over this invocation (steps trained here times
    /// the global batch, over `seconds`).
    pub pairs_per_s: f64,
    /// Samples this process skipped as unreadable in this invocation.
    pub skipped: usize,
}

impl RunOutcome {
    /// The outcome of a fit that started at `start`, with `batch_size` pairs
    /// per optimizer step, that skipped `skipped` unreadable samples.
    pub fn new(summary: TrainSummary, start: Instant, batch_size: usize, skipped: usize) -> Self {
        let seconds = start.elapsed().as_secs_f64();
        let steps = summary.global_step - summary.resumed_from.unwrap_or(0);
        Self {
            pairs_per_s: steps as f64 * batch_size as f64 / seconds.max(1e-9),
            summary,
            seconds,
            skipped,
        }
    }

    /// [`print`](Self::print) on rank 0 of a multi-process run, nothing on
    /// the other ranks.
    pub fn print_on_rank0(&self, rank: usize, unit: &str, skip_list: &Path) {
        if rank == 0 {
            self.print(unit, skip_list);
        }
    }

    /// Prints the closing lines of a run: on stderr, how many `unit` (e.g.
    /// `clips`) were skipped and where they are listed (`skip_list`), if any;
    /// on stdout `done: N steps in S s (P pairs/s); encoder weights: <files>`.
    pub fn print(&self, unit: &str, skip_list: &Path) {
        if self.skipped > 0 {
            eprintln!(
                "skipped {} unreadable {unit} in total (listed in {})",
                self.skipped,
                skip_list.display()
            );
        }
        let files: Vec<String> = self
            .summary
            .encoder_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        println!(
            "done: {} steps in {:.1} s ({:.1} pairs/s); encoder weights: {}",
            self.summary.global_step,
            self.seconds,
            self.pairs_per_s,
            files.join(", ")
        );
    }
}

//! Progress display: an indicatif bar per epoch and one summary line per epoch.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress bar of the current epoch (hidden in quiet mode, when stdout is
/// not a terminal, or on ranks other than 0). Log lines go through
/// [`Progress::println`] so that they appear above the bar instead of garbling it.
pub struct Progress {
    bar: Option<ProgressBar>,
    show_bar: bool,
    print_lines: bool,
}

impl Progress {
    /// `quiet`: no bar and no lines. `rank`: only rank 0 shows anything.
    pub fn new(quiet: bool, rank: usize) -> Self {
        let active = !quiet && rank == 0;
        Self {
            bar: None,
            show_bar: active && std::io::stdout().is_terminal(),
            print_lines: active,
        }
    }

    /// True when a bar is drawn.
    pub fn shows_bar(&self) -> bool {
        self.show_bar
    }

    /// Starts the bar of `epoch` (0-based) of `epochs`, with `total` steps, `done` of them already done.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, total: u64, done: u64) {
        self.finish_epoch();
        if !self.show_bar {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:20.cyan/blue}] {pos}/{len} {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
        bar.set_position(done);
        self.bar = Some(bar);
    }

    /// Moves the bar to `pos` and shows the latest loss, lr and throughput.
    pub fn update(&self, pos: u64, loss: f64, lr: f64, pairs_per_s: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
            bar.set_message(format!(
                "loss {loss:.4} lr {lr:.3e} {pairs_per_s:.1} pairs/s"
            ));
        }
    }

    /// Removes the bar of the current epoch.
    pub fn finish_epoch(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Prints a line above the bar (or plainly without one); nothing in quiet mode.
    pub fn println(&self, line: &str) {
        if !self.print_lines {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish_epoch();
    }
}

//! The log of samples the loader skipped during a training run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

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
    /// A log writing to `run_dir` (none: stderr only) for process `rank`;
    /// the lines an earlier run left there are kept.
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

    /// The distinct skip messages so far (this run and the lines kept from
    /// an earlier one), oldest first.
    pub fn messages(&self) -> &[String] {
        &self.lines
    }

    /// Records the `count` skips of `epoch` (with their messages, each naming
    /// its file), prints the epoch's line and rewrites the list file.
    pub fn record(&mut self, epoch: usize, count: usize, messages: &[String]) -> Result<()> {
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
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            let mut text = self.lines.join("\n");
            text.push('\n');
            vicreg_core::io::write_atomic(p, text.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_distinct_messages_across_epochs_and_resumes() {
        let dir = std::env::temp_dir().join(format!("skiplog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = SkipLog::new(Some(&dir), 0);
        log.record(0, 0, &[]).unwrap();
        assert!(!dir.join(SKIPPED_FILE).exists(), "no file without skips");
        log.record(
            0,
            2,
            &["a.png: truncated".into(), "b.png: bad header".into()],
        )
        .unwrap();
        log.record(1, 1, &["a.png: truncated".into()]).unwrap();
        assert_eq!(log.total(), 3);
        let text = std::fs::read_to_string(dir.join(SKIPPED_FILE)).unwrap();
        assert_eq!(text, "a.png: truncated\nb.png: bad header\n");
        // A resumed run keeps the earlier lines and adds new ones.
        let mut again = SkipLog::new(Some(&dir), 0);
        assert_eq!(again.total(), 0);
        again
            .record(2, 1, &["c.wav: no data chunk".into()])
            .unwrap();
        assert_eq!(again.messages().len(), 3);
        // Other ranks write their own file.
        let mut r1 = SkipLog::new(Some(&dir), 1);
        r1.record(0, 1, &["d.png: empty".into()]).unwrap();
        assert!(dir.join("skipped-rank1.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

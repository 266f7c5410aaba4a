//! A dataset (or collate function) that panics must reach the consumer as an
//! error naming the sample, for any worker count, and never hang (issue #20).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use datasets::loader::{Loader, LoaderConfig};
use datasets::{Dataset, Result};
use vicreg_core::SeededRng;

/// Samples are their index; sample `bad` panics.
struct Panicky {
    n: usize,
    bad: usize,
}

impl Dataset for Panicky {
    type Item = usize;
    fn len(&self) -> usize {
        self.n
    }
    fn get(&self, index: usize, _rng: &mut SeededRng) -> Result<usize> {
        if index == self.bad {
            panic!("decoder blew up on this file");
        }
        Ok(index)
    }
    fn sample_name(&self, index: usize) -> Option<String> {
        Some(format!("/data/clip_{index}.wav"))
    }
}

fn cfg(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 4,
        num_workers: workers,
        prefetch: 2,
        shuffle: false,
        drop_last: true,
        ..LoaderConfig::default()
    }
}

/// Runs `f` on a thread and fails the test if it does not finish in 30 s.
fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the loader hung (no result within 30 s)")
}

#[test]
fn a_panicking_sample_is_an_error_naming_it_for_any_worker_count() {
    for workers in [0, 1, 2, 4] {
        let errors = within_timeout(move || {
            let ds = Arc::new(Panicky { n: 64, bad: 21 });
            let l = Loader::new(ds, cfg(workers), Ok).unwrap();
            let mut ok = 0;
            let mut errs = Vec::new();
            for b in l.iter_epoch(0, 0) {
                match b {
                    Ok(_) => ok += 1,
                    Err(e) => errs.push(e.to_string()),
                }
            }
            (ok, errs)
        });
        let (ok, errs) = errors;
        // Batches 0..5 are fine (samples 0..20); batch 5 holds sample 21.
        assert_eq!(ok, 5, "workers {workers}: batches before the bad one");
        assert_eq!(errs.len(), 1, "workers {workers}: {errs:?}");
        let e = &errs[0];
        assert!(
            e.contains("sample 21")
                && e.contains("/data/clip_21.wav")
                && e.contains("panicked")
                && e.contains("decoder blew up"),
            "workers {workers}: {e}"
        );
    }
}

#[test]
fn a_panicking_collate_is_an_error_for_any_worker_count() {
    for workers in [0, 2] {
        let errs = within_timeout(move || {
            let ds = Arc::new(Panicky {
                n: 16,
                bad: usize::MAX,
            });
            let l = Loader::new(ds, cfg(workers), |items: Vec<usize>| {
                if items.contains(&9) {
                    panic!("collate failed");
                }
                Ok(items)
            })
            .unwrap();
            l.iter_epoch(0, 0)
                .filter_map(|b| b.err().map(|e| e.to_string()))
                .collect::<Vec<_>>()
        });
        assert_eq!(errs.len(), 1, "workers {workers}: {errs:?}");
        assert!(
            errs[0].contains("batch 2") && errs[0].contains("collate failed"),
            "workers {workers}: {}",
            errs[0]
        );
    }
}

#[test]
fn a_panic_under_the_skip_policy_is_not_skipped() {
    // Skip replaces samples whose *errors* are sample errors; a panic is a bug
    // or a hostile file and must stop the epoch rather than be substituted.
    let ds = Arc::new(Panicky { n: 8, bad: 2 });
    let l = Loader::new(ds, cfg(0), Ok).unwrap();
    let mut it = l.iter_epoch(0, 0);
    let first = it.next().unwrap();
    assert!(first.is_err());
    assert_eq!(it.skipped(), 0);
    assert!(it.next().is_none());
}

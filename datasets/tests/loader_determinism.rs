//! The loader: identical batches for any worker count, resume mid-epoch,
//! disjoint shards covering the epoch, drop_last, and the skip/strict policy.

use std::collections::HashSet;
use std::sync::Arc;

use datasets::image::BadSamplePolicy;
use datasets::loader::{Loader, LoaderConfig};
use datasets::{Dataset, Error, Result};
use vicreg_core::SeededRng;

/// Item = (index, first draw of the sample's RNG). Indices in `bad` fail like a corrupt file.
struct Toy {
    n: usize,
    bad: Vec<usize>,
}

impl Dataset for Toy {
    type Item = (usize, u64);
    fn len(&self) -> usize {
        self.n
    }
    fn get(&self, index: usize, rng: &mut SeededRng) -> Result<Self::Item> {
        if self.bad.contains(&index) {
            return Err(Error::bad_file(format!("img_{index}.jpg"), "corrupt JPEG"));
        }
        // Uneven work so that workers finish out of order.
        if index.is_multiple_of(7) {
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        Ok((index, rng.next_u64()))
    }
}

type Batch = Vec<(usize, u64)>;

fn loader(n: usize, bad: Vec<usize>, cfg: LoaderConfig) -> Loader<Toy, Batch> {
    Loader::new(Arc::new(Toy { n, bad }), cfg, |items: Vec<(usize, u64)>| {
        Ok(items)
    })
    .unwrap()
}

fn cfg(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 8,
        num_workers: workers,
        prefetch: 2,
        seed: 42,
        ..LoaderConfig::default()
    }
}

fn epoch(l: &Loader<Toy, Batch>, e: u64, start: usize) -> Vec<Batch> {
    l.iter_epoch(e, start).collect::<Result<Vec<_>>>().unwrap()
}

#[test]
fn same_batches_for_any_worker_count() {
    let a = epoch(&loader(100, vec![], cfg(1)), 3, 0);
    let b = epoch(&loader(100, vec![], cfg(3)), 3, 0);
    let c = epoch(&loader(100, vec![], cfg(0)), 3, 0);
    assert_eq!(a.len(), 12); // 100 / 8 with drop_last
    assert_eq!(a, b);
    assert_eq!(a, c);
    // Sample i of epoch e uses derive(seed, [e, i]).
    let (i, draw) = a[0][0];
    assert_eq!(draw, SeededRng::derive(42, &[3, i as u64]).next_u64());
    // A different epoch shuffles differently and draws differently.
    let d = epoch(&loader(100, vec![], cfg(3)), 4, 0);
    assert_ne!(a, d);
    // Every sample at most once per epoch.
    let seen: HashSet<usize> = a.iter().flatten().map(|x| x.0).collect();
    assert_eq!(seen.len(), 96);
}

#[test]
fn resume_mid_epoch_gives_the_remaining_batches() {
    let l = loader(100, vec![], cfg(3));
    let full = epoch(&l, 1, 0);
    let resumed = epoch(&l, 1, 5);
    assert_eq!(resumed, full[5..].to_vec());
    assert!(epoch(&l, 1, 12).is_empty());
    assert!(epoch(&l, 1, 99).is_empty());
    // Dropping an iterator early stops its workers cleanly.
    let mut it = l.iter_epoch(1, 0);
    assert_eq!(it.next().unwrap().unwrap(), full[0]);
    assert_eq!(it.remaining(), 11);
    drop(it);
}

#[test]
fn shards_are_disjoint_equal_and_cover_the_epoch() {
    let world = 3;
    let n = 99;
    let mut union = Vec::new();
    let mut sizes = Vec::new();
    for rank in 0..world {
        let l = loader(
            n,
            vec![],
            LoaderConfig {
                rank,
                world_size: world,
                batch_size: 5,
                drop_last: false,
                ..cfg(2)
            },
        );
        assert_eq!(l.steps_per_epoch(), 7); // 33 per rank: 6 full + 1 of 3
        let batches = epoch(&l, 2, 0);
        assert_eq!(batches.last().unwrap().len(), 3);
        let idx: Vec<usize> = batches.iter().flatten().map(|x| x.0).collect();
        assert_eq!(idx, l.shard_indices(2));
        sizes.push(idx.len());
        union.extend(idx);
    }
    assert_eq!(sizes, vec![33, 33, 33]);
    let set: HashSet<usize> = union.iter().copied().collect();
    assert_eq!(set.len(), union.len(), "shards overlap");
    assert_eq!(
        set,
        (0..n).collect::<HashSet<_>>(),
        "shards do not cover the epoch"
    );
    // 100 samples on 3 ranks: 33 each, disjoint, one sample of the epoch's order left out.
    let all: Vec<usize> = (0..3)
        .flat_map(|rank| {
            loader(
                100,
                vec![],
                LoaderConfig {
                    rank,
                    world_size: 3,
                    ..cfg(0)
                },
            )
            .shard_indices(0)
        })
        .collect();
    assert_eq!(all.len(), 99);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 99);
}

#[test]
fn bad_samples_are_replaced_and_counted_or_fail_in_strict_mode() {
    let bad = vec![3, 4, 50];
    let l = loader(
        64,
        bad.clone(),
        LoaderConfig {
            shuffle: false,
            ..cfg(2)
        },
    );
    let mut it = l.iter_epoch(0, 0);
    let batches: Vec<Batch> = it.by_ref().collect::<Result<_>>().unwrap();
    assert_eq!(batches.len(), 8);
    assert!(
        batches.iter().all(|b| b.len() == 8),
        "batch sizes stay fixed"
    );
    // Index 3 -> 4 (bad) -> 5; index 4 -> 5; 50 -> 51: 4 failed loads.
    assert_eq!(it.skipped(), 4);
    assert!(it
        .skipped_messages()
        .iter()
        .any(|m| m.contains("img_50.jpg")));
    assert_eq!(batches[0][3].0, 5);
    assert_eq!(batches[0][4].0, 5);
    assert_eq!(batches[6][2].0, 51);
    // Replacements are deterministic too.
    let again: Vec<Batch> = loader(
        64,
        bad.clone(),
        LoaderConfig {
            shuffle: false,
            ..cfg(3)
        },
    )
    .iter_epoch(0, 0)
    .collect::<Result<_>>()
    .unwrap();
    assert_eq!(batches, again);

    let strict = loader(
        64,
        bad,
        LoaderConfig {
            shuffle: false,
            policy: BadSamplePolicy::Strict,
            ..cfg(2)
        },
    );
    let res: Vec<Result<Batch>> = strict.iter_epoch(0, 0).collect();
    assert_eq!(res.len(), 1, "stops at the first error");
    let msg = res[0].as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("img_3.jpg") && msg.contains("corrupt"),
        "{msg}"
    );
}

#[test]
fn config_errors() {
    let d = Arc::new(Toy { n: 10, bad: vec![] });
    let collate = |items: Vec<(usize, u64)>| Ok(items);
    let e = Loader::new(
        d.clone(),
        LoaderConfig {
            batch_size: 0,
            ..cfg(1)
        },
        collate,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("batch_size"));
    let e = Loader::new(
        d.clone(),
        LoaderConfig {
            rank: 2,
            world_size: 2,
            ..cfg(1)
        },
        collate,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("rank"));
    let e = Loader::new(
        d,
        LoaderConfig {
            batch_size: 11,
            ..cfg(1)
        },
        collate,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("not one batch"), "{e}");
}

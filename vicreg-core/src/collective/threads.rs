//! Several ranks as threads of one process, exchanging tensors through shared memory.

use std::sync::{Arc, Barrier, Mutex};

use candle_core::Tensor;

use super::Collective;
use crate::{Error, Result};

struct Shared {
    slots: Mutex<Vec<Option<Tensor>>>,
    barrier: Barrier,
}

/// One rank of an in-process group. Create all ranks with [`ThreadGroup::new`]
/// and move one into each thread.
///
/// ```
/// use vicreg_core::collective::{Collective, ThreadGroup};
/// let ranks = ThreadGroup::new(2);
/// let handles: Vec<_> = ranks
///     .into_iter()
///     .map(|c| std::thread::spawn(move || {
///         let t = candle_core::Tensor::new(&[c.rank() as f32], &candle_core::Device::Cpu).unwrap();
///         c.all_reduce_sum(&t).unwrap().to_vec1::<f32>().unwrap()[0]
///     }))
///     .collect();
/// for h in handles { assert_eq!(h.join().unwrap(), 1.0); }
/// ```
#[derive(Clone)]
pub struct ThreadGroup {
    rank: usize,
    world: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    /// `world_size` connected ranks, rank `i` at index `i`.
    pub fn new(world_size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            slots: Mutex::new(vec![None; world_size]),
            barrier: Barrier::new(world_size),
        });
        (0..world_size)
            .map(|rank| ThreadGroup {
                rank,
                world: world_size,
                shared: shared.clone(),
            })
            .collect()
    }

    /// Every rank's tensor, in rank order.
    fn exchange(&self, t: &Tensor) -> Result<Vec<Tensor>> {
        {
            let mut slots = self
                .shared
                .slots
                .lock()
                .map_err(|_| Error::Collective("a rank panicked".into()))?;
            slots[self.rank] = Some(t.clone());
        }
        self.shared.barrier.wait();
        let all: Vec<Tensor> = {
            let slots = self
                .shared
                .slots
                .lock()
                .map_err(|_| Error::Collective("a rank panicked".into()))?;
            slots
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.clone()
                        .ok_or_else(|| Error::Collective(format!("rank {i} sent nothing")))
                })
                .collect::<Result<_>>()?
        };
        // Nobody may overwrite a slot before everyone has read this round.
        self.shared.barrier.wait();
        for (i, x) in all.iter().enumerate() {
            if x.dims() != t.dims() {
                return Err(Error::Collective(format!(
                    "rank {i} sent shape {:?}, rank {} sent {:?}",
                    x.dims(),
                    self.rank,
                    t.dims()
                )));
            }
        }
        Ok(all)
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let all = self.exchange(&t.detach())?;
        Ok(Tensor::cat(&all, 0)?)
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let all = self.exchange(&t.detach())?;
        // Same summation order on every rank, so every rank gets identical bits.
        let mut acc = all[0].clone();
        for x in &all[1..] {
            acc = (acc + x)?;
        }
        Ok(acc)
    }
    fn broadcast(&self, t: &Tensor) -> Result<Tensor> {
        let all = self.exchange(&t.detach())?;
        Ok(all[0].clone())
    }
    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

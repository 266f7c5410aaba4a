//! Two tables whose row `i` describes the same sample (`a.csv` and `b.csv`
//! of a folder), and their pretraining batches: seeded, sharded over ranks,
//! the same on every run with the same seed.

use std::path::Path;

use candle_core::{Device, Tensor};
use vicreg_core::engine::{BatchSource, EpochIter, PairBatch};
use vicreg_core::SeededRng;

use crate::table::{read_csv, Table};
use crate::{Error, Result};

/// The two tables of a folder: `dir/a.csv` (branch A) and `dir/b.csv` (branch B).
#[derive(Clone, Debug, PartialEq)]
pub struct PairedTables {
    /// Branch A's rows.
    pub a: Table,
    /// Branch B's rows (row `i` describes the same sample as `a`'s row `i`).
    pub b: Table,
}

impl PairedTables {
    /// Reads `dir/a.csv` and `dir/b.csv` (see [`read_csv`]); they must have
    /// the same number of rows.
    pub fn read(dir: &Path) -> Result<Self> {
        let a = read_csv(&dir.join("a.csv"))?;
        let b = read_csv(&dir.join("b.csv"))?;
        if a.rows != b.rows {
            return Err(Error::Layout(format!(
                "{}: a.csv has {} rows, b.csv {}: row i of one must describe row i of the other",
                dir.display(),
                a.rows,
                b.rows
            )));
        }
        Ok(Self { a, b })
    }

    /// The pretraining batches of one rank: each epoch draws the permutation
    /// `SeededRng::derive(seed, &[epoch])` of the rows and cuts it into
    /// `rows / batch` global batches (the rest is dropped); this rank gets
    /// rows `rank * micro .. (rank + 1) * micro` of each, as two
    /// `(micro, cols)` f32 tensors on `device`.
    pub fn batches<'a>(
        &'a self,
        seed: u64,
        batch: usize,
        (micro, rank): (usize, usize),
        device: &'a Device,
    ) -> Result<TableBatches<'a>> {
        let per_epoch = self.a.rows.checked_div(batch).unwrap_or(0);
        if per_epoch == 0 || (rank + 1) * micro > batch {
            return Err(Error::Config(format!(
                "{} rows make no full batch of {batch} (rank {rank} takes {micro} of each); lower --batch-size",
                self.a.rows
            )));
        }
        Ok(TableBatches {
            tables: self,
            seed,
            batch,
            micro,
            rank,
            per_epoch,
            device,
            order: (usize::MAX, Vec::new()),
        })
    }
}

/// The batches of [`PairedTables::batches`].
pub struct TableBatches<'a> {
    tables: &'a PairedTables,
    seed: u64,
    batch: usize,
    micro: usize,
    rank: usize,
    per_epoch: usize,
    device: &'a Device,
    /// The epoch whose permutation is cached, and the permutation.
    order: (usize, Vec<usize>),
}

impl TableBatches<'_> {
    fn make(&mut self, epoch: usize, i: usize) -> vicreg_core::Result<PairBatch<Tensor, Tensor>> {
        if self.order.0 != epoch {
            let perm =
                SeededRng::derive(self.seed, &[epoch as u64]).permutation(self.tables.a.rows);
            self.order = (epoch, perm);
        }
        let idx = &self.order.1[i * self.batch + self.rank * self.micro..][..self.micro];
        let rows = |t: &Table| t.gather(idx, self.device);
        Ok(PairBatch::new(
            rows(&self.tables.a)?,
            rows(&self.tables.b)?,
            self.micro,
        ))
    }
}

impl BatchSource<Tensor, Tensor> for TableBatches<'_> {
    fn batches_per_epoch(&self) -> usize {
        self.per_epoch
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> vicreg_core::Result<EpochIter<'_, Tensor, Tensor>> {
        let n = self.per_epoch;
        Ok(Box::new(
            (start..n).map(move |i| self.make(epoch, i).map(|b| (epoch, i, b))),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(rows: usize) -> PairedTables {
        let t = |k: f32| Table {
            rows,
            cols: 1,
            values: (0..rows).map(|r| k * r as f32).collect(),
        };
        PairedTables {
            a: t(1.0),
            b: t(-1.0),
        }
    }

    #[test]
    fn ranks_share_each_epochs_seeded_permutation_and_rows_stay_paired() {
        let t = tables(10);
        let cpu = Device::Cpu;
        let mut seen = Vec::new();
        for rank in 0..2 {
            let mut src = t.batches(7, 4, (2, rank), &cpu).unwrap();
            assert_eq!(src.batches_per_epoch(), 2);
            let rows: Vec<Vec<f32>> = src
                .epoch(3, 0)
                .unwrap()
                .map(|b| {
                    let (_, _, b) = b.unwrap();
                    let a = b.a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    let bb = b.b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    assert_eq!(a.iter().map(|v| -v).collect::<Vec<_>>(), bb);
                    a
                })
                .collect();
            seen.push(rows);
        }
        let perm = SeededRng::derive(7, &[3]).permutation(10);
        for (i, global) in perm.chunks(4).take(2).enumerate() {
            let want: Vec<f32> = global.iter().map(|&r| r as f32).collect();
            assert_eq!([seen[0][i].clone(), seen[1][i].clone()].concat(), want);
        }
        let e = t.batches(7, 11, (11, 0), &cpu).err().unwrap().to_string();
        assert!(e.contains("no full batch"), "{e}");
    }

    #[test]
    fn tables_of_different_lengths_are_refused_naming_the_folder() {
        let d = std::env::temp_dir().join(format!("paired-tables-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.csv"), "1,2\n3,4\n").unwrap();
        std::fs::write(d.join("b.csv"), "5\n").unwrap();
        let e = PairedTables::read(&d).unwrap_err().to_string();
        assert!(e.contains("a.csv has 2 rows, b.csv 1"), "{e}");
        std::fs::write(d.join("b.csv"), "5\n6\n").unwrap();
        assert_eq!(PairedTables::read(&d).unwrap().b.rows, 2);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

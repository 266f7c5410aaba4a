//! Built-in paired tables: two CSV files whose row `i` describes the same
//! thing through two different views (the tabular example's demo data).

use std::path::Path;

use vicreg_core::SeededRng;

use crate::{Error, Result};

/// Writes `rows` synthetic row pairs into `dir/a.csv` and `dir/b.csv`: each
/// row is a 16-d latent seen through two different random linear maps
/// (24 columns each) plus noise, so that the two tables share the latent.
pub fn write_paired_tables(dir: &Path, rows: usize, seed: u64) -> Result<()> {
    const LATENT: usize = 16;
    const COLS: usize = 24;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rng = SeededRng::new(seed);
    let mix: Vec<Vec<f64>> = (0..2)
        .map(|_| (0..COLS * LATENT).map(|_| rng.normal()).collect())
        .collect();
    let mut text = [String::new(), String::new()];
    for _ in 0..rows {
        let z: Vec<f64> = (0..LATENT).map(|_| rng.normal()).collect();
        for (t, m) in text.iter_mut().zip(&mix) {
            let row: Vec<String> = (0..COLS)
                .map(|c| {
                    let v: f64 = (0..LATENT).map(|k| m[c * LATENT + k] * z[k]).sum();
                    format!("{:.5}", v + 0.1 * rng.normal())
                })
                .collect();
            t.push_str(&row.join(","));
            t.push('\n');
        }
    }
    for (name, t) in ["a.csv", "b.csv"].iter().zip(text) {
        let p = dir.join(name);
        std::fs::write(&p, t).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tables_of_the_same_rows_reproducible() {
        let dir = std::env::temp_dir().join(format!("synth-tables-{}", std::process::id()));
        write_paired_tables(&dir, 10, 3).unwrap();
        let a = crate::table::read_csv(&dir.join("a.csv")).unwrap();
        let b = crate::table::read_csv(&dir.join("b.csv")).unwrap();
        assert_eq!((a.rows, a.cols, b.rows, b.cols), (10, 24, 10, 24));
        let first = std::fs::read(dir.join("a.csv")).unwrap();
        write_paired_tables(&dir, 10, 3).unwrap();
        assert_eq!(std::fs::read(dir.join("a.csv")).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

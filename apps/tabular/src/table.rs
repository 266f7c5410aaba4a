//! Two CSV tables whose row `i` describes the same thing (e.g. two sensors,
//! two feature sets of one patient), read into memory with bounds.

use std::path::Path;

use anyhow::{bail, Context, Result};
use vicreg_core::SeededRng;

/// Largest table file read.
const MAX_BYTES: u64 = 1 << 30;
/// Most columns of a table.
const MAX_COLUMNS: usize = 65_536;

/// A table of `rows x cols` finite numbers, row-major.
pub struct Table {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

/// Reads a CSV file of numbers (an optional first line of column names is
/// skipped); every row must have the first row's number of columns.
pub fn read_csv(path: &Path) -> Result<Table> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    if len > MAX_BYTES {
        bail!(
            "{}: {len} bytes, more than the 1 GiB a table may have",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: not a UTF-8 text file", path.display()))?;
    let (mut rows, mut cols, mut values) = (0, 0, Vec::new());
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() || (i == 0 && fields[0].parse::<f32>().is_err()) {
            continue; // blank line or header
        }
        if cols == 0 {
            cols = fields.len();
            if cols > MAX_COLUMNS {
                bail!(
                    "{}:{}: {cols} columns (at most {MAX_COLUMNS})",
                    path.display(),
                    i + 1
                );
            }
        } else if fields.len() != cols {
            bail!(
                "{}:{}: {} columns, the first row has {cols}",
                path.display(),
                i + 1,
                fields.len()
            );
        }
        for f in fields {
            match f.parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => bail!("{}:{}: {f:?} is not a finite number", path.display(), i + 1),
            }
        }
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no rows", path.display());
    }
    Ok(Table { rows, cols, values })
}

/// Writes `rows` synthetic row pairs into `dir/a.csv` and `dir/b.csv`: each
/// row is a 16-d latent seen through two different random linear maps
/// (24 columns each) plus noise, so that the two tables share the latent.
pub fn write_synthetic(dir: &Path, rows: usize, seed: u64) -> Result<()> {
    const LATENT: usize = 16;
    const COLS: usize = 24;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
        std::fs::write(&p, t).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

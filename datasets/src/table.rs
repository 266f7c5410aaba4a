//! Numeric tables in CSV files: one row per sample, one column per feature,
//! read into memory with bounds (file size, column count), every value a
//! finite number; errors name the file and line.

use std::path::Path;

use crate::{Error, Result};

/// Largest table file read.
pub const MAX_TABLE_BYTES: u64 = 1 << 30;
/// Most columns of a table.
pub const MAX_COLUMNS: usize = 65_536;

/// A table of `rows x cols` finite numbers, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Rows (samples).
    pub rows: usize,
    /// Columns (features).
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub values: Vec<f32>,
}

impl Table {
    /// The rows `idx` (each `< rows`), in that order, as a `(idx.len(), cols)`
    /// f32 tensor on `device`.
    pub fn gather(
        &self,
        idx: &[usize],
        device: &candle_core::Device,
    ) -> Result<candle_core::Tensor> {
        if let Some(&bad) = idx.iter().find(|&&r| r >= self.rows) {
            return Err(Error::Core(vicreg_core::Error::invalid(format!(
                "row {bad} of a table of {} rows",
                self.rows
            ))));
        }
        let v: Vec<f32> = idx
            .iter()
            .flat_map(|&r| {
                self.values[r * self.cols..(r + 1) * self.cols]
                    .iter()
                    .copied()
            })
            .collect();
        Ok(candle_core::Tensor::from_vec(
            v,
            (idx.len(), self.cols),
            device,
        )?)
    }
}

/// Reads a CSV file of numbers (an optional first line of column names is
/// skipped); every row must have the first row's number of columns.
pub fn read_csv(path: &Path) -> Result<Table> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_TABLE_BYTES {
        return Err(Error::Layout(format!(
            "{}: {len} bytes, more than the 1 GiB a table may have",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|_| Error::bad_file(path, "not a UTF-8 text file"))?;
    let (mut rows, mut cols, mut values) = (0, 0, Vec::new());
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() || (i == 0 && fields[0].parse::<f32>().is_err()) {
            continue; // blank line or header
        }
        if cols == 0 {
            cols = fields.len();
            if cols > MAX_COLUMNS {
                return Err(Error::Layout(format!(
                    "{}:{}: {cols} columns (at most {MAX_COLUMNS})",
                    path.display(),
                    i + 1
                )));
            }
        } else if fields.len() != cols {
            return Err(Error::Layout(format!(
                "{}:{}: {} columns, the first row has {cols}",
                path.display(),
                i + 1,
                fields.len()
            )));
        }
        for f in fields {
            match f.parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => {
                    return Err(Error::Layout(format!(
                        "{}:{}: {f:?} is not a finite number",
                        path.display(),
                        i + 1
                    )))
                }
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::Layout(format!("{}: no rows", path.display())));
    }
    Ok(Table { rows, cols, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn gather_picks_rows_in_order_and_refuses_a_row_past_the_end() {
        let t = Table {
            rows: 3,
            cols: 2,
            values: vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0],
        };
        let cpu = candle_core::Device::Cpu;
        let g = t.gather(&[2, 0, 2], &cpu).unwrap();
        assert_eq!(
            g.to_vec2::<f32>().unwrap(),
            vec![vec![20.0, 21.0], vec![0.0, 1.0], vec![20.0, 21.0]]
        );
        assert!(t
            .gather(&[3], &cpu)
            .unwrap_err()
            .to_string()
            .contains("row 3"));
    }

    #[test]
    fn header_and_blank_lines_are_skipped() {
        let p = write("ok.csv", "x,y\n1, 2\n\n3,4.5\n");
        let t = read_csv(&p).unwrap();
        assert_eq!((t.rows, t.cols, t.values), (2, 2, vec![1.0, 2.0, 3.0, 4.5]));
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        for (name, text, want) in [
            (
                "ragged.csv",
                "1,2\n3\n",
                "ragged.csv:2: 1 columns, the first row has 2",
            ),
            (
                "nan.csv",
                "1,2\n3,NaN\n",
                "nan.csv:2: \"NaN\" is not a finite number",
            ),
            (
                "word.csv",
                "1,2\n3,x\n",
                "word.csv:2: \"x\" is not a finite number",
            ),
            ("empty.csv", "a,b\n", "empty.csv: no rows"),
        ] {
            let e = read_csv(&write(name, text)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let missing = std::env::temp_dir().join("table-missing-file.csv");
        assert!(read_csv(&missing)
            .unwrap_err()
            .to_string()
            .contains("table-missing-file.csv"));
    }
}

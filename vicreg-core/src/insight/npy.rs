//! NumPy's `.npy` format (version 1.0) for `float32` matrices: what
//! `numpy.load` reads without any option.

use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Largest matrix read back (elements): 1 Gi floats, 4 GiB.
const MAX_ELEMENTS: usize = 1 << 30;

/// The bytes of a `.npy` file holding the row-major `(rows, cols)` matrix
/// `data` as little-endian `float32`.
pub fn npy_bytes(data: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(Error::invalid(format!(
            "npy: {} values do not form a ({rows}, {cols}) matrix",
            data.len()
        )));
    }
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes the `(rows, cols)` matrix `data` to `path` as `.npy` (crash-safe).
pub fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    crate::io::write_atomic(path, &npy_bytes(data, rows, cols)?)
}

/// Reads a 2-D little-endian `float32` C-order `.npy` file: `(values, rows, cols)`.
/// Anything else (another dtype, Fortran order, a truncated or oversized file)
/// is an error naming the file.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::bad_file(path, format!("not a float32 matrix .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("no NumPy magic"));
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("format version {v}"))),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad(&format!("header {}", header.trim())));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(&format!("shape ({shape})")))
        })
        .collect::<Result<_>>()?;
    let [rows, cols] = dims[..] else {
        return Err(bad(&format!("shape ({shape}) is not 2-D")));
    };
    let n = rows
        .checked_mul(cols)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| bad(&format!("shape ({shape}) is too large")))?;
    let body = &bytes[start + len..];
    if body.len() != n * 4 {
        return Err(bad(&format!(
            "{} data bytes for shape ({rows}, {cols})",
            body.len()
        )));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((data, rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_values_round_trip() {
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        let b = npy_bytes(&data, 2, 3).unwrap();
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(b.len(), 10 + hlen + 24);
        let dir = std::env::temp_dir().join(format!("npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.npy");
        write_npy(&p, &data, 2, 3).unwrap();
        assert_eq!(read_npy(&p).unwrap(), (data, 2, 3));
        assert!(npy_bytes(&[1.0; 5], 2, 3).is_err());
        std::fs::write(&p, &b[..b.len() - 1]).unwrap();
        assert!(read_npy(&p).unwrap_err().to_string().contains("m.npy"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

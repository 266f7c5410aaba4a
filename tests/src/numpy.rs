//! `.npy` files checked with NumPy itself where Python and NumPy are
//! installed (elsewhere the format is checked by `vicreg_core::insight::read_npy`).

use std::path::Path;
use std::process::Command;

/// Loads `path` with `numpy.load` and asserts shape `(rows, cols)`, dtype
/// float32 and the same values as `read_npy` (sum and first element). Prints
/// why and returns when `python3` or NumPy is missing.
pub fn check_npy_loads(path: &Path, rows: usize, cols: usize) {
    let script = "import sys, numpy as np\n\
                  a = np.load(sys.argv[1])\n\
                  print(a.shape[0], a.shape[1], a.dtype, repr(float(a.astype(np.float64).sum())), repr(float(a[0, 0])))";
    let out = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("NumPy check of {} not run: python3: {e}", path.display());
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named 'numpy'") {
        eprintln!(
            "NumPy check of {} not run: NumPy is not installed",
            path.display()
        );
        return;
    }
    assert!(
        out.status.success(),
        "numpy.load({}) failed:\n{stderr}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f.len(), 5, "{text}");
    assert_eq!(
        (f[0], f[1], f[2]),
        (
            rows.to_string().as_str(),
            cols.to_string().as_str(),
            "float32"
        )
    );
    let (data, _, _) = vicreg_core::insight::read_npy(path).expect("read_npy");
    let sum: f64 = data.iter().map(|&v| v as f64).sum();
    let np_sum: f64 = f[3].parse().expect("sum");
    assert!(
        (sum - np_sum).abs() <= 1e-6 * sum.abs().max(1.0),
        "sum {sum} vs numpy {np_sum}"
    );
    assert_eq!(f[4].parse::<f32>().expect("first"), data[0]);
}

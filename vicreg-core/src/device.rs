//! Device selection from a command-line string.

use candle_core::Device;

use crate::{Error, Result};

/// Parses `cpu` or `cuda:N` (`cuda` = `cuda:0`, case-insensitive) and opens the device.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let bad = || Error::config(format!("bad device {s:?}: expected cpu or cuda:N"));
    let ordinal = match s.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(bad)?,
        None => return Err(bad()),
    };
    Device::new_cuda(ordinal).map_err(|e| {
        Error::config(format!(
            "cannot open cuda:{ordinal} (was this binary built with `--features cuda`?): {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_bad_names() {
        assert!(parse_device(" CPU ").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cuda0"] {
            let err = parse_device(bad).unwrap_err().to_string();
            assert!(err.contains("expected cpu or cuda:N"), "{err}");
        }
    }
}

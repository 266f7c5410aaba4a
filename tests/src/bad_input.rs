//! The harness of the apps' `tests/bad_inputs.rs` suites: run a real binary on
//! a malformed input and check that it fails the way a user needs: a non-zero
//! exit, no panic, the offending file named, and within a time limit (a hang
//! is killed and reported as a failure).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) run printed.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal or by the time limit).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Whether the time limit ended it.
    pub timed_out: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd` with stdin closed, killing it after `limit`.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    Outcome {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// Runs `cmd` on a bad input and asserts a clean refusal: finished within
/// `limit`, exit code non-zero and not a crash (101 is Rust's panic exit,
/// none is a signal such as an abort), no `panicked at` in the output, and
/// every string of `names` in stderr (the offending file and the problem).
/// Returns stderr for further checks.
pub fn expect_refusal(case: &str, cmd: &mut Command, names: &[&str], limit: Duration) -> String {
    let o = run_with_limit(cmd, limit);
    let show = || {
        format!(
            "case {case}: {cmd:?}\nexit {:?} after {:.1} s\nstdout:\n{}\nstderr:\n{}",
            o.code,
            o.elapsed.as_secs_f64(),
            o.stdout,
            o.stderr
        )
    };
    assert!(!o.timed_out, "hung (killed after {limit:?}): {}", show());
    assert!(
        !o.stderr.contains("panicked at") && !o.stdout.contains("panicked at"),
        "panicked: {}",
        show()
    );
    match o.code {
        Some(0) => panic!("accepted a bad input: {}", show()),
        Some(101) | None => panic!("crashed instead of a clear error: {}", show()),
        Some(_) => {}
    }
    for n in names {
        assert!(
            o.stderr.contains(n),
            "stderr does not name {n:?}: {}",
            show()
        );
    }
    o.stderr
}

/// A fresh, empty temporary folder `<tmp>/<prefix>-<name>-<pid>`. Folders of
/// the same test left by earlier test processes that are no longer running
/// (a failed test keeps its folder for inspection; app runs write checkpoints
/// of 100+ MB) are removed first, so repeated runs do not fill the disk.
pub fn fresh_dir(prefix: &str, name: &str) -> PathBuf {
    remove_stale(&format!("{prefix}-{name}-"));
    let d = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Removes `<tmp>/<stem><pid>` folders whose process has ended (Linux: no
/// `/proc/<pid>`; elsewhere nothing is removed).
fn remove_stale(stem: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(stem))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Every file under `dir` with its bytes, sorted by path (to prove a failed
/// run left a run directory untouched).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A PNG of `w` x `h` RGB pixels (all grey), for size-limit cases.
pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    // Stored (uncompressed) deflate blocks keep this independent of any codec crate.
    let row = 1 + 3 * w as usize;
    let mut raw = Vec::with_capacity(row * h as usize);
    for _ in 0..h {
        raw.push(0u8);
        raw.extend(std::iter::repeat_n(128u8, 3 * w as usize));
    }
    let mut z = vec![0x78, 0x01];
    let mut chunks = raw.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        z.extend([1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let n = c.len() as u16;
        z.push(u8::from(last));
        z.extend(n.to_le_bytes());
        z.extend((!n).to_le_bytes());
        z.extend_from_slice(c);
    }
    z.extend(adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    for (kind, data) in [(*b"IHDR", ihdr), (*b"IDAT", z), (*b"IEND", Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut crc_in = kind.to_vec();
        crc_in.extend(&data);
        png.extend(kind);
        png.extend(&data);
        png.extend(crc32(&crc_in).to_be_bytes());
    }
    png
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &x in data {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A 16-bit PCM mono wav header + `samples` zero samples, claiming `rate` Hz.
pub fn wav_bytes(rate: u32, samples: usize) -> Vec<u8> {
    let data_len = (2 * samples) as u32;
    let mut w = Vec::new();
    w.extend(b"RIFF");
    w.extend((36 + data_len).to_le_bytes());
    w.extend(b"WAVEfmt ");
    w.extend(16u32.to_le_bytes());
    w.extend(1u16.to_le_bytes()); // PCM
    w.extend(1u16.to_le_bytes()); // mono
    w.extend(rate.to_le_bytes());
    w.extend(rate.wrapping_mul(2).to_le_bytes());
    w.extend(2u16.to_le_bytes());
    w.extend(16u16.to_le_bytes());
    w.extend(b"data");
    w.extend(data_len.to_le_bytes());
    w.resize(w.len() + 2 * samples, 0);
    w
}

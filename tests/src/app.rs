//! Helpers of the apps' end-to-end tests (`apps/*/tests/`): running the real
//! binary, scratch folders, and the checks every app makes of its flags and
//! config keys (refused out of range, naming the flag or the key and file).
//!
//! A test file names its binary once:
//!
//! ```ignore
//! vicreg_tests::app_binary!(env!("CARGO_BIN_EXE_imagenet"), "imagenet-cli");
//! // now `bin()`, `tmp(name)` and `refused(&args)` exist in this file
//! ```

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Defines `bin()` (a `Command` of the binary), `tmp(name)` (a fresh scratch
/// folder `<temp>/<tag>-<name>-<pid>`) and `refused(&args)` (see [`refused`])
/// in the calling test file.
#[macro_export]
macro_rules! app_binary {
    ($exe:expr, $tag:expr) => {
        #[allow(dead_code)]
        fn bin() -> std::process::Command {
            std::process::Command::new($exe)
        }
        #[allow(dead_code)]
        fn tmp(name: &str) -> std::path::PathBuf {
            $crate::app::scratch($tag, name)
        }
        #[allow(dead_code)]
        fn refused(args: &[&str]) -> String {
            $crate::app::refused(bin().args(args))
        }
    };
}

/// A fresh, empty folder `<temp>/<tag>-<name>-<pid>` (removed first if present).
pub use crate::bad_input::fresh_dir as scratch;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// Runs `cmd`; panics with both streams unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "command failed: {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// [`run`], returning (stdout, stderr) as text.
pub fn run_text(cmd: &mut Command) -> (String, String) {
    let out = run(cmd);
    (text(&out.stdout), text(&out.stderr))
}

/// [`run`], returning stdout as text.
pub fn run_stdout(cmd: &mut Command) -> String {
    run_text(cmd).0
}

/// Runs `cmd`; asserts that it fails and returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected failure: {cmd:?}");
    text(&out.stderr)
}

/// Runs `cmd`; asserts a failure that is not a panic (no "panicked at", no
/// exit code 101) within 60 s and returns stderr.
pub fn refused(cmd: &mut Command) -> String {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{cmd:?} too slow"
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "accepted: {cmd:?}\n{err}");
    assert!(!err.contains("panicked at"), "panic on {cmd:?}:\n{err}");
    assert_ne!(out.status.code(), Some(101), "{cmd:?}: {err}");
    err
}

/// Runs `cmd` with piped streams; panics if it is still running after `secs`
/// seconds (a hang), else returns its output whatever its status.
pub fn run_within(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            panic!("{cmd:?} still running after {secs} s (hang)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Asserts that the run directory `exp`'s `config.toml` (the resolved
/// configuration an app writes) holds every line of `lines`.
pub fn assert_config_lines(exp: &Path, lines: &[&str]) {
    let path = exp.join("config.toml");
    let written =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for line in lines {
        assert!(written.contains(line), "missing {line:?}:\n{written}");
    }
}

/// A JSON file's value (panics naming the file).
pub fn json(p: &Path) -> serde_json::Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Copies the folder `from` into `to` (created), sub-folders included.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// One out-of-range flag: the subcommand and its required arguments, the flag, the value.
pub type FlagRow<'a> = (&'a [&'a str], &'a str, &'a str);

/// Each row, given as `--flag=value` after its base arguments, is refused at
/// parse time by clap, naming the flag.
pub fn assert_flags_refused(bin: impl Fn() -> Command, rows: &[FlagRow<'_>]) {
    for (base, flag, value) in rows {
        let arg = format!("{flag}={value}");
        let mut args = base.to_vec();
        args.push(&arg);
        let err = refused(bin().args(&args));
        assert!(
            err.contains(&format!("'{flag} <")) && err.contains("invalid value"),
            "{args:?}: the flag is not named:\n{err}"
        );
    }
}

/// Out-of-range values of the flags every app's `pretrain` has (the recipe
/// layer's run, data and loss flags), after `pretrain` (the subcommand and
/// its required arguments).
pub fn recipe_flag_rows<'a>(pretrain: &'a [&'a str]) -> Vec<FlagRow<'a>> {
    [
        ("--epochs", "0"),
        ("--epochs", "abc"),
        ("--batch-size", "0"),
        ("--wd", "-1"),
        ("--wd", "inf"),
        ("--warmup-epochs", "1000000"),
        ("--num-workers", "100000"),
        ("--log-every", "0"),
        ("--checkpoint-every", "99999999999"),
        ("--clip-grad", "0"),
        ("--clip-grad", "-1"),
        ("--barlow-lambda", "nan"),
        ("--temperature", "0"),
        ("--sim-coeff", "nan"),
        ("--collective-timeout", "nan"),
    ]
    .into_iter()
    .map(|(flag, value)| (pretrain, flag, value))
    .collect()
}

/// Out-of-range values of the config keys every app's `pretrain --config`
/// has (`(toml line, key)`), checked by [`assert_config_keys_refused`] with
/// the app's own rows.
pub const RECIPE_KEY_ROWS: &[(&str, &str)] = &[
    ("epochs = 0", "epochs"),
    ("batch-size = 0", "batch-size"),
    ("wd = -1.0", "wd"),
    ("num-workers = 100000", "num-workers"),
    ("log-every = 0", "log-every"),
    ("clip-grad = -1.0", "clip-grad"),
    ("temperature = nan", "temperature"),
    ("collective-timeout = -1.0", "collective-timeout"),
    ("warmup-epochs = 100000000", "warmup-epochs"),
];

/// `--help` of `args` states every one of `wants`.
pub fn assert_help_states(bin: impl Fn() -> Command, args: &[&str], wants: &[&str]) {
    let out = bin().args(args).arg("--help").output().unwrap();
    let s = text(&out.stdout);
    for want in wants {
        assert!(s.contains(want), "help lacks {want}:\n{s}");
    }
}

/// Each `(toml line, key)` row of `rows` and of [`RECIPE_KEY_ROWS`], written
/// alone to a config file in `dir`, is refused by `check-config --config` and
/// by `pretrain --config`, naming the key and the file; the `good` config is
/// accepted by `check-config`.
pub fn assert_config_keys_refused(
    bin: impl Fn() -> Command,
    dir: &Path,
    rows: &[(&str, &str)],
    good: &str,
) {
    for (i, (line, key)) in rows.iter().chain(RECIPE_KEY_ROWS).enumerate() {
        let file = dir.join(format!("bad{i}.toml"));
        std::fs::write(&file, format!("{line}\n")).unwrap();
        let f = file.to_str().unwrap();
        for args in [
            vec!["check-config", "--config", f],
            vec!["pretrain", "--config", f, "--data-dir", "/nonexistent-data"],
        ] {
            let err = refused(bin().args(&args));
            assert!(
                err.contains(&format!("`{key}`")),
                "{args:?}: key not named:\n{err}"
            );
            assert!(err.contains(f), "{args:?}: file not named:\n{err}");
        }
    }
    let file = dir.join("good.toml");
    std::fs::write(&file, good).unwrap();
    let ok = run_stdout(bin().args(["check-config", "--config"]).arg(&file));
    assert!(ok.contains(": ok"), "{ok}");
}

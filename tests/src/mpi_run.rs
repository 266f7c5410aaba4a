//! Running an app under `mpirun` from a test and comparing the weights that
//! runs exported: the shared part of the apps' `tests/mpi.rs` suites (cargo
//! feature `mpi`; they need Open MPI's `mpirun` on the PATH).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

/// How a bounded run ended.
pub struct Finished {
    /// Exit status 0.
    pub success: bool,
    /// stdout and stderr of the job, interleaved.
    pub output: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs `cmd` to completion; kills it and panics (a hang) after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Finished {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let log = std::env::temp_dir().join(format!(
        "vicreg-mpi-run-{}-{}.log",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::SeqCst)
    ));
    let file = std::fs::File::create(&log).unwrap();
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (is Open MPI's mpirun installed?)"));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {} s (a hang); output:\n{}",
                limit.as_secs(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    Finished {
        success: status.success(),
        output,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Runs `cmd` within `limit` and panics, with its output, unless it succeeds.
pub fn must_succeed(cmd: Command, limit: Duration, what: &str) -> Finished {
    let f = run_bounded(cmd, limit);
    assert!(f.success, "{what} failed; output:\n{}", f.output);
    f
}

/// `bin args` alone, one compute thread.
pub fn single(bin: &str, args: &[String]) -> Command {
    let mut c = Command::new(bin);
    c.args(args).env("RAYON_NUM_THREADS", "1");
    c
}

/// `mpirun -np <np> bin args`, allowed as root and on more ranks than cores,
/// one compute thread per rank, with `env` added.
pub fn mpirun(np: usize, bin: &str, args: &[String], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-np", &np.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("RAYON_NUM_THREADS", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.arg(bin).args(args);
    c
}

/// The tensors of the `<branch>-encoder.safetensors` files of run `exp`,
/// names prefixed by `<branch>.`.
pub fn encoder_weights(exp: &Path, branches: &[&str]) -> HashMap<String, Tensor> {
    let mut all = HashMap::new();
    for branch in branches {
        let path = exp.join(format!("{branch}-encoder.safetensors"));
        let w = candle_core::safetensors::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        all.extend(w.into_iter().map(|(k, v)| (format!("{branch}.{k}"), v)));
    }
    all
}

/// The largest `max |a - b| / max(max |a|, 1e-3)` over the tensors of `a`
/// (each must be in `b`), and the tensor where it is reached.
pub fn max_rel_diff(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> (f64, String) {
    assert_eq!(a.len(), b.len(), "different tensor sets");
    let mut worst = (0.0, String::new());
    let max_abs = |t: &Tensor| -> f64 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    for (name, x) in a {
        let y = b
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing in the second run"));
        let x = x.to_dtype(DType::F64).unwrap();
        let y = y.to_dtype(DType::F64).unwrap();
        let d = max_abs(&(&x - &y).unwrap()) / max_abs(&x).max(1e-3);
        if d > worst.0 {
            worst = (d, name.clone());
        }
    }
    worst
}

/// `args` followed by `--data-dir data --exp-dir exp`: the `pretrain`
/// arguments of a test run.
pub fn with_dirs(args: &[&str], data: &Path, exp: &Path) -> Vec<String> {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.extend(["--data-dir".into(), data.display().to_string()]);
    a.extend(["--exp-dir".into(), exp.display().to_string()]);
    a
}

/// The check every app's `tests/mpi.rs` makes: the app alone on `one` and
/// under `mpirun -np 2` on `two` (the global batch split in two, synchronized
/// BatchNorm by default) export encoders `branches` within 1e-4 (relative);
/// `two`'s config records `sync-bn = true`. With `--sync-bn false` on
/// `local`, the encoders `bn_branches` (those with BatchNorms) must differ
/// by more than 1e-3, so that the comparison can fail. `args(dir)` are the
/// `pretrain` arguments of a run into `dir`.
pub fn check_two_ranks_equal_one(
    bin: &str,
    args: impl Fn(&Path) -> Vec<String>,
    [one, two, local]: [&Path; 3],
    branches: &[&str],
    bn_branches: &[&str],
) {
    let limit = Duration::from_secs(300);
    must_succeed(single(bin, &args(one)), limit, "one process");
    let f = must_succeed(mpirun(2, bin, &args(two), &[]), limit, "mpirun -np 2");
    println!("mpirun -np 2 took {:.1} s", f.seconds);
    let (d, name) = max_rel_diff(
        &encoder_weights(one, branches),
        &encoder_weights(two, branches),
    );
    println!("2 ranks vs 1 process: max relative weight difference {d:.2e} ({name})");
    assert!(
        d < 1e-4,
        "2 ranks vs 1 process: {name} differs by {d:.3e} (relative)"
    );
    let cfg = std::fs::read_to_string(two.join("config.toml")).unwrap();
    assert!(cfg.contains("sync-bn = true"), "{cfg}");

    let mut unsynced = args(local);
    unsynced.extend(["--sync-bn".to_string(), "false".to_string()]);
    must_succeed(
        mpirun(2, bin, &unsynced, &[]),
        limit,
        "mpirun without sync-bn",
    );
    let (d, _) = max_rel_diff(
        &encoder_weights(one, bn_branches),
        &encoder_weights(local, bn_branches),
    );
    println!("2 ranks without sync-bn vs 1 process: {d:.2e}");
    assert!(
        d > 1e-3,
        "without sync-bn the weights should differ, max relative diff {d:.3e}"
    );
}

/// Under `mpirun -np 2`, a global `--batch-size 7` is refused before any
/// training, naming the flag; `args(dir)` as for [`check_two_ranks_equal_one`].
pub fn check_odd_batch_is_refused(bin: &str, args: impl Fn(&Path) -> Vec<String>, exp: &Path) {
    let mut a = args(exp);
    let i = a
        .iter()
        .position(|x| x == "--batch-size")
        .expect("the arguments set --batch-size");
    a[i + 1] = "7".into();
    let f = run_bounded(mpirun(2, bin, &a, &[]), Duration::from_secs(120));
    assert!(
        !f.success,
        "batch 7 over 2 ranks should fail; output:\n{}",
        f.output
    );
    assert!(f.output.contains("batch-size 7"), "{}", f.output);
    assert!(!exp.join("checkpoint.json").exists());
}

/// The data set of a test binary, generated once into `<temp>/<tag>-<pid>`
/// (emptied first) by `generate` and shared by every test of the binary.
pub fn data_once(
    cell: &'static OnceLock<PathBuf>,
    tag: &str,
    generate: impl FnOnce(&Path),
) -> &'static Path {
    cell.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        generate(&d);
        d
    })
}

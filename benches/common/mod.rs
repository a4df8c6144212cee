//! What the replay benchmarks share: the repository, settings from the environment, one timed
//! run of `grpctap replay --stats`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One run of `grpctap replay --stats` on `file` with `args`: (seconds, MB/s, packets, calls,
/// peak RSS MiB).
pub(crate) fn grpctap(file: &Path, args: &[&std::ffi::OsStr]) -> (f64, f64, f64, f64, f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--stats", "--summary-json", "/dev/null"])
        .args(args)
        .arg(file)
        .stdout(Stdio::null())
        .output()
        .expect("run grpctap");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("MB/s"))
        .unwrap_or_else(|| panic!("no --stats line: {err}"));
    // "grpctap: N packets, X MB in T s: R MB/s, P packets/s, C calls; peak RSS M MiB"
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty() && s.chars().any(|c| c.is_ascii_digit()))
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[2], nums[3], nums[0], nums[5], nums[6])
}

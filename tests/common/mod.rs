//! Helpers shared by the integration tests: paths and running the real binary.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub(crate) mod craft;
pub(crate) mod tmux;
pub(crate) mod truth;

/// The repository root.
pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// testdata/captures.
pub(crate) fn captures() -> PathBuf {
    root().join("testdata/captures")
}

/// Every capture file in testdata/captures (pcap, pcapng, gzipped), sorted.
pub(crate) fn capture_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(captures())
        .expect("captures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".pcap.gz")
        })
        .collect();
    v.sort();
    v
}

/// Runs `grpctap replay ARGS... testdata/captures/CAPTURE`, requires success, returns stdout.
pub(crate) fn replay_stdout(args: &[&str], capture: &str) -> String {
    replay_file_stdout(args, &captures().join(capture))
}

/// The same for a capture anywhere.
pub(crate) fn replay_file_stdout(args: &[&str], file: &Path) -> String {
    replay_files(args, &[file]).0
}

/// Runs `grpctap replay ARGS... FILES...` (no OTLP endpoint from the environment), requires
/// success, returns stdout and stderr.
pub(crate) fn replay_files<P: AsRef<std::ffi::OsStr>>(
    args: &[&str],
    files: &[P],
) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .current_dir(root())
        .arg("replay")
        .args(args)
        .args(files)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("run grpctap");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (String::from_utf8(out.stdout).expect("utf-8"), err)
}

/// The same, stdout read as JSON Lines.
pub(crate) fn replay_lines(args: &[&str], capture: &str) -> Vec<Value> {
    json_lines(&replay_stdout(args, capture))
}

/// JSON Lines, parsed.
pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The `x-call-id` request metadata a test client sent (needs `--metadata`).
pub(crate) fn call_id(c: &Value) -> Option<u64> {
    c["metadata"]["request"]
        .as_array()?
        .iter()
        .find(|kv| kv[0] == "x-call-id")?[1]
        .as_str()?
        .parse()
        .ok()
}

/// The packets of `capture` from the `skip`-th on, as a pcapng in `dir`; `None` when the file
/// mixes link types (one pcapng interface is written).
pub(crate) fn cut(capture: &Path, skip: u64, dir: &Path) -> Option<PathBuf> {
    let out = dir.join(format!(
        "{}-from-{skip}.pcapng",
        capture.file_name()?.to_string_lossy()
    ));
    let mut src = capture::FileSource::open(capture, 16 << 20).expect("open");
    let mut w: Option<(u32, capture::write::PcapngWriter)> = None;
    let mut n = 0u64;
    while let Some(p) = src.next_packet().expect("read") {
        n += 1;
        if n <= skip {
            continue;
        }
        let (lt, writer) = match &mut w {
            Some(x) => x,
            None => {
                let writer = capture::write::PcapngWriter::create(
                    &out,
                    p.linktype,
                    262_144,
                    capture::write::Rotate::default(),
                )
                .ok()?;
                w.insert((p.linktype, writer))
            }
        };
        if p.linktype != *lt {
            return None;
        }
        writer.write(&p).expect("write");
    }
    w?.1.flush().ok()?;
    Some(out)
}

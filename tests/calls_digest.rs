//! The `--calls` output of every capture in testdata/, in the modes that exercise the whole
//! call path (metadata; bodies decoded with and without a schema), pinned by SHA-256.
//!
//! A change to grpctap's internals must leave these bytes alone. A change that is meant to
//! alter call records (a new field, a corrected status) updates `calls_digests.txt` in the same
//! commit, with the reason in its message: run with `GRPCTAP_UPDATE_DIGESTS=1` to rewrite it.

use sha2::{Digest, Sha256};

mod common;

/// Flag sets, named as in calls_digests.txt.
const MODES: [(&str, &[&str]); 3] = [
    ("metadata", &["--calls", "-", "--metadata"]),
    (
        "bodies-schema",
        &[
            "--calls",
            "-",
            "--metadata",
            "--bodies",
            "--proto-path",
            "testdata/proto",
        ],
    ),
    ("bodies-raw", &["--calls", "-", "--bodies"]),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn calls_output_of_every_capture_is_unchanged() {
    let mut files: Vec<String> = std::fs::read_dir(common::captures())
        .expect("captures")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".pcap.gz"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "captures: {files:?}");
    let mut got = String::new();
    for f in &files {
        // TLS captures are decrypted with the key log their client wrote.
        let stem = f.trim_end_matches(".gz").trim_end_matches(".pcap");
        let keylog = common::captures().join(format!("{}.keylog", stem.trim_end_matches("-lo")));
        let tls: Vec<std::ffi::OsString> = if keylog.exists() {
            vec!["--tls-keylog".into(), keylog.into()]
        } else {
            Vec::new()
        };
        for (mode, args) in MODES {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_grpctap"))
                .current_dir(common::root())
                .arg("replay")
                .args(args)
                .args(&tls)
                .arg(common::captures().join(f))
                .output()
                .expect("run grpctap");
            assert!(
                out.status.success(),
                "{f} {mode}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.stdout.is_empty(), "{f} {mode}: no calls");
            got.push_str(&format!(
                "{f} {mode} {}\n",
                hex(&Sha256::digest(&out.stdout))
            ));
        }
    }
    let path = common::root().join("tests/calls_digests.txt");
    if std::env::var_os("GRPCTAP_UPDATE_DIGESTS").is_some() {
        std::fs::write(&path, &got).expect("write digests");
    }
    let want = std::fs::read_to_string(&path).expect("tests/calls_digests.txt");
    let key = |l: &str| l.rsplit_once(' ').map(|(k, _)| k.to_owned());
    let got: std::collections::BTreeMap<_, _> =
        got.lines().map(|l| (key(l), l.to_owned())).collect();
    let mut missing = Vec::new();
    for w in want.lines() {
        match got.get(&key(w)) {
            Some(g) => assert_eq!(w, g, "--calls output changed"),
            None => missing.push(w),
        }
    }
    assert!(missing.is_empty(), "captures gone: {missing:?}");
    let known: std::collections::BTreeSet<_> = want.lines().map(key).collect();
    let new: Vec<_> = got.keys().filter(|k| !known.contains(*k)).collect();
    assert!(
        new.is_empty(),
        "captures without a digest (GRPCTAP_UPDATE_DIGESTS=1): {new:?}"
    );
}

//! Joining mid-way, as a tap started on a running host does: every capture in testdata/ is
//! replayed whole and from thirteen cut points on (a quarter, a half, three quarters of its
//! packets and others between) (dropping the
//! first packets of a real capture is a faithful late start), and the calls are judged against
//! what the client logged. No name, no status, exact or inferred, is wrong; and a cut replay never names a call or gives it
//! an exact status other than the whole replay does.
//!
//! `cargo test --release --test fidelity -- --ignored --nocapture` prints the table of
//! docs/fidelity.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::truth::{self, Score};

/// Fractions of the packets dropped from the start, for the report.
const REPORT_CUTS: [f64; 4] = [0.0, 0.25, 0.5, 0.75];

/// And for the checks: the report's and more, so that a cut lands inside header blocks, between
/// a table insertion and its first use, in the middle of messages, at every stage of a call.
const CHECK_CUTS: [f64; 14] = [
    0.0, 0.02, 0.07, 0.13, 0.25, 0.31, 0.38, 0.5, 0.57, 0.64, 0.75, 0.83, 0.91, 0.97,
];

fn captures() -> Vec<PathBuf> {
    common::capture_files()
}

fn packets(capture: &Path) -> u64 {
    let mut src = capture::FileSource::open(capture, 16 << 20).expect("open");
    let mut n = 0;
    while src.next_packet().expect("read").is_some() {
        n += 1;
    }
    n
}

fn replay(file: &Path, schemas: bool) -> Vec<Value> {
    let mut args = vec!["--calls", "-", "--metadata"];
    if schemas {
        args.extend(["--proto-path", "testdata/proto"]);
    }
    common::json_lines(&common::replay_file_stdout(&args, file))
}

/// A call's place on the wire, the same in a whole and a cut replay: its stream, or for
/// HTTP/1.1 (whose exchanges are numbered from the first one decoded) its start.
fn key(c: &Value) -> (String, String, u64) {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let place = if c["http"] == "1.1" {
        (c["start"].as_f64().unwrap_or(0.0) * 1e6) as u64
    } else {
        c["stream_id"].as_u64().unwrap_or(0)
    };
    (
        c["client"].as_str().unwrap_or("").to_owned(),
        c["server"].as_str().unwrap_or("").to_owned(),
        place,
    )
}

/// Every capture, cut at every point: scores per (capture, cut), and what was wrong.
/// What a sweep found: the score of each capture at each cut point, the problems, and the
/// captures that carry a server reflection exchange (schemas without --proto-path).
type Sweep = (
    BTreeMap<(String, usize), Score>,
    Vec<String>,
    std::collections::BTreeSet<String>,
);

fn run_all(schemas: bool, cuts: &[f64]) -> Sweep {
    let dir =
        std::env::temp_dir().join(format!("grpctap-fidelity-{}-{schemas}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut scores = BTreeMap::new();
    let mut problems = Vec::new();
    let mut reflecting = std::collections::BTreeSet::new();
    for cap in captures() {
        let name = cap
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = truth::truth_of(&cap).map(|t| truth::load(&t));
        let total = packets(&cap);
        let whole = replay(&cap, schemas);
        if whole.iter().any(|c| {
            c["method"]
                .as_str()
                .is_some_and(|m| m.ends_with("ServerReflection/ServerReflectionInfo"))
        }) {
            reflecting.insert(name.clone());
        }
        let by_key: BTreeMap<_, &Value> = whole.iter().map(|c| (key(c), c)).collect();
        // The whole replay reads the most of each call's metadata: a cut replay's calls are
        // paired with the log through it.
        let whole_truth: BTreeMap<_, &Value> = match &log {
            Some(log) => truth::pair(&whole, log)
                .into_iter()
                .filter_map(|(c, t)| Some((key(c), t?)))
                .collect(),
            None => BTreeMap::new(),
        };
        for (i, frac) in cuts.iter().enumerate() {
            // Cut points are packet counts: the fraction of this capture's packets.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let skip = (total as f64 * frac) as u64;
            let ours = if skip == 0 {
                whole.clone()
            } else {
                let Some(file) = common::cut(&cap, skip, &dir) else {
                    continue;
                };
                let calls = replay(&file, schemas);
                let _ = std::fs::remove_file(&file);
                calls
            };
            for c in &ours {
                let Some(w) = by_key.get(&key(c)) else {
                    continue;
                };
                if c["method"].is_string() && w["method"].is_string() && c["method"] != w["method"]
                {
                    problems.push(format!(
                        "{name} from {skip}: named {} where the whole replay says {}",
                        c["method"], w["method"]
                    ));
                }
                if c["status_confidence"] == "exact"
                    && w["status_confidence"] == "exact"
                    && c["status"] != w["status"]
                {
                    problems.push(format!(
                        "{name} from {skip}: exact status {} where the whole replay says {}",
                        c["status"], w["status"]
                    ));
                }
            }
            if log.is_some() {
                let pairs = ours
                    .iter()
                    .map(|c| (c, whole_truth.get(&key(c)).copied()))
                    .collect();
                let (score, wrong) = Score::of_pairs(pairs);
                problems.extend(
                    wrong
                        .into_iter()
                        .map(|w| format!("{name} from {skip}: {w}")),
                );
                scores.insert((name.clone(), i), score);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (scores, problems, reflecting)
}

fn check(schemas: bool) {
    // FIDELITY_CUTS=N checks N evenly spaced cut points instead (a denser sweep, by hand).
    let cuts: Vec<f64> = match std::env::var("FIDELITY_CUTS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(n) => (0..n).map(|i| f64::from(i) / f64::from(n)).collect(),
        None => CHECK_CUTS.to_vec(),
    };
    let (scores, mut problems, reflecting) = run_all(schemas, &cuts);
    let mut all = Score::default();
    for s in scores.values() {
        all.add(s);
        if s.wrong_names > 0 || s.wrong_exact > 0 {
            problems.push(format!("{s:?}"));
        }
    }
    assert!(all.calls > 5_000, "too few calls judged: {all:?}");
    if std::env::var_os("FIDELITY_DEBUG").is_some() {
        for p in &problems {
            eprintln!("P {p}");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(all.wrong_inferred, 0, "{all:?}");
    // Joining late must still tell something: statuses (and, with schemas, names) do not all
    // vanish. Without --proto-path, names are inferred only from schemas that server reflection
    // in the capture itself carried, and there they are.
    assert!(all.status_inferred > 0, "{all:?}");
    assert!(all.named_inferred > 0, "{all:?}");
    if !schemas {
        for ((name, _), s) in &scores {
            assert!(
                s.named_inferred == 0 || reflecting.contains(name),
                "{name}: named without schemas: {s:?}"
            );
        }
        assert!(
            scores
                .iter()
                .any(|((name, _), s)| reflecting.contains(name) && s.named_inferred > 0),
            "reflection taught no names: {reflecting:?}"
        );
    }
}

#[test]
fn joining_late_is_never_wrong_with_schemas() {
    check(true);
}

#[test]
fn joining_late_is_never_wrong_without_schemas() {
    check(false);
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

/// The table of docs/fidelity.md.
#[test]
#[ignore = "a report: run with --ignored --nocapture"]
fn fidelity_report() {
    for schemas in [true, false] {
        let (scores, _, _) = run_all(schemas, &REPORT_CUTS);
        println!(
            "\n### {}\n",
            if schemas {
                "With the schemas (testdata/proto)"
            } else {
                "Without schemas"
            }
        );
        println!(
            "| capture | joined at | calls | named (headers seen) | named (began before) | named inferred | wrong names | with a status | inferred | error, code unknown | wrong (exact / inferred) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for ((name, i), s) in &scores {
            let before = s.calls - s.started;
            println!(
                "| {name} | {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                REPORT_CUTS[*i] * 100.0,
                s.calls,
                pct(s.started_named, s.started),
                pct(s.began_before_named, before),
                s.named_inferred,
                s.wrong_names,
                pct(s.status_exact + s.status_inferred, s.ended),
                s.status_inferred,
                s.error_only,
                s.wrong_exact,
                s.wrong_inferred,
            );
        }
    }
}

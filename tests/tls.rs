//! gRPC over TLS, decrypted with the key logs the stacks wrote themselves (grpc-go's
//! `KeyLogWriter`, node's `--tls-keylog`), judged against the clients' own call logs; the same
//! captures with the keys only in a pcapng Decryption Secrets Block; key logs with connections
//! missing; corrupted records; no keys at all.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::truth::{self, Score};

/// Every TLS capture: (name, connections).
const CAPTURES: [(&str, u64); 11] = [
    ("go-tls13", 2),
    ("go-tls13-hrr", 1),
    ("go-tls12", 2),
    ("go-tls12-chacha", 1),
    ("go-tls12-aes256", 1),
    ("node-tls13-chacha", 1),
    ("node-tls13-aes256", 1),
    ("node-tls12", 1),
    ("tonic-tls13", 1),
    ("go-to-tonic-tls13", 1),
    ("go-to-tonic-tls12", 1),
];

fn pcap(name: &str) -> PathBuf {
    common::captures().join(format!("{name}-lo.pcap.gz"))
}

fn keylog(name: &str) -> PathBuf {
    common::captures().join(format!("{name}.keylog"))
}

fn run(args: &[&str], files: &[PathBuf]) -> (String, String) {
    common::replay_files(args, files)
}

fn calls(args: &[&str], files: &[PathBuf]) -> Vec<Value> {
    let mut a = vec!["--calls", "-", "--metadata"];
    a.extend_from_slice(args);
    common::json_lines(&run(&a, files).0)
}

fn summary(args: &[&str], files: &[PathBuf]) -> Value {
    let mut a = vec!["--summary-json", "-"];
    a.extend_from_slice(args);
    serde_json::from_str(&run(&a, files).0).expect("summary json")
}

/// Every call of the log is on the wire, named and ended exactly as the client saw it, with
/// the messages it counted.
fn check_against_log(name: &str, ours: &[Value]) {
    let log = truth::load(&common::captures().join(format!("{name}.calls.jsonl")));
    assert_eq!(ours.len(), log.len(), "{name}: calls");
    for c in ours {
        let v = if name.contains("tls13") { "1.3" } else { "1.2" };
        assert_eq!(c["tls"]["version"], v, "{name}");
        assert_eq!(c["tls"]["sni"], "localhost");
    }
    if log.iter().all(|t| t["call_id"].is_null()) {
        // tonic's scenario logs no call ids (its calls run one after another): the calls as
        // a multiset. tonic logs its own deadline as CANCELLED "Timeout expired"; on the wire
        // that is the client's reset (DEADLINE_EXCEEDED) or the server's status.
        let key = |c: &Value, log: bool| {
            let msg = c["message"]
                .as_str()
                .or(c["grpc_message"].as_str())
                .unwrap_or("");
            let status = match c["status"].as_str() {
                Some("CANCELLED")
                    if msg.contains("Timeout") || (log && msg == "Timeout expired") =>
                {
                    "DEADLINE_EXCEEDED"
                }
                s => s.unwrap_or("?"),
            };
            (
                c["method"].as_str().unwrap_or("").to_owned(),
                status.to_owned(),
                c["req_msgs"].as_u64(),
                c["resp_msgs"].as_u64(),
            )
        };
        let mut a: Vec<_> = ours.iter().map(|c| key(c, false)).collect();
        let mut b: Vec<_> = log.iter().map(|c| key(c, true)).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}");
        assert!(
            ours.iter().all(|c| c["method_confidence"] == "exact"),
            "{name}"
        );
        return;
    }
    let (score, wrong) = Score::of(ours, &log);
    assert!(wrong.is_empty(), "{name}: {wrong:?}");
    assert_eq!(score.calls, log.len() as u64, "{name}: paired");
    assert_eq!(score.named_exact, score.calls, "{name}: named");
    // A call the client reset at its deadline has an inferred status (or, for grpc-js, an
    // error of unknown code: deadline or cancel), as in cleartext.
    assert_eq!(
        score.status_exact + score.status_inferred + score.error_only,
        score.calls,
        "{name}: statuses"
    );
    for (c, t) in truth::pair(ours, &log) {
        let t = t.expect("paired");
        assert_eq!(c["req_msgs"], t["req_msgs"], "{name}: {t}");
        assert_eq!(c["resp_msgs"], t["resp_msgs"], "{name}: {t}");
    }
}

#[test]
fn every_call_of_every_tls_capture_comes_out_as_the_client_logged_it() {
    for (name, conns) in CAPTURES {
        let kl = keylog(name);
        let ours = calls(&["--tls-keylog", kl.to_str().expect("path")], &[pcap(name)]);
        check_against_log(name, &ours);
        let s = summary(&["--tls-keylog", kl.to_str().expect("path")], &[pcap(name)]);
        let tls = &s["capture"]["tls"];
        assert_eq!(tls["connections"], conns, "{name}: {tls}");
        assert_eq!(tls["decrypted"], conns, "{name}: {tls}");
        assert_eq!(tls["encrypted_bytes"], 0, "{name}: {tls}");
        assert_eq!(s["capture"]["anomalies"], serde_json::json!({}), "{name}");
    }
}

#[test]
fn keys_in_a_decryption_secrets_block_give_the_same_calls() {
    for (name, _) in CAPTURES {
        let kl = keylog(name);
        let with_file = run(
            &[
                "--calls",
                "-",
                "--metadata",
                "--tls-keylog",
                kl.to_str().expect("path"),
            ],
            &[pcap(name)],
        )
        .0;
        let dsb = common::captures().join(format!("{name}-dsb.pcapng.gz"));
        let from_dsb = run(&["--calls", "-", "--metadata"], &[dsb]).0;
        assert!(!from_dsb.is_empty(), "{name}");
        assert_eq!(with_file, from_dsb, "{name}");
    }
}

#[test]
fn handshake_facts_are_reported_per_connection() {
    let kl = keylog("go-tls13-hrr");
    let (out, _) = run(
        &[
            "--connections-json",
            "-",
            "--tls-keylog",
            kl.to_str().expect("path"),
        ],
        &[
            pcap("go-tls13-hrr"),
            pcap("go-tls12"),
            pcap("node-tls13-chacha"),
        ],
    );
    let v: Value = serde_json::from_str(&out).expect("json");
    let rows = v["connections"]
        .as_array()
        .or_else(|| v.as_array())
        .expect("rows");
    let tls: Vec<&Value> = rows.iter().map(|r| &r["tls"]).collect();
    assert_eq!(tls.len(), 4);
    let hrr = tls.iter().find(|t| t["hello_retry"] == true).expect("HRR");
    assert_eq!(hrr["state"], "decrypted");
    assert_eq!(hrr["cipher_suite"], "TLS_AES_128_GCM_SHA256");
    assert_eq!(hrr["alpn"], "h2");
    // The others had no key in the one key log given; what the hellos say is still there.
    let resumed = tls.iter().find(|t| t["resumed"] == true).expect("resumed");
    assert_eq!(resumed["version"], "1.2");
    assert_eq!(resumed["state"], "no_key");
    let chacha = tls
        .iter()
        .find(|t| t["cipher_suite"] == "TLS_CHACHA20_POLY1305_SHA256")
        .expect("chacha");
    assert_eq!(chacha["state"], "no_key");
    assert_eq!(chacha["sni"], "localhost");
    assert!(
        chacha["alpn_offered"]
            .as_str()
            .expect("alpn")
            .contains("h2")
    );
    assert!(chacha["encrypted_bytes"].as_u64().expect("bytes") > 50_000);
}

#[test]
fn without_keys_every_tls_connection_is_counted_as_encrypted() {
    let files: Vec<PathBuf> = CAPTURES.iter().map(|(n, _)| pcap(n)).collect();
    let conns: u64 = CAPTURES.iter().map(|(_, c)| c).sum();
    assert!(calls(&[], &files).is_empty());
    let s = summary(&[], &files);
    let tls = &s["capture"]["tls"];
    assert_eq!(tls["connections"], conns);
    assert_eq!(tls["decrypted"], 0);
    assert_eq!(tls["encrypted"]["no_key"], conns);
    // All but the hellos (and TLS 1.2's certificates) in the clear.
    let (enc, all) = (
        tls["encrypted_bytes"].as_u64().expect("n"),
        tls["bytes"].as_u64().expect("n"),
    );
    assert!(enc < all && enc > all / 10 * 9, "{tls}");
    assert_eq!(s["capture"]["other_connections"], 0);
    let v13: u64 = CAPTURES
        .iter()
        .filter(|(n, _)| n.contains("tls13"))
        .map(|(_, c)| c)
        .sum();
    let (table, _) = run(&[], &files);
    let line = format!(
        "tls: {conns} connections (TLS 1.2 {}, 1.3 {v13}), 0 decrypted, not decrypted: no_key {conns}",
        conns - v13
    );
    assert!(table.contains(&line), "{table}");
}

/// The key log lines of all captures, by client random.
fn lines_by_random() -> Vec<(String, Vec<String>)> {
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, _) in CAPTURES {
        for l in std::fs::read_to_string(keylog(name))
            .expect("keylog")
            .lines()
        {
            if let Some(r) = l.split_whitespace().nth(1) {
                by.entry(r.to_owned()).or_default().push(l.to_owned());
            }
        }
    }
    by.into_iter().collect()
}

#[test]
fn with_half_the_keys_the_other_connections_decrypt_and_the_rest_are_counted() {
    let dir = std::env::temp_dir().join(format!("grpctap-tls-half-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let randoms = lines_by_random();
    assert!(randoms.len() >= 9, "{}", randoms.len());
    let mut text = String::new();
    // A bad line and a comment among them: reported by number, the rest used.
    text.push_str("# half of the keys\nCLIENT_RANDOM nothex\n");
    for (i, (_, lines)) in randoms.iter().enumerate() {
        if i % 2 == 0 {
            for l in lines {
                text.push_str(l);
                text.push('\n');
            }
        }
    }
    let half = dir.join("half.keylog");
    std::fs::write(&half, &text).expect("write");
    let files: Vec<PathBuf> = CAPTURES.iter().map(|(n, _)| pcap(n)).collect();
    let args = ["--tls-keylog", half.to_str().expect("path")];
    let (_, stderr) = run(&args, &files);
    assert!(
        stderr.contains("line 2: not LABEL CLIENT_RANDOM SECRET"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&randoms[0].1[0][20..60]),
        "a secret in stderr"
    );
    let s = summary(&args, &files);
    let tls = &s["capture"]["tls"];
    let kept = randoms.len().div_ceil(2) as u64;
    let decrypted = tls["decrypted"].as_u64().expect("decrypted");
    let no_key = tls["encrypted"]["no_key"].as_u64().expect("no_key");
    // A resumed TLS 1.2 session has no line of its own: it decrypts when the one it resumes
    // did.
    let conns: u64 = CAPTURES.iter().map(|(_, c)| c).sum();
    assert!(decrypted >= kept && decrypted <= kept + 1, "{tls}");
    assert_eq!(decrypted + no_key, conns, "{tls}");
    // Every call that came out is one the clients logged, exactly: each capture has a
    // server port of its own, so a call's capture is told by its server.
    let ours = calls(&args, &files);
    assert!(!ours.is_empty());
    let mut named = 0;
    for (name, _) in CAPTURES {
        let log = truth::load(&common::captures().join(format!("{name}.calls.jsonl")));
        let alone = calls(
            &["--tls-keylog", keylog(name).to_str().expect("p")],
            &[pcap(name)],
        );
        let server = alone[0]["server"].clone();
        let mine: Vec<Value> = ours
            .iter()
            .filter(|c| c["server"] == server)
            .cloned()
            .collect();
        let (score, wrong) = Score::of(&mine, &log);
        assert!(wrong.is_empty(), "{name}: {wrong:?}");
        assert_eq!(score.calls, mine.len() as u64, "{name}: unpaired");
        named += mine.len();
    }
    assert_eq!(named, ours.len());
    std::fs::remove_dir_all(&dir).ok();
}

/// `capture` with one byte of the `nth` packet carrying at least `min` bytes of payload
/// flipped, written to `out`.
fn flip(capture: &Path, nth: usize, min: usize, out: &Path) {
    let mut src = capture::FileSource::open(capture, 16 << 20).expect("open");
    let mut w: Option<capture::write::PcapngWriter> = None;
    let mut seen = 0;
    while let Some(p) = src.next_packet().expect("read") {
        let writer = w.get_or_insert_with(|| {
            capture::write::PcapngWriter::create(out, p.linktype, 262_144, Default::default())
                .expect("create")
        });
        let mut data = p.data.to_vec();
        if data.len() > min + 66 {
            seen += 1;
            if seen == nth {
                let at = data.len() - 40;
                data[at] ^= 0x01;
            }
        }
        let q = capture::Packet { data: &data, ..p };
        writer.write(&q).expect("write");
    }
    w.expect("packets").flush().expect("flush");
}

#[test]
fn a_corrupted_record_is_counted_and_only_its_calls_suffer() {
    let dir = std::env::temp_dir().join(format!("grpctap-tls-flip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for name in ["go-tls13", "go-tls12-chacha", "node-tls12"] {
        let out = dir.join(format!("{name}-flipped.pcapng"));
        flip(&pcap(name), 3, 1000, &out);
        let kl = keylog(name);
        let args = ["--tls-keylog", kl.to_str().expect("path")];
        let s = summary(&args, std::slice::from_ref(&out));
        assert_eq!(s["capture"]["tls"]["bad_records"], 1, "{name}: {s}");
        assert_eq!(s["capture"]["anomalies"]["tls_bad_record"], 1, "{name}");
        let ours = calls(&args, &[out]);
        let log = truth::load(&common::captures().join(format!("{name}.calls.jsonl")));
        let (score, wrong) = Score::of(&ours, &log);
        // What came out is right; the record's calls may be lost or unnamed, not more.
        assert_eq!(score.wrong_exact, 0, "{name}: {wrong:?}");
        assert!(
            score.named_exact + 3 >= log.len() as u64,
            "{name}: {score:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// What a call is, apart from where and when: for comparing a TLS capture with its cleartext
/// twin (the same scenario run without TLS).
fn essence(c: &Value) -> (Option<u64>, Value, Value, Value, Value, Value) {
    (
        truth::call_id(c),
        c["method"].clone(),
        c["status"].clone(),
        c["req_msgs"].clone(),
        c["resp_msgs"].clone(),
        c["grpc_message"].clone(),
    )
}

#[test]
fn decrypted_calls_are_the_calls_of_the_cleartext_twin() {
    for (tls, clear) in [
        ("go-tls13-hrr", "go-clear"),
        ("node-tls13-aes256", "node-clear"),
    ] {
        let kl = keylog(tls);
        let mut a: Vec<_> = calls(&["--tls-keylog", kl.to_str().expect("path")], &[pcap(tls)])
            .iter()
            .map(essence)
            .collect();
        let mut b: Vec<_> = calls(&[], &[pcap(clear)]).iter().map(essence).collect();
        a.sort_by_key(|e| e.0);
        b.sort_by_key(|e| e.0);
        assert_eq!(a.len(), 30, "{tls}");
        assert_eq!(a, b, "{tls} against {clear}");
    }
}

#[test]
fn a_capture_cut_short_keeps_the_calls_before_the_cut() {
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(pcap("go-tls13")).expect("open"))
        .read_to_end(&mut raw)
        .expect("gunzip");
    let dir = std::env::temp_dir().join(format!("grpctap-tls-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cut = dir.join("cut.pcap");
    // Cut in the middle of a packet, past the first connection's end.
    std::fs::write(&cut, &raw[..raw.len() * 3 / 4 + 7]).expect("write");
    let kl = keylog("go-tls13");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .current_dir(common::root())
        .args(["replay", "--calls", "-", "--metadata", "--tls-keylog"])
        .arg(&kl)
        .arg(&cut)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("truncated at byte"), "{err}");
    let ours = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    let log = truth::load(&common::captures().join("go-tls13.calls.jsonl"));
    let (score, wrong) = Score::of(&ours, &log);
    assert!(wrong.is_empty(), "{wrong:?}");
    // The first connection whole, the second in part.
    assert!(score.named_exact >= 30, "{score:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn joined_after_the_handshake_a_tls_connection_is_counted_not_guessed() {
    let dir = std::env::temp_dir().join(format!("grpctap-tls-join-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("joined.pcapng");
    // A faithful join: the capture from its 40th packet on (the handshakes are over).
    let mut src = capture::FileSource::open(&pcap("node-tls12"), 16 << 20).expect("open");
    let mut w: Option<capture::write::PcapngWriter> = None;
    let mut n = 0;
    while let Some(p) = src.next_packet().expect("read") {
        n += 1;
        if n < 40 {
            continue;
        }
        w.get_or_insert_with(|| {
            capture::write::PcapngWriter::create(&out, p.linktype, 262_144, Default::default())
                .expect("create")
        })
        .write(&p)
        .expect("write");
    }
    w.expect("packets").flush().expect("flush");
    let kl = keylog("node-tls12");
    let args = ["--tls-keylog", kl.to_str().expect("path")];
    assert!(calls(&args, std::slice::from_ref(&out)).is_empty());
    let s = summary(&args, &[out]);
    let tls = &s["capture"]["tls"];
    assert_eq!(tls["connections"], 1, "{tls}");
    assert_eq!(tls["encrypted"]["handshake_not_seen"], 1, "{tls}");
    assert_eq!(tls["encrypted_bytes"], tls["bytes"], "{tls}");
    assert_eq!(s["capture"]["other_connections"], 0);
    std::fs::remove_dir_all(&dir).ok();
}

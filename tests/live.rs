//! Live capture (feature `live`; CI runs these as root). Two network namespaces joined by a
//! veth pair, made by the test: a tonic server in one, the tonic client and grpctap in the
//! other; grpctap must report exactly the calls the client logged. And without privileges, the
//! clear error.

#![cfg(feature = "live")]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tonic test service, built beside the tests (`cargo test --workspace` builds it).
fn tonic_echo() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("tonic-echo");
    assert!(
        bin.exists(),
        "{} (cargo build -p tonic-echo)",
        bin.display()
    );
    bin
}

fn ip(args: &[&str]) {
    let st = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(st.success(), "ip {args:?}");
}

/// Two namespaces, `<name>-s` (10.213.0.1) and `<name>-c` (10.213.0.2), removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str) -> Netns {
        let n = Netns {
            name: name.to_owned(),
        };
        let (s, c) = (n.server(), n.client());
        let _ = Command::new("ip").args(["netns", "del", &s]).status();
        let _ = Command::new("ip").args(["netns", "del", &c]).status();
        ip(&["netns", "add", &s]);
        ip(&["netns", "add", &c]);
        let (vs, vc) = (format!("{name}s0"), format!("{name}c0"));
        ip(&[
            "link", "add", &vs, "netns", &s, "type", "veth", "peer", "name", &vc, "netns", &c,
        ]);
        ip(&["-n", &s, "addr", "add", "10.213.0.1/24", "dev", &vs]);
        ip(&["-n", &c, "addr", "add", "10.213.0.2/24", "dev", &vc]);
        for (ns, dev) in [(&s, &vs), (&c, &vc)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        n
    }

    fn server(&self) -> String {
        format!("{}-s", self.name)
    }

    fn client(&self) -> String {
        format!("{}-c", self.name)
    }

    fn exec(&self, ns: &str, program: &PathBuf) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server()])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client()])
            .status();
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ends a capture with SIGTERM (a clean end with the summary table) and waits for its output.
fn terminate(tap: &mut Kill) -> std::process::Output {
    let st = Command::new("kill")
        .args(["-TERM", &tap.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    std::mem::replace(&mut tap.0, Command::new("true").spawn().expect("true"))
        .wait_with_output()
        .expect("grpctap output")
}

fn read_until(path: &PathBuf, text: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            Instant::now() < until,
            "waited for {text:?} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tonic test server in `net`'s server namespace on 10.213.0.1:50051, once it is ready
/// (its log in `dir`); killed on drop.
fn serve(net: &Netns, echo: &PathBuf, dir: &std::path::Path) -> Kill {
    let server_log = dir.join("server.log");
    let server = Kill(
        net.exec(&net.server(), echo)
            .args(["server", "--addr", "10.213.0.1:50051"])
            .stdout(std::fs::File::create(&server_log).expect("log"))
            .spawn()
            .expect("server"),
    );
    read_until(&server_log, "ready");
    server
}

/// Waits until grpctap (`pid`), started as root, goes on as nobody: the interface and files
/// are open (the default --user), the handle keeps capturing.
fn capturing(pid: u32) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or("")
            .to_owned();
        if uid.split_whitespace().skip(1).all(|u| u == "65534") && !uid.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "still {uid:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `grpctap capture ARGS` in `net`'s client namespace (stderr to `stderr`), once it captures.
fn start_capture(net: &Netns, args: &[&std::ffi::OsStr], stderr: &std::path::Path) -> Kill {
    let tap = net
        .exec(&net.client(), &PathBuf::from(env!("CARGO_BIN_EXE_grpctap")))
        .arg("capture")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).expect("err"))
        .spawn()
        .expect("grpctap");
    let pid = tap.id();
    let tap = Kill(tap);
    capturing(pid);
    tap
}

/// (method, status) -> calls. A tonic deadline shows as CANCELLED "Timeout expired" in the
/// client's log whichever side's clock fired first. On the wire it is either the client's reset
/// at the deadline (grpctap: DEADLINE_EXCEEDED, by gRPC's rules) or, when the server's timer
/// fired first, a CANCELLED "Timeout expired" status the server sent (grpctap reports the wire).
/// Both count as the deadline here (as in tests/grpc_calls.rs). A call grpctap reports as an
/// error of unknown code (`deadline_near`, `client_closed`) counts under [`UNKNOWN_ERROR`].
fn tally(jsonl: &str) -> BTreeMap<(String, String), u64> {
    let mut m = BTreeMap::new();
    for l in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let message = v["message"].as_str().or(v["grpc_message"].as_str());
        let status = match (v["status"].as_str(), message) {
            (Some("CANCELLED"), Some("Timeout expired")) => "DEADLINE_EXCEEDED",
            (Some(s), _) => s,
            (None, _) if v["error"] == true => UNKNOWN_ERROR,
            (None, _) => "?",
        };
        let key = (
            v["method"].as_str().unwrap_or("?").to_owned(),
            status.to_owned(),
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

const UNKNOWN_ERROR: &str = "error of unknown code";

/// grpctap's tally `got` tells what the client logged in `want`: the same calls per method and
/// status, except that an error grpctap could not name (a reset inside the window where a
/// busy client's deadline and a cancellation look alike, a connection the client closed) stands
/// for one of the client's errors of that method.
fn assert_tells(got: &BTreeMap<(String, String), u64>, want: &BTreeMap<(String, String), u64>) {
    let mut unnamed: BTreeMap<&str, u64> = BTreeMap::new();
    for ((method, status), &n) in got {
        if status == UNKNOWN_ERROR {
            *unnamed.entry(method).or_default() += n;
        }
    }
    for ((method, status), &n) in want {
        let seen = got
            .get(&(method.clone(), status.clone()))
            .copied()
            .unwrap_or(0);
        if seen < n && status != "OK" && status != "?" {
            let spare = unnamed.entry(method).or_default();
            let used = (n - seen).min(*spare);
            *spare -= used;
            assert_eq!(
                seen + used,
                n,
                "{method} {status}: got {got:?}, want {want:?}"
            );
        } else {
            assert_eq!(seen, n, "{method} {status}: got {got:?}, want {want:?}");
        }
    }
    let total = |t: &BTreeMap<(String, String), u64>| t.values().sum::<u64>();
    assert_eq!(total(got), total(want), "got {got:?}, want {want:?}");
}

#[test]
fn calls_between_two_namespaces_are_reported_exactly() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("grpctap-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // grpctap goes on as user nobody: it must be able to start the rotated files here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let net = Netns::new("gtl");
    let echo = tonic_echo();
    let _server = serve(&net, &echo, &dir);
    let calls = dir.join("calls.jsonl");
    let stderr = dir.join("grpctap.err");
    let live = dir.join("live.pcapng");
    let mut tap = start_capture(
        &net,
        &[
            "-i".as_ref(),
            "gtlc0".as_ref(),
            "--no-tui".as_ref(),
            "--calls".as_ref(),
            calls.as_os_str(),
            "-w".as_ref(),
            live.as_os_str(),
            "--rotate-size".as_ref(),
            "20k".as_ref(),
            "tcp".as_ref(),
            "port".as_ref(),
            "50051".as_ref(),
        ],
        &stderr,
    );
    std::thread::sleep(Duration::from_millis(300));
    let client_log = dir.join("client.jsonl");
    let st = net
        .exec(&net.client(), &echo)
        .args([
            "client",
            "--target",
            "http://10.213.0.1:50051",
            "--scenario",
            "basic",
            "--log",
        ])
        .arg(&client_log)
        .stdout(Stdio::null())
        .status()
        .expect("client");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM: a clean end with the summary table, though the interface is idle now.
    let t = Instant::now();
    let out = terminate(&mut tap);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "slow to stop: {:?}",
        t.elapsed()
    );
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(out.status.success(), "{err}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("TOTAL"), "{table}");
    assert!(
        err.contains("received by the filter, 0 dropped by the kernel"),
        "{err}"
    );
    let want = tally(&std::fs::read_to_string(&client_log).expect("client log"));
    let got = tally(&std::fs::read_to_string(&calls).expect("calls"));
    assert!(!want.is_empty());
    assert_tells(&got, &want);
    // The packets written while decoding (rotated every 20 kB) replay into the same calls.
    let mut files = vec![live];
    for n in 1.. {
        let f = dir.join(format!("live-{n}.pcapng"));
        if !f.exists() {
            break;
        }
        files.push(f);
    }
    assert!(files.len() > 2, "rotated: {files:?}");
    assert!(err.contains("packets written to"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--calls", "-"])
        .args(&files)
        .output()
        .expect("replay");
    assert!(out.status.success());
    assert_eq!(tally(&String::from_utf8_lossy(&out.stdout)), got);
}

/// A TLS server (rustls, through tonic) writes its key log while grpctap captures: grpctap
/// follows the file as it grows, decrypts the connection from its start, and writes the keys
/// into its pcapng, which then replays alone into the same calls.
#[test]
fn tls_is_decrypted_with_keys_written_during_the_capture() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("grpctap-live-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let echo = tonic_echo();
    let st = Command::new(&echo)
        .args(["certs", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("certs");
    assert!(st.success());
    // The key log exists, empty, before anything runs (grpctap, as nobody, reads it).
    let keys = dir.join("keys.log");
    std::fs::write(&keys, "").expect("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let net = Netns::new("gtk");
    let server_log = dir.join("server.log");
    let _server = Kill(
        net.exec(&net.server(), &echo)
            .args(["server", "--addr", "10.213.0.1:50051", "--tls-cert"])
            .arg(dir.join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.join("key.pem"))
            .env("SSLKEYLOGFILE", &keys)
            .stdout(std::fs::File::create(&server_log).expect("log"))
            .spawn()
            .expect("server"),
    );
    read_until(&server_log, "ready");
    let calls = dir.join("calls.jsonl");
    let stderr = dir.join("grpctap.err");
    let tap = net
        .exec(&net.client(), &PathBuf::from(env!("CARGO_BIN_EXE_grpctap")))
        .args(["capture", "-i", "gtkc0", "--no-tui", "--calls"])
        .arg(&calls)
        .arg("--tls-keylog")
        .arg(&keys)
        .arg("-w")
        .arg(dir.join("live.pcapng"))
        .args(["tcp", "port", "50051"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("err"))
        .spawn()
        .expect("grpctap");
    let mut tap = Kill(tap);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::metadata(&keys).expect("keys").len(), 0);
    let client_log = dir.join("client.jsonl");
    let st = net
        .exec(&net.client(), &echo)
        .args(["client", "--target", "https://10.213.0.1:50051"])
        .args(["--scenario", "basic", "--tls-ca"])
        .arg(dir.join("cert.pem"))
        .arg("--log")
        .arg(&client_log)
        .stdout(Stdio::null())
        .status()
        .expect("client");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(500));
    let out = terminate(&mut tap);
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(out.status.success(), "{err}");
    let key_text = std::fs::read_to_string(&keys).expect("keys");
    assert!(
        key_text.contains("SERVER_TRAFFIC_SECRET_0"),
        "the server wrote no keys"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("tls: 1 connections (TLS 1.3 1), 1 decrypted"),
        "{table}"
    );
    // No secret anywhere in what grpctap wrote.
    let secret = key_text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("a secret");
    let written = std::fs::read_to_string(&calls).expect("calls");
    for text in [&written, &err, &table.to_string()] {
        assert!(!text.contains(secret));
    }
    let want = tally(&std::fs::read_to_string(&client_log).expect("client log"));
    assert!(!want.is_empty());
    let got = tally(&written);
    assert_tells(&got, &want);
    // The pcapng carries the keys (a Decryption Secrets Block): it replays alone.
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--calls", "-"])
        .arg(dir.join("live.pcapng"))
        .output()
        .expect("replay");
    assert!(out.status.success());
    assert_eq!(tally(&String::from_utf8_lossy(&out.stdout)), got);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn without_privileges_the_error_names_the_fix() {
    // As user nobody, with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_grpctap"))
        .args(["capture", "-i", "lo", "--no-tui", "--duration", "1"])
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not allowed to capture"), "{err}");
    assert!(err.contains("run as root"), "{err}");
    assert!(
        err.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{err}"
    );
}

#[test]
fn the_ui_is_the_default_on_a_terminal_and_q_ends_the_capture() {
    // Live on loopback in a real terminal: the UI, its status line naming the interface, then q:
    // the terminal given back and the summary printed.
    let t = common::tmux::Tmux::start(
        "live-ui",
        &format!(
            "{} capture -i lo --user root tcp port 9",
            env!("CARGO_BIN_EXE_grpctap")
        ),
        100,
        30,
    );
    t.wait("the UI on lo", |s| {
        s.contains("live lo") && s.contains("1 Methods")
    });
    t.keys(&["q"]);
    let s = t.wait_exit(0);
    assert!(s.contains("TOTAL"), "{s}");
}

#[test]
fn interfaces_lists_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .arg("interfaces")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("lo ") && l.contains("loopback") && l.contains("127.0.0.1")),
        "{text}"
    );
}

/// tcpdump's habits: options after the filter, `-nn`, `-s 0`, `-c COUNT` (the capture ends by
/// itself after COUNT packets, all of them written), `-G`; a filter that does not compile says
/// where it goes wrong.
#[test]
fn capture_takes_tcpdump_habits() {
    let dir = std::env::temp_dir().join(format!("grpctap-habits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let net = Netns::new("gth");
    let echo = tonic_echo();
    let _server = serve(&net, &echo, &dir);
    let grpctap = PathBuf::from(env!("CARGO_BIN_EXE_grpctap"));
    let out = net
        .exec(&net.client(), &grpctap)
        .args(["capture", "-i", "gthc0", "--no-tui", "tcp", "prot", "50051"])
        .output()
        .expect("grpctap");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("goes wrong at `prot 50051`"), "{err}");
    let written = dir.join("c.pcapng");
    let stderr = dir.join("grpctap.err");
    let tap = net
        .exec(&net.client(), &grpctap)
        .args([
            "capture", "tcp", "port", "50051", "-i", "gthc0", "-nn", "-s", "0",
        ])
        .args(["-c", "40", "--no-tui", "--user", "root", "-G", "3600", "-w"])
        .arg(&written)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("err"))
        .spawn()
        .expect("grpctap");
    let mut tap = Kill(tap);
    std::thread::sleep(Duration::from_millis(500));
    let st = net
        .exec(&net.client(), &echo)
        .args([
            "client",
            "--target",
            "http://10.213.0.1:50051",
            "--scenario",
            "basic",
            "--log",
        ])
        .arg(dir.join("client.jsonl"))
        .stdout(Stdio::null())
        .status()
        .expect("client");
    assert!(st.success());
    // It stops by itself after 40 packets.
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = tap.0.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < until, "-c 40 did not end the capture");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(status.success(), "{err}");
    let out = Command::new(&grpctap)
        .args(["replay", "--connections-json", "-"])
        .arg(&written)
        .output()
        .expect("replay");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["capture"]["packets"], 40, "{err}");
}

/// `replay FILE FILTER`, as `tcpdump -r FILE FILTER`: only the packets the filter passes.
#[test]
fn replay_takes_a_bpf_filter_after_the_files() {
    let file = common::captures().join("py-basic-lo.pcap");
    let file = file.to_str().expect("path");
    let all = common::replay_lines(&["--calls", "-"], "py-basic-lo.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--calls", "-", file, "tcp", "port", "50051"])
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    let want: Vec<&serde_json::Value> = all
        .iter()
        .filter(|c| c["server"].as_str().is_some_and(|s| s.ends_with(":50051")))
        .collect();
    assert!(!want.is_empty() && want.len() < all.len());
    assert_eq!(ours.iter().collect::<Vec<_>>(), want);
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", file, "tcp", "prot", "1"])
        .output()
        .expect("replay");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("goes wrong at `prot 1`"));
}

/// A real capture sent onto a veth pair by tcpreplay (Debian's) while `grpctap capture
/// --threads 2` decodes it on the other end: the calls are those of a replay of the file, with
/// no packet dropped by the kernel or at a thread's queue.
#[test]
fn a_capture_replayed_onto_an_interface_decodes_as_the_file_does_on_two_threads() {
    use std::io::Read;
    if Command::new("tcpreplay").arg("--version").output().is_err() {
        panic!("tcpreplay is needed (apt-get install tcpreplay; .ci/run installs it)");
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("grpctap-tcpreplay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // tcpreplay reads plain pcap: the gzipped capture unpacked.
    let pcap = dir.join("balance-rr.pcap");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(common::captures().join("balance-rr-lo.pcap.gz")).expect("capture"),
    )
    .read_to_end(&mut raw)
    .expect("gunzip");
    std::fs::write(&pcap, &raw).expect("write");
    let net = Netns::new("gtr");
    // The frames are addressed to other MACs (loopback's zeros): the receiving end takes them
    // all.
    ip(&["-n", &net.client(), "link", "set", "gtrc0", "promisc", "on"]);
    let calls = dir.join("calls.jsonl");
    let stderr = dir.join("grpctap.err");
    let mut tap = start_capture(
        &net,
        &[
            "-i".as_ref(),
            "gtrc0".as_ref(),
            "--no-tui".as_ref(),
            "--threads".as_ref(),
            "2".as_ref(),
            "--calls".as_ref(),
            calls.as_os_str(),
        ],
        &stderr,
    );
    std::thread::sleep(Duration::from_millis(200));
    // 20 Mbit/s: a rate a loaded CI machine keeps up with also in a debug build (the
    // full-speed figures are in docs/performance.md).
    let st = net
        .exec(&net.server(), &PathBuf::from("tcpreplay"))
        .args(["-i", "gtrs0", "--mbps", "20", "-q"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("tcpreplay");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(500));
    let out = terminate(&mut tap);
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("0 dropped by the kernel"), "{err}");
    assert!(!err.contains("queue was full"), "{err}");
    let got = tally(&std::fs::read_to_string(&calls).expect("calls"));
    let file = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--threads", "1", "--calls", "-"])
        .arg(&pcap)
        .output()
        .expect("replay");
    let want = tally(&String::from_utf8_lossy(&file.stdout));
    assert!(want.values().sum::<u64>() > 1500, "{want:?}");
    assert_eq!(got, want);
}

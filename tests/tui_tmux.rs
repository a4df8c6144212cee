//! The terminal UI in a real terminal (tmux): open it on a capture, sort, filter, open a call,
//! read its decoded messages, resize, pause, quit by q, Ctrl-C and SIGTERM; each time the
//! terminal must be given back as it was.

mod common;

use common::root;
use common::tmux::Tmux;

fn cmd(args: &str, capture: &str) -> String {
    format!(
        "cd {} && {} replay --tui --proto-path testdata/proto {args} testdata/captures/{capture}",
        root().display(),
        env!("CARGO_BIN_EXE_grpctap")
    )
}

#[test]
fn sort_filter_open_a_call_read_its_messages_and_quit() {
    let t = Tmux::start("walk", &cmd("", "py-bodies-lo.pcap"), 100, 40);
    let s = t.wait_for("py-bodies-lo.pcap done");
    assert!(
        s.contains("1 Methods") && s.contains("/grpctap.test.Echo/Unary"),
        "{s}"
    );
    assert_eq!(
        t.pane("#{alternate_on}"),
        "1",
        "the UI uses the alternate screen"
    );
    // Sort: the second column (total calls) becomes the sort key.
    t.keys(&["s"]);
    t.wait_for("Calls▼");
    // Calls view, filtered to the failed calls with INVALID_ARGUMENT.
    t.keys(&["2", "/"]);
    t.type_text("status:invalid");
    t.keys(&["Enter"]);
    let s = t.wait_for("filter: status:invalid");
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("/grpctap.test.Echo/"))
        .collect();
    assert_eq!(rows.len(), 3, "{s}");
    assert!(rows.iter().all(|r| r.contains("INVALID_ARGUMENT")), "{s}");
    // Open the first one: its decoded request, then (a page down) its decoded error details.
    t.keys(&["Enter"]);
    let s = t.wait_for("Call detail");
    assert!(
        s.contains("INVALID_ARGUMENT (grpc-status 3, from trailers_only)"),
        "{s}"
    );
    assert!(s.contains("Request #1 (grpctap.test.EchoRequest)"), "{s}");
    assert!(s.contains("\"statusMessage\": \"rich\""), "{s}");
    t.keys(&["PageDown"]);
    let s = t.wait_for("google.rpc.BadRequest");
    assert!(s.contains("\"reason\": \"QUOTA\""), "{s}");
    // A smaller terminal: everything is laid out again at 80x24.
    t.resize(80, 24);
    t.keys(&["Escape"]);
    let s = t.wait("the 80x24 calls view", |s| {
        s.lines().count() <= 24 && s.contains("INVALID_ARGUMENT") && s.contains("q quit")
    });
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    t.keys(&["q"]);
    let s = t.wait_exit(0);
    // The summary table follows the UI.
    assert!(
        s.contains("/grpctap.test.Echo/Unary") && s.contains("calls"),
        "{s}"
    );
}

#[test]
fn ctrl_c_gives_the_terminal_back() {
    let t = Tmux::start("ctrlc", &cmd("", "py-basic-lo.pcap"), 80, 24);
    t.wait_for("py-basic-lo.pcap done");
    t.keys(&["C-c"]);
    t.wait_exit(0);
}

#[test]
fn pause_holds_a_slow_replay_and_sigterm_ends_it() {
    // 3.2 s of capture at a fifth of real time: 16 s, long enough to pause and kill it.
    let t = Tmux::start(
        "term",
        &cmd("--speed 0.2x --max-methods 10061", "py-edge-lo.pcap.gz"),
        100,
        30,
    );
    t.wait_for("0.2x");
    t.keys(&["p"]);
    t.wait_for("PAUSED");
    let packets = |s: &str| -> String {
        let line = s.lines().find(|l| l.contains(" pkts ")).unwrap_or_default();
        line.split(" pkts ")
            .nth(1)
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let before = packets(&t.screen());
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        packets(&t.screen()),
        before,
        "no packet is read while paused"
    );
    t.keys(&["p"]);
    t.wait("packets to flow again", |s| {
        !s.contains("PAUSED") && packets(s) != before
    });
    // The grpctap process (not the shell around it, whose command line says the same).
    let pids = std::process::Command::new("pgrep")
        .args(["-f", "max-methods 10061 testdata"])
        .output()
        .expect("pgrep");
    let pid = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "grpctap")
        })
        .expect("the grpctap process")
        .to_owned();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let s = t.wait_exit(0);
    assert!(s.contains("replay stopped before the end"), "{s}");
}

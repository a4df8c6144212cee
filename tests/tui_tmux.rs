//! The terminal UI in a real terminal (tmux): open it on a capture, sort, filter, open a call,
//! read its decoded messages, resize, pause, quit by q, Ctrl-C and SIGTERM; each time the
//! terminal must be given back as it was.

mod common;

use common::root;
use common::tmux::Tmux;

/// The grpctap process started with `--max-methods MARKER` (not the shell around it, whose
/// command line says the same).
fn grpctap_pid(marker: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            comm.trim() == "grpctap"
                && String::from_utf8_lossy(&cmdline).contains(&format!("{marker}\0testdata"))
        })
}

fn cmd(args: &str, capture: &str) -> String {
    format!(
        "cd {} && {} replay --tui --proto-path testdata/proto {args} testdata/captures/{capture}",
        root().display(),
        env!("CARGO_BIN_EXE_grpctap")
    )
}

#[test]
fn sort_filter_open_a_call_read_its_messages_and_quit() {
    // Each wait names everything it needs: a screen can be caught half redrawn.
    let t = Tmux::start("walk", &cmd("", "py-bodies-lo.pcap"), 100, 40);
    t.wait("the Methods view", |s| {
        s.contains("py-bodies-lo.pcap done") && s.contains("1 Methods") && s.contains("Echo/Unary")
    });
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
    let rows = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("/grpctap.test.Echo/"))
            .map(str::to_owned)
            .collect()
    };
    let s = t.wait("the filtered calls", |s| {
        s.contains("filter: status:invalid") && rows(s).len() == 3
    });
    assert!(
        rows(&s).iter().all(|r| r.contains("INVALID_ARGUMENT")),
        "{s}"
    );
    // Open the first one: its decoded request, then (a page down) its decoded error details.
    t.keys(&["Enter"]);
    t.wait("the call detail", |s| {
        s.contains("Call detail")
            && s.contains("INVALID_ARGUMENT (grpc-status 3, from trailers_only)")
            && s.contains("Request #1 (grpctap.test.EchoRequest)")
            && s.contains("\"statusMessage\": \"rich\"")
    });
    t.keys(&["PageDown"]);
    t.wait("the decoded error details", |s| {
        s.contains("google.rpc.BadRequest") && s.contains("\"reason\": \"QUOTA\"")
    });
    // A smaller terminal: everything is laid out again at 80x24.
    t.resize(80, 24);
    t.keys(&["Escape"]);
    let s = t.wait("the 80x24 calls view", |s| {
        s.lines().count() <= 24 && rows(s).len() == 3 && s.contains("q quit")
    });
    assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
    t.keys(&["q"]);
    let s = t.wait_exit(0);
    // The summary table follows the UI.
    assert!(
        s.contains("/grpctap.test.Echo/Unary") && s.contains("TOTAL"),
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
fn pause_stops_the_replay() {
    // 0.3 s of capture at a tenth of real time: 3 s of replay.
    let t = Tmux::start("pause", &cmd("--speed 0.1x", "py-basic-lo.pcap"), 100, 30);
    t.wait_for("0.1x");
    t.keys(&["p"]);
    t.wait_for("PAUSED");
    // Paused for longer than the whole replay would take...
    std::thread::sleep(std::time::Duration::from_millis(3500));
    t.keys(&["p"]);
    t.wait("the pause to end", |s| !s.contains("PAUSED"));
    // ... and still not at the end: reading stopped while paused.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let s = t.screen();
    assert!(!s.contains("py-basic-lo.pcap done"), "{s}");
    t.wait_for("py-basic-lo.pcap done");
    t.keys(&["q"]);
    t.wait_exit(0);
}

#[test]
fn sigterm_ends_a_replay_and_gives_the_terminal_back() {
    // 3.2 s of capture at a fifth of real time: 16 s, ended early by SIGTERM.
    let t = Tmux::start(
        "term",
        &cmd("--speed 0.2x --max-methods 10061", "py-edge-lo.pcap.gz"),
        100,
        30,
    );
    t.wait_for("0.2x");
    let pid = grpctap_pid("10061").expect("the grpctap process");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let s = t.wait_exit(0);
    assert!(s.contains("replay stopped before the end"), "{s}");
}

#[test]
fn closing_the_terminal_ends_it() {
    let t = Tmux::start(
        "hangup",
        &cmd("--max-methods 10063", "py-basic-lo.pcap"),
        80,
        24,
    );
    t.wait_for("py-basic-lo.pcap done");
    assert!(grpctap_pid("10063").is_some());
    t.hang_up();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while grpctap_pid("10063").is_some() {
        assert!(
            std::time::Instant::now() < until,
            "grpctap outlived its terminal"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn tls_connections_show_their_version_and_server_name() {
    let t = Tmux::start(
        "tls",
        &cmd(
            "--tls-keylog testdata/captures/go-tls13.keylog",
            "go-tls13-lo.pcap.gz",
        ),
        120,
        30,
    );
    t.wait_for("go-tls13-lo.pcap.gz done");
    t.keys(&["3"]);
    let s = t.wait("the TLS column", |s| {
        s.contains("TLS") && s.contains("1.3 localhost")
    });
    assert_eq!(s.matches("1.3 localhost").count(), 2, "{s}");
    t.keys(&["q"]);
    t.wait_exit(0);
}

#[test]
fn a_paced_replay_of_two_files_says_the_time_left_and_ends_on_the_whole_capture() {
    // connect-h2 then connect-h1, 10 s of capture time at 2x: about 5 s, paused once.
    let files = "connect-h2-lo.pcap.gz testdata/captures/connect-h1-lo.pcap.gz";
    let t = Tmux::start("paced", &cmd("--speed 2x", files), 120, 30);
    let s = t.wait("the time left", |s| s.contains(" left") && s.contains("2x"));
    assert!(s.contains("last 10s"), "the window while it runs: {s}");
    assert!(!s.contains("100%"), "{s}");
    t.keys(&["p"]);
    t.wait_for("PAUSED");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    t.keys(&["p"]);
    let s = t.wait("the end", |s| {
        s.contains(" done") && s.contains("whole capture")
    });
    // Resuming does not rush the replay past what the UI's channel holds.
    assert!(s.contains("ui-drop 0"), "{s}");
    t.keys(&["w"]);
    t.wait_for("last 10s");
    t.keys(&["q"]);
    t.wait_exit(0);
}

#[test]
fn a_range_chosen_with_the_keys_narrows_every_view() {
    let t = Tmux::start("range", &cmd("", "go-deadlines-lo.pcap.gz"), 110, 34);
    t.wait("the whole capture", |s| {
        s.contains("go-deadlines-lo.pcap.gz done") && s.contains("whole capture")
    });
    t.keys(&["v"]);
    t.wait_for("mark this end");
    t.keys(&["Home", "v", "Right", "Right", "Enter"]);
    let s = t.wait_for("range +0s..+3s");
    assert!(s.contains("in the range:"), "{s}");
    // The range's findings: the files read again.
    t.keys(&["4"]);
    let s = t.wait_for("calls that ended in the range +0s..+3s");
    assert!(s.contains("deadline_exceeded"), "{s}");
    t.keys(&["2"]);
    t.wait_for("Ago▲");
    t.keys(&["x"]);
    t.wait_for("whole capture");
    t.keys(&["q"]);
    t.wait_exit(0);
}

#[test]
fn f_opens_the_frames_of_a_call_and_of_a_connection() {
    let t = Tmux::start("frames", &cmd("", "tonic-basic-lo.pcap"), 130, 40);
    t.wait("the replay's end", |s| {
        s.contains("tonic-basic-lo.pcap done") && s.contains("Echo/Unary")
    });
    // The newest call's detail, then its frames.
    t.keys(&["2", "Enter"]);
    t.wait_for("Call detail");
    t.keys(&["f"]);
    let s = t.wait("the call's frames", |s| {
        s.contains("Frames of call")
            && s.contains(":path: /grpctap.test.Echo/")
            && s.contains("C→S DATA")
    });
    assert!(s.contains("HEADERS") && s.contains("DATA"), "{s}");
    assert!(s.contains("indexed"), "HPACK representations: {s}");
    t.keys(&["Escape"]);
    t.wait_for("Call detail");
    // A connection's frames start with its SETTINGS.
    t.keys(&["Escape"]);
    t.wait_for("Enter open");
    t.keys(&["3"]);
    t.wait_for("Client");
    t.keys(&["f"]);
    let s = t.wait("the connection's frames", |s| {
        s.contains("Frames of connection") && s.contains("SETTINGS")
    });
    assert!(s.contains("every frame of the connection"), "{s}");
    t.keys(&["End"]);
    t.wait_for("grpc-status");
    t.keys(&["q"]);
    t.wait_exit(0);
}

#[test]
fn the_findings_view_shows_a_retry_storm_and_opens_its_calls() {
    let t = Tmux::start("findings", &cmd("", "retries-lo.pcap.gz"), 120, 32);
    t.wait("the replay's end", |s| {
        s.contains("retries-lo.pcap.gz done")
    });
    t.keys(&["4"]);
    let s = t.wait("the findings", |s| {
        s.contains("Severity") && s.contains("retry storm") && s.contains("fix:")
    });
    assert!(s.contains("critical retries"), "{s}");
    t.keys(&["Enter"]);
    t.wait_for("filter: method:/grpctap.test.Echo/Una");
    t.keys(&["q"]);
    t.wait_exit(0);
}

//! The terminal UI over replays of real captures, drawn on ratatui's TestBackend and compared
//! with reviewed snapshots (src/snapshots/); keys are sent as the terminal would send them.

use std::path::{Path, PathBuf};

use capture::Reassembler;
use capture::input::{Next, PacketSource};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui::app::App;

use crate::fanout::Fanout;
use crate::pipeline::Pipeline;
use crate::run::decoder_limits;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name)
}

/// The test schemas, compiled once.
fn schemas() -> std::sync::Arc<decoder::schema::Schemas> {
    static SCHEMAS: std::sync::OnceLock<std::sync::Arc<decoder::schema::Schemas>> =
        std::sync::OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            let (schemas, errors) = crate::schemas::load(&crate::schemas::SchemaSources {
                proto_paths: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/proto")],
                ..Default::default()
            });
            assert!(errors.is_empty(), "{errors:?}");
            std::sync::Arc::new(schemas)
        })
        .clone()
}

/// Replays `name` (the first `stop_after` packets, or all) with the UI's feeder attached, as
/// `replay --tui` does, and returns every event the UI was sent.
fn replay_events(name: &str, stop_after: Option<u64>) -> Vec<tui::feed::UiEvent> {
    replay_events_keyed(name, stop_after, None)
}

/// [`replay_events`], TLS decrypted with the key log file `keylog` of testdata/captures.
fn replay_events_keyed(
    name: &str,
    stop_after: Option<u64>,
    keylog: Option<&str>,
) -> Vec<tui::feed::UiEvent> {
    replay_full(name, stop_after, keylog).0
}

/// [`replay_events_keyed`], and what the summary table of the same replay was built from (its
/// aggregates and the capture's duration in seconds).
fn replay_full(
    name: &str,
    stop_after: Option<u64>,
    keylog: Option<&str>,
) -> (Vec<tui::feed::UiEvent>, crate::summary::Summary, f64) {
    let (feeder, rx, _shared) = tui::feed::channel(1 << 16);
    let mut out = Fanout::default();
    out.push(crate::summary::Summary::new(
        decoder::aggregate::DEFAULT_MAX_METHODS,
    ));
    out.push(feeder.with_findings(Some(decoder::findings::Findings::new(
        decoder::findings::Thresholds::default(),
    ))));
    let limits = decoder_limits(false, false, true, 16 << 20);
    let keys = std::sync::Arc::new(decoder::tls::keylog::KeyLog::new());
    if let Some(k) = keylog {
        keys.add_text(&std::fs::read_to_string(capture(k)).expect("key log"), 1);
    }
    let mut pipeline = Pipeline::new(
        limits,
        decoder::reflection::SchemaStore::new(Some(schemas())),
        out,
    )
    .with_keylog(keys);
    let climits = capture::CaptureLimits::default();
    let mut files = capture::input::Files::new(vec![capture(name)], climits.max_block_size);
    let mut reasm = Reassembler::new(climits);
    let mut n = 0;
    while let Ok(Next::Packet(p)) = files.next_packet() {
        n += 1;
        if stop_after.is_some_and(|s| n > s) {
            break;
        }
        reasm.handle_packet(&p, &mut pipeline);
    }
    let reports = files.reports();
    assert!(reports[0].error.is_none(), "{:?}", reports[0].error);
    let tick = decoder::output::Tick {
        now: pipeline.last_ts,
        first: pipeline.first_ts,
        health: crate::decode::health(reasm.stats(), 0),
        source: &files.name(),
        progress: None,
        done: true,
        conns: &pipeline.conns,
    };
    pipeline.out.end_of_input(&tick);
    // As `replay` ends: the capture layer ends what is open (the UI hears no more).
    reasm.finish(&mut pipeline);
    let span = crate::summary::span(pipeline.first_ts, pipeline.last_ts);
    let summary = pipeline
        .out
        .get_mut::<crate::summary::Summary>()
        .map(|s| std::mem::replace(s, crate::summary::Summary::new(1)))
        .expect("summary");
    drop(pipeline);
    (rx.try_iter().flatten().collect(), summary, span)
}

/// A UI that was sent `events`.
fn app_of(events: Vec<tui::feed::UiEvent>) -> App {
    let mut app = App::new(
        tui::model::Model::new(tui::model::ModelLimits::default()),
        tui::detail::Decode {
            store: Some(decoder::reflection::SchemaStore::new(Some(schemas()))),
            cap: 16 << 20,
            // As a user gives it (relative): the commands say it as given.
            proto_paths: vec![PathBuf::from("testdata/proto")],
        },
    );
    for ev in events {
        app.model.apply(ev);
    }
    app
}

/// The UI after a replay of `name` (see [`replay_events`]).
fn replayed(name: &str, stop_after: Option<u64>) -> App {
    app_of(replay_events(name, stop_after))
}

/// The screen as text, one line per row, trailing spaces cut.
fn screen(app: &mut App, width: u16, height: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    term.draw(|f| tui::view::draw(f, app)).expect("draw");
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Presses `keys`, drawing after each as the terminal loop does (rows a key acts on are the
/// rows last drawn).
fn keys(app: &mut App, keys: &str) {
    for c in keys.chars() {
        screen(app, 100, 40);
        let code = match c {
            '\n' => KeyCode::Enter,
            '\t' => KeyCode::Tab,
            '\x1b' => KeyCode::Esc,
            c => KeyCode::Char(c),
        };
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
    screen(app, 100, 40);
}

/// A finished replay shows the whole capture, and there every method's figures are the summary
/// table's: calls, errors, calls/s (calls over the capture's duration), p50 and p99 (the same
/// histogram). Cycling the window shows the last 10 s, 1 min and 5 min of capture time.
#[test]
fn the_whole_capture_after_the_end_equals_the_summary_table() {
    for name in [
        "go-midjoin-lo.pcap.gz",
        "connect-h1-lo.pcap.gz",
        "py-basic-lo.pcap",
    ] {
        let (events, summary, span) = replay_full(name, None, None);
        let mut app = app_of(events);
        assert_eq!(app.model.window, tui::model::Window::Whole, "{name}");
        let table = crate::summary::render_table(
            &summary.agg,
            &capture::CaptureStats::default(),
            &summary.stats,
            span,
        );
        let methods = summary.agg.methods();
        assert!(methods.len() >= 4, "{name}");
        for (method, m) in &methods {
            let i = app
                .model
                .methods()
                .iter()
                .position(|r| &*r.name == *method)
                .unwrap_or_else(|| panic!("{name}: {method} not in the UI"));
            let r = app.model.method_stats(i);
            let at = format!("{name} {method}");
            assert_eq!(r.calls, m.calls, "{at}");
            assert_eq!(r.errors, m.errors(), "{at}");
            // The table's RATE/s, to its one decimal.
            let rate = format!("{:.1}", r.rate);
            assert_eq!(rate, format!("{:.1}", m.calls as f64 / span), "{at}");
            let row = table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(*method))
                .unwrap_or_else(|| panic!("{at}: no table row"));
            assert_eq!(
                row.split_whitespace().nth(2),
                Some(rate.as_str()),
                "{at}: {row}"
            );
            for (k, q) in [(0, 0.5), (2, 0.99)] {
                assert_eq!(r.latency[k], m.latency.quantile(q), "{at} q{q}");
            }
        }
        // The key cycles 10 s, 1 min, 5 min, and back to the whole capture.
        for want in [
            tui::model::Window::Secs10,
            tui::model::Window::Min1,
            tui::model::Window::Min5,
            tui::model::Window::Whole,
        ] {
            keys(&mut app, "w");
            assert_eq!(app.model.window, want, "{name}");
            assert!(screen(&mut app, 100, 30).contains(want.name()), "{name}");
        }
    }
}

/// The sort arrow says the same in every column (▼: the largest first), a reverse stays in its
/// view, Ctrl-U clears a filter, and the Connections view shows the id its Enter filters by.
#[test]
fn sorts_filters_and_connection_ids() {
    let mut app = replayed("py-basic-lo.pcap", None);
    let top = |app: &mut App| screen(app, 100, 30).lines().next().unwrap_or("").to_owned();
    assert!(top(&mut app).contains("sort calls/s▼"), "{}", top(&mut app));
    // The method name sorts A first: ▲; reversed, Z first: ▼.
    keys(&mut app, "sssssss");
    assert_eq!(app.method_sort, tui::app::MethodSort::Name);
    assert!(top(&mut app).contains("sort method▲"), "{}", top(&mut app));
    keys(&mut app, "r");
    assert!(top(&mut app).contains("sort method▼"), "{}", top(&mut app));
    // The Calls view keeps its own order: newest first (the smallest "Ago"), not reversed.
    keys(&mut app, "2");
    let s = screen(&mut app, 100, 30);
    assert!(
        s.lines().next().unwrap_or("").contains("sort newest▲"),
        "{s}"
    );
    assert!(s.lines().nth(1).unwrap_or("").starts_with("Ago▲"), "{s}");
    // Ctrl-U clears the filter, while typing it and after.
    keys(&mut app, "/status:error");
    let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
    app.on_key(ctrl_u);
    assert_eq!(app.input.as_deref(), Some(""));
    assert!(app.call_filter.is_empty());
    keys(&mut app, "status:ok\n");
    assert!(!app.call_filter.is_empty());
    app.on_key(ctrl_u);
    assert!(app.call_filter.is_empty());
    // Connections: each row's id is the one `conn:` takes.
    keys(&mut app, "3");
    let s = screen(&mut app, 100, 30);
    let first = s.lines().nth(1).unwrap_or("");
    assert!(first.starts_with("Id "), "{s}");
    let id = s
        .lines()
        .nth(2)
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    keys(&mut app, "\n");
    assert_eq!(app.call_filter.text(), format!("conn:{id}"));
    let shown: std::collections::HashSet<u64> = app
        .call_lines
        .iter()
        .filter_map(|l| match l {
            tui::app::CallLine::Done(i) => app.model.recent.get(*i).map(|c| c.conn.get()),
            tui::app::CallLine::Open(i) => app.model.open.get(*i).map(|c| c.conn.get()),
        })
        .collect();
    assert_eq!(
        shown.into_iter().collect::<Vec<_>>(),
        vec![id.parse::<u64>().expect("id")]
    );
}

/// A range chosen on the timeline with the keys: every view shows only the calls that ended
/// in it (the Calls view exactly those, the Methods counts theirs, the Connections view the
/// connections that carried them); `x` gives every call back.
#[test]
fn a_range_chosen_on_the_timeline_shows_only_the_calls_that_ended_in_it() {
    let mut app = replayed("go-deadlines-lo.pcap.gz", None);
    screen(&mut app, 100, 30);
    let press = |app: &mut App, code: KeyCode| {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
        screen(app, 100, 30);
    };
    press(&mut app, KeyCode::Char('v'));
    assert!(app.selecting.is_some());
    press(&mut app, KeyCode::Home);
    for _ in 0..3 {
        press(&mut app, KeyCode::Right);
    }
    press(&mut app, KeyCode::Char('v'));
    for _ in 0..5 {
        press(&mut app, KeyCode::Right);
    }
    press(&mut app, KeyCode::Enter);
    let (from, to) = app.model.range.expect("a range");
    assert!(to > from && app.selecting.is_none());
    let s = screen(&mut app, 100, 30);
    assert!(
        s.lines().next().unwrap_or("").contains("range +3s..+9s"),
        "{s}"
    );
    insta::assert_snapshot!("methods_range_100x30", s);
    let ended_in = |c: &decoder::CallRecord| {
        c.end
            .or(c.start)
            .is_some_and(|e| e.0 >= from * 1_000_000_000 && e.0 < to * 1_000_000_000)
    };
    let want: Vec<usize> = (0..app.model.recent.len())
        .filter(|&i| ended_in(&app.model.recent[i]))
        .collect();
    assert!(
        want.len() > 10 && want.len() < app.model.recent.len(),
        "{}",
        want.len()
    );
    // Calls: exactly those.
    keys(&mut app, "2");
    let mut shown: Vec<usize> = app
        .call_lines
        .iter()
        .map(|l| match l {
            tui::app::CallLine::Done(i) => *i,
            tui::app::CallLine::Open(_) => usize::MAX,
        })
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, want);
    // Methods: their counts.
    for i in 0..app.model.methods().len() {
        let name = app.model.methods()[i].name.clone();
        let n = want
            .iter()
            .filter(|&&k| {
                app.model.recent[k]
                    .method_label()
                    .is_some_and(|l| *l == *name)
            })
            .count() as u64;
        assert_eq!(app.model.method_row(i).calls, n, "{name}");
    }
    // Connections: the ones that carried them.
    keys(&mut app, "3");
    let conns: std::collections::BTreeSet<decoder::ConnId> =
        want.iter().map(|&k| app.model.recent[k].conn).collect();
    let listed: std::collections::BTreeSet<decoder::ConnId> =
        app.conn_lines.iter().copied().collect();
    assert_eq!(listed, conns);
    keys(&mut app, "x");
    assert!(app.model.range.is_none());
    keys(&mut app, "2");
    assert_eq!(
        app.call_lines.len(),
        app.model.recent.len() + app.model.open.len()
    );
}

/// The call detail's grpcurl command, for every call of a real capture whose outcome the
/// request decides: its parts (method, `-d` JSON, `-H` metadata, `-max-time`) sent again by
/// python grpcio's generic client to a real grpcio server get the status, message and response
/// messages the capture shows (but the `peer` field, the client's address).
#[test]
fn grpcurl_commands_make_the_calls_again() {
    let app = replayed("py-bodies-lo.pcap", None);
    let mut cmds = Vec::new();
    let mut want = Vec::new();
    let schemas = schemas();
    for c in &app.model.recent {
        let by_request = matches!(c.status.map(|s| s.0), Some(0 | 3 | 5 | 9 | 14));
        if !by_request || c.resp.bodies.len() as u64 != c.resp.msgs {
            continue;
        }
        let cmd = tui::detail::grpcurl(c, &app.decode).expect("a command");
        assert!(cmd.starts_with("grpcurl -plaintext "), "{cmd}");
        assert!(
            cmd.contains("-import-path ") && cmd.contains(" -proto echo.proto"),
            "{cmd}"
        );
        let info = schemas
            .method(c.method.as_deref().expect("method"))
            .expect("schema");
        let mut budget = decoder::payload::OutputBudget::CALLS;
        let resp: Vec<serde_json::Value> = c
            .resp
            .bodies
            .iter()
            .map(|b| {
                let mut v = decoder::payload::message_json(
                    b,
                    c.resp.encoding.as_deref(),
                    Some(&info.output),
                    Some(&schemas),
                    16 << 20,
                    &mut budget,
                );
                if let Some(o) = v.as_object_mut() {
                    o.remove("peer");
                }
                v
            })
            .collect();
        want.push((
            c.status.map_or("", |s| s.name()).to_owned(),
            c.grpc_message.clone().unwrap_or_default(),
            resp,
        ));
        cmds.push(cmd);
    }
    assert!(cmds.len() >= 5, "{}", cmds.len());
    // The detail shows the command and hands it to the terminal's clipboard.
    let mut app = app;
    keys(&mut app, "2/status:ok method:Unary\n\n");
    assert!(app.detail_call.is_some());
    keys(&mut app, "c");
    let copied = app.clipboard.take().expect("copied");
    assert!(copied.starts_with("grpcurl "), "{copied}");
    insta::assert_snapshot!("detail_grpcurl_100x40", screen(&mut app, 100, 40));
    let dir = std::env::temp_dir().join(format!("grpctap-grpcurl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cases = dir.join("cases.json");
    std::fs::write(&cases, serde_json::to_string(&cmds).expect("json")).expect("write");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/grpcurl_replay.py"))
        .arg(root.join("testdata/proto"))
        .arg(&cases)
        .output()
        .expect("python3");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(got.len(), cmds.len());
    for ((g, (status, message, resp)), cmd) in got.iter().zip(&want).zip(&cmds) {
        assert_eq!(g["status"], status.as_str(), "{cmd}");
        if status != "OK" {
            assert_eq!(g["message"], message.as_str(), "{cmd}");
        }
        let mut theirs = g["response"].as_array().cloned().unwrap_or_default();
        for v in &mut theirs {
            if let Some(o) = v.as_object_mut() {
                o.remove("peer");
            }
        }
        assert_eq!(&theirs, resp, "{cmd}");
    }
}

/// `W` writes the packets of a call (its connection up to the call's end) or of a connection
/// to a pcapng, read again from the replay's files; replayed, the file gives the same call, and
/// the same calls of the connection.
#[test]
fn written_packets_replay_to_the_same_calls() {
    let name = "connect-h2-lo.pcap.gz";
    let dir = std::env::temp_dir().join(format!("grpctap-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut app = with_files(replayed(name, None), name, &dir);
    let wait = |app: &mut App| -> String {
        for _ in 0..500 {
            if app.poll_job() {
                return app.popup.take().map(|p| p.1).unwrap_or_default();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the write did not finish");
    };
    let facts = |c: &decoder::CallRecord| {
        (
            c.client,
            c.server,
            c.stream_id,
            c.method.clone(),
            c.status,
            c.req.msgs,
            c.resp.msgs,
        )
    };
    // A call in the middle of a connection that carried many.
    keys(&mut app, "2");
    let pick = (0..app.call_lines.len())
        .find(|&k| match app.call_lines[k] {
            tui::app::CallLine::Done(i) => app.model.recent[i].stream_id > 9,
            tui::app::CallLine::Open(_) => false,
        })
        .expect("a call past stream 9");
    app.selected[1] = pick;
    screen(&mut app, 100, 30);
    let tui::app::CallLine::Done(i) = app.call_lines[pick] else {
        unreachable!("picked a finished call")
    };
    let want = facts(&app.model.recent[i]);
    // W, then the file it wrote replayed: what it said and the calls of the replay.
    let write = |app: &mut App| {
        app.on_key(KeyEvent::new(KeyCode::Char('W'), KeyModifiers::SHIFT));
        let said = wait(app);
        let file = std::fs::read_dir(&dir)
            .expect("dir")
            .next()
            .expect("a file")
            .expect("entry")
            .path();
        let again = app_of(replay_events(file.to_str().expect("path"), None));
        std::fs::remove_file(&file).expect("rm");
        let calls: Vec<_> = again.model.recent.iter().map(|c| facts(c)).collect();
        (said, calls)
    };
    let (said, got) = write(&mut app);
    assert!(said.contains("written to"), "{said}");
    assert!(got.contains(&want), "{want:?} not in {got:?}");
    assert!(
        got.iter().all(|g| g.0 == want.0 && g.2 <= want.2),
        "only that connection, up to the call"
    );
    // A connection: all its calls.
    keys(&mut app, "3");
    let id = app.conn_lines[app.selected[2]];
    let conn = app.model.conns[&id].clone();
    let mut theirs: Vec<_> = app
        .model
        .recent
        .iter()
        .filter(|c| c.conn == id)
        .map(|c| facts(c))
        .collect();
    let (said, mut got) = write(&mut app);
    assert!(
        said.contains(&format!("{} ↔ {}", conn.client, conn.server)),
        "{said}"
    );
    theirs.sort();
    got.sort();
    assert!(theirs.len() > 3, "{}", theirs.len());
    assert_eq!(got, theirs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Servers named by the DNS answers in the capture (clients dialed them by name: c-ares and
/// getaddrinfo over UDP, dig over UDP and TCP; a CNAME): the Connections view shows each
/// server's names next to its address.
#[test]
fn servers_are_named_by_the_dns_answers_in_the_capture() {
    let events = replay_events("dns-names-lo.pcap.gz", None);
    let named = |ip: [u8; 4], name: &str| {
        events
            .iter()
            .filter(|e| {
                matches!(e, tui::feed::UiEvent::Name { addr, name: n }
                if *addr == std::net::IpAddr::from(ip) && &**n == name)
            })
            .count()
    };
    // echo: dig and c-ares (UDP); api, a CNAME to echo; store: getaddrinfo (UDP) and dig +tcp.
    assert_eq!(named([127, 0, 0, 1], "echo.grpctap.test"), 2);
    assert_eq!(named([127, 0, 0, 1], "api.grpctap.test"), 1);
    assert_eq!(
        named([127, 0, 0, 2], "store.grpctap.test"),
        2,
        "UDP and TCP"
    );
    assert!(
        !events.iter().any(
            |e| matches!(e, tui::feed::UiEvent::Name { name, .. } if name.contains("missing"))
        ),
        "an NXDOMAIN names nothing"
    );
    let mut app = app_of(events);
    keys(&mut app, "3");
    let s = screen(&mut app, 130, 30);
    let row = |port: &str| {
        s.lines()
            .find(|l| l.contains(&format!(":{port} ")))
            .unwrap_or_else(|| panic!("no row for {port}: {s}"))
            .to_owned()
    };
    assert!(
        row("50281").contains("echo.grpctap.test, api.grpctap.test"),
        "{s}"
    );
    assert!(row("50282").contains("store.grpctap.test"), "{s}");
    insta::assert_snapshot!("connections_named_130x30", s);
}

#[test]
fn methods_view_at_80x24_and_grouped_wide() {
    let mut app = replayed("py-basic-lo.pcap", None);
    insta::assert_snapshot!("methods_80x24", screen(&mut app, 80, 24));
    // Sorted by error rate, then grouped by service on a wide terminal.
    keys(&mut app, "ssg");
    insta::assert_snapshot!(
        "methods_by_errors_grouped_120x30",
        screen(&mut app, 120, 30)
    );
}

#[test]
fn calls_view_filters_by_status_and_method() {
    let mut app = replayed("py-basic-lo.pcap", None);
    keys(&mut app, "2");
    insta::assert_snapshot!("calls_80x24", screen(&mut app, 80, 24));
    keys(&mut app, "/status:error\n");
    let s = screen(&mut app, 80, 24);
    insta::assert_snapshot!("calls_errors_80x24", s);
    // Enter on a method in the Methods view lists that method's calls.
    keys(&mut app, "1j\n");
    insta::assert_snapshot!("calls_of_second_method_80x24", screen(&mut app, 80, 24));
}

/// Every Calls row as (method, messages) cells read off the screen: the columns are
/// separated by spaces and neither cell has one.
fn call_cells(screen: &str) -> Vec<(String, String)> {
    screen
        .lines()
        .skip(2)
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t.len() >= 5 && t[4].contains('/')).then(|| (t[1].to_owned(), t[4].to_owned()))
        })
        .collect()
}

#[test]
fn calls_view_shows_whole_method_names_and_message_counts() {
    // The longest stream of each capture shows its counts whole at every width, and the
    // method whole from 120 columns up, cut with a mark below.
    for name in ["py-mixed-veth.pcap", "py-streams-lo.pcap.gz"] {
        if !capture(name).exists() {
            continue;
        }
        let mut app = replayed(name, None);
        let calls: std::collections::HashSet<(String, String)> = app
            .model
            .recent
            .iter()
            .map(|c| {
                (
                    c.method_label()
                        .map_or("<unknown>".to_owned(), |l| l.into_owned()),
                    format!("{}/{}", c.req.msgs, c.resp.msgs),
                )
            })
            .collect();
        keys(&mut app, "2");
        for width in [80, 120, 160] {
            let text = screen(&mut app, width, 50);
            let rows = call_cells(&text);
            assert!(rows.len() > 10, "{name} at {width}: rows read");
            for (method, msgs) in rows {
                if width >= 120 {
                    assert!(
                        calls.contains(&(method.clone(), msgs.clone())),
                        "{name} at {width} columns: {method} {msgs} is not a call"
                    );
                } else {
                    assert!(
                        calls.iter().any(|(m, n)| *n == msgs
                            && (m == &method || method.contains('…') || m.ends_with(&method))),
                        "{name} at {width} columns: {method} {msgs} is not a call"
                    );
                }
            }
        }
    }
}

#[test]
fn open_streams_show_mid_replay() {
    // The first 60 packets of the edge capture: streams still open.
    let mut app = replayed("py-edge-lo.pcap.gz", Some(60));
    assert!(app.model.open_total > 0, "streams open at this point");
    keys(&mut app, "2");
    insta::assert_snapshot!("calls_open_streams_100x30", screen(&mut app, 100, 30));
}

#[test]
fn call_detail_shows_timeline_messages_and_error_details() {
    let mut app = replayed("py-bodies-lo.pcap", None);
    keys(&mut app, "2");
    screen(&mut app, 100, 40);
    keys(&mut app, "/status:invalid\n");
    screen(&mut app, 100, 40);
    keys(&mut app, "\n");
    let top = screen(&mut app, 100, 60);
    assert!(
        top.contains("INVALID_ARGUMENT (grpc-status 3, from trailers_only)"),
        "{top}"
    );
    insta::assert_snapshot!("detail_rich_error_100x60", top);
    keys(&mut app, &"j".repeat(45));
    insta::assert_snapshot!(
        "detail_rich_error_scrolled_100x60",
        screen(&mut app, 100, 60)
    );
    // Esc goes back to the list, as it was.
    keys(&mut app, "\x1b");
    assert!(screen(&mut app, 100, 40).contains("INVALID_ARGUMENT"));
}

#[test]
fn connections_view_and_help() {
    let mut app = replayed("py-basic-lo.pcap", None);
    keys(&mut app, "3");
    insta::assert_snapshot!("connections_80x24", screen(&mut app, 80, 24));
    keys(&mut app, "?");
    insta::assert_snapshot!("help_80x24", screen(&mut app, 80, 24));
}

#[test]
fn tls_shows_in_the_connections_view_and_the_call_detail() {
    let events = replay_events_keyed("go-tls13-lo.pcap.gz", None, Some("go-tls13.keylog"));
    let mut app = app_of(events);
    keys(&mut app, "3");
    let s = screen(&mut app, 120, 24);
    assert!(s.contains("TLS"), "{s}");
    assert_eq!(s.matches("1.3 localhost").count(), 2, "{s}");
    keys(&mut app, "2\n");
    let s = screen(&mut app, 120, 40);
    assert!(
        s.contains("TLS 1.3, decrypted · server name localhost"),
        "{s}"
    );
    // Without TLS connections the view has no TLS column.
    let mut app = replayed("py-basic-lo.pcap", None);
    keys(&mut app, "3");
    assert!(!screen(&mut app, 120, 24).contains("TLS"));
}

#[test]
fn tiny_and_resized_terminals_draw_without_panicking() {
    let mut app = replayed("py-bodies-lo.pcap", None);
    for view in ["1", "2", "3", "2\n"] {
        keys(&mut app, view);
        for (w, h) in [(1, 1), (20, 5), (40, 10), (80, 24), (200, 60)] {
            let s = screen(&mut app, w, h);
            assert_eq!(s.lines().count(), usize::from(h));
        }
        keys(&mut app, "\x1b");
    }
}

#[test]
fn model_counts_equal_the_client_log() {
    use std::collections::BTreeMap;
    let log = std::fs::read_to_string(capture("py-mixed-veth.calls.jsonl")).expect("log");
    // method -> (calls, status -> count); client address -> calls.
    let mut want: BTreeMap<String, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut per_conn: BTreeMap<u64, u64> = BTreeMap::new();
    let mut peers: BTreeMap<u64, String> = BTreeMap::new();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let m = want
            .entry(v["method"].as_str().expect("method").to_owned())
            .or_default();
        m.0 += 1;
        *m.1.entry(v["status"].as_str().expect("status").to_owned())
            .or_default() += 1;
        // The client's channel number; its address is logged on the calls that succeeded.
        let conn = v["conn"].as_u64().expect("conn");
        *per_conn.entry(conn).or_default() += 1;
        if let Some(peer) = v["client_peer"].as_str() {
            peers.insert(conn, peer.trim_start_matches("ipv4:").to_owned());
        }
    }
    let by_client: BTreeMap<String, u64> = per_conn
        .iter()
        .map(|(c, n)| (peers[c].clone(), *n))
        .collect();
    let mut app = replayed("py-mixed-veth.pcap", None);
    let mut got = BTreeMap::new();
    for i in 0..app.model.methods().len() {
        let row = app.model.method_stats(i);
        let status: BTreeMap<String, u64> = app.model.methods()[i]
            .codes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| {
                (
                    decoder::grpc::Code(u32::try_from(c).expect("code"))
                        .name()
                        .to_owned(),
                    *n,
                )
            })
            .collect();
        assert_eq!(
            row.errors,
            status
                .iter()
                .filter(|(k, _)| *k != "OK")
                .map(|(_, v)| v)
                .sum::<u64>()
        );
        got.insert(row.name.to_string(), (row.calls, status));
    }
    assert_eq!(got, want);
    let conns: BTreeMap<String, u64> = app
        .model
        .conns
        .values()
        .map(|c| (c.client.to_string(), c.calls))
        .collect();
    assert_eq!(conns, by_client);
    assert_eq!(app.model.recent.len(), 660);
    assert_eq!(app.dropped, 0);
}

mod random_keys {
    use super::*;
    use proptest::prelude::*;

    /// Keys a user can press, filter text included.
    const KEYS: &[char] = &[
        'j', 'k', 's', 'S', 'g', 'p', '?', '/', '\n', '\t', '\x1b', '1', '2', '3', 'G', ' ', 'e',
        'r', 'o', ':', 'x', 'U', '5',
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of keys at any size draws without panicking and keeps every selection
        /// on a row that exists.
        #[test]
        fn any_keys_any_size(seq in proptest::collection::vec(0..KEYS.len(), 1..60), w in 1u16..160, h in 1u16..60) {
            static EVENTS: std::sync::OnceLock<Vec<tui::feed::UiEvent>> = std::sync::OnceLock::new();
            let mut app = app_of(EVENTS.get_or_init(|| replay_events("py-basic-lo.pcap", None)).clone());
            for k in seq {
                let code = match KEYS[k] {
                    '\n' => KeyCode::Enter,
                    '\t' => KeyCode::Tab,
                    '\x1b' => KeyCode::Esc,
                    c => KeyCode::Char(c),
                };
                app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
                screen(&mut app, w, h);
                prop_assert!(app.selected[0] < app.method_lines.len() || app.method_lines.is_empty());
                prop_assert!(app.selected[1] < app.call_lines.len() || app.call_lines.is_empty());
            }
        }
    }
}

/// The frames a call's view lists, checked against what the replay counted of the call: one
/// request header block naming its method, DATA carrying exactly its messages (each with its
/// 5-byte prefix) both ways, its trailers' grpc-status, and a RST_STREAM with its code exactly
/// when it was reset. Captures of five stacks, each seen from its start.
#[test]
fn the_frames_of_every_call_are_what_its_record_counted() {
    use decoder::framelog::{FrameDetail, Scope};
    use decoder::h2::frame::Kind;
    let mut checked = 0;
    for name in [
        "py-basic-lo.pcap",
        "tonic-edge-lo.pcap.gz",
        "go-deadlines-lo.pcap.gz",
        "node-clear-lo.pcap.gz",
        "connect-h2-lo.pcap.gz",
    ] {
        let app = replayed(name, None);
        assert!(!app.model.recent.is_empty(), "{name}");
        for c in app.model.recent.iter() {
            if c.http1 || c.protocol != decoder::calls::RequestKind::Grpc {
                continue;
            }
            let opened = app.model.conns[&c.conn].opened;
            let log = crate::extract::connection_frames(
                &[capture(name)],
                (c.client, c.server),
                (opened, c.end),
                Scope::Stream {
                    id: c.stream_id,
                    since: c.start.expect("start"),
                },
                (decoder::DecoderLimits::default(), Default::default()),
            )
            .expect("frames");
            let what = format!("{name} conn {} stream {}", c.conn.get(), c.stream_id);
            let of_stream: Vec<_> = log
                .frames()
                .filter(|f| f.head.stream == c.stream_id)
                .collect();
            assert!(
                log.frames()
                    .all(|f| f.head.stream == c.stream_id || f.head.stream == 0),
                "{what}: only its stream and the connection's"
            );
            let blocks: Vec<_> = of_stream
                .iter()
                .filter_map(|f| match &f.detail {
                    FrameDetail::Headers(b) => Some((f.from, b)),
                    _ => None,
                })
                .collect();
            let value = |b: &decoder::framelog::HeaderBlock, n: &str| {
                b.fields
                    .iter()
                    .find(|h| h.name == n)
                    .and_then(|h| h.value.clone())
            };
            let requests: Vec<_> = blocks
                .iter()
                .filter(|(from, _)| *from == decoder::Side::Client)
                .collect();
            assert_eq!(requests.len(), 1, "{what}");
            assert_eq!(
                value(requests[0].1, ":path").as_deref(),
                c.method.as_deref(),
                "{what}"
            );
            let data = |from| -> u64 {
                of_stream
                    .iter()
                    .filter(|f| f.from == from)
                    .map(|f| match f.detail {
                        FrameDetail::Data { data_len } => u64::from(data_len),
                        _ => 0,
                    })
                    .sum()
            };
            assert_eq!(
                data(decoder::Side::Client),
                c.req.bytes + 5 * c.req.msgs,
                "{what}: request DATA"
            );
            assert_eq!(
                data(decoder::Side::Server),
                c.resp.bytes + 5 * c.resp.msgs,
                "{what}: response DATA"
            );
            let trailers = blocks
                .iter()
                .rev()
                .find(|(from, b)| {
                    *from == decoder::Side::Server && value(b, "grpc-status").is_some()
                })
                .and_then(|(_, b)| value(b, "grpc-status"))
                .and_then(|v| v.parse::<u32>().ok());
            assert_eq!(trailers, c.grpc_status, "{what}: grpc-status");
            // A reset after the server ended the stream (grpcio's NO_ERROR after its trailers)
            // is listed, but the call had ended.
            let server_end = of_stream
                .iter()
                .position(|f| {
                    f.from == decoder::Side::Server
                        && matches!(f.head.kind, Kind::HEADERS | Kind::DATA)
                        && f.head.flags.0 & 0x1 != 0
                })
                .unwrap_or(of_stream.len());
            let reset = of_stream[..server_end].iter().find_map(|f| match f.detail {
                FrameDetail::Reset(code) if f.head.kind == Kind::RST_STREAM => {
                    Some((f.from, code.0))
                }
                _ => None,
            });
            assert_eq!(reset, c.reset.map(|r| (r.by, r.code)), "{what}: reset");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} calls checked");
}

/// Every frame of the connection `conn` of capture `name`, decoded again.
fn connection_frames(name: &str, conn: &tui::model::ConnInfo) -> decoder::framelog::FrameLog {
    crate::extract::connection_frames(
        &[capture(name)],
        (conn.client, conn.server),
        (conn.opened, None),
        decoder::framelog::Scope::Connection,
        (decoder::DecoderLimits::default(), Default::default()),
    )
    .expect("frames")
}

/// `app` reading the capture `name` again (for `W` and `f`), writing into `dir`.
fn with_files(mut app: App, name: &str, dir: &Path) -> App {
    let how = crate::extract::Redecode {
        limits: decoder::DecoderLimits::default(),
        capture: capture::CaptureLimits::default(),
        keylog: Default::default(),
        store: decoder::reflection::SchemaStore::new(None),
        call_filter: String::new(),
        keep: None,
        max_methods: 1000,
        findings: Some(std::sync::Arc::new(|| {
            decoder::findings::Findings::new(decoder::findings::Thresholds::default())
        })),
    };
    app.files = Some(crate::extract::capture_files(
        vec![capture(name)],
        dir.to_path_buf(),
        how,
    ));
    app
}

/// Waits for the UI's work on the capture files; true when it finished.
fn wait_job(app: &mut App) -> bool {
    for _ in 0..1000 {
        if app.poll_job() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// `f` on a call's detail opens its frames (the request's header block field by field with
/// each field's HPACK representation, DATA, trailers), Esc goes back to the detail; `f` on a
/// connection lists the connection's frames from its preface's SETTINGS on.
#[test]
fn f_shows_the_frames_of_a_call_and_of_a_connection() {
    let name = "tonic-basic-lo.pcap";
    let mut app = with_files(replayed(name, None), name, &std::env::temp_dir());
    // The oldest call first: its connection's table was empty, so its fields are literals,
    // and later calls index them.
    keys(&mut app, "2sss");
    let oldest = (0..app.call_lines.len())
        .min_by_key(|&k| match app.call_lines[k] {
            tui::app::CallLine::Done(i) => {
                (app.model.recent[i].conn, app.model.recent[i].stream_id)
            }
            tui::app::CallLine::Open(_) => (decoder::ConnId::new(u16::MAX, 0), 0),
        })
        .expect("a call");
    app.selected[1] = oldest;
    keys(&mut app, "\nf");
    assert!(wait_job(&mut app), "the frames were not read");
    assert_eq!(app.view, tui::app::View::Frames);
    let shown = screen(&mut app, 140, 40);
    insta::assert_snapshot!("frames_of_a_call", shown);
    assert!(shown.contains("HEADERS"), "{shown}");
    assert!(shown.contains(":path: /"), "{shown}");
    assert!(shown.contains("literal"), "{shown}");
    assert!(shown.contains("indexed"), "{shown}");
    keys(&mut app, "\x1b");
    assert_eq!(app.view, tui::app::View::Detail);
    keys(&mut app, "\x1b3f");
    assert!(wait_job(&mut app), "the frames were not read");
    let shown = screen(&mut app, 140, 40);
    assert!(shown.contains("SETTINGS"), "{shown}");
    insta::assert_snapshot!("frames_of_a_connection", shown);
    // An HTTP/1.1 call has none, and says so.
    let name = "connect-h1-lo.pcap.gz";
    let mut app = with_files(replayed(name, None), name, &std::env::temp_dir());
    keys(&mut app, "2\nf");
    let said = app.popup.clone().map(|p| p.1).unwrap_or_default();
    assert!(said.contains("HTTP/1.1"), "{said}");
}

/// A capture joined mid-way: fields that index entries from before the capture are listed as
/// such, under the name grpctap gives the unseen entry, with no value.
#[test]
fn frames_of_a_joined_connection_name_the_entries_from_before_the_capture() {
    use decoder::framelog::FrameDetail;
    use decoder::hpack::{Indexed, Rep};
    let name = "py-midstream.pcap";
    let app = replayed(name, None);
    let conn = app
        .model
        .conns
        .values()
        .next()
        .expect("a connection")
        .clone();
    let log = connection_frames(name, &conn);
    let fields: Vec<_> = log
        .frames()
        .filter_map(|f| match &f.detail {
            FrameDetail::Headers(b) => Some(b.fields.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let unknown: Vec<_> = fields
        .iter()
        .filter(|h| {
            matches!(
                h.rep,
                Rep::Indexed {
                    table: Indexed::Unknown,
                    ..
                }
            )
        })
        .collect();
    assert!(!unknown.is_empty(), "{fields:?}");
    assert!(
        unknown
            .iter()
            .all(|h| h.value.is_none() && h.name.starts_with("<unknown ")),
        "{unknown:?}"
    );
    // And what was learned while watching is indexed from the dynamic table, with its value.
    assert!(
        fields.iter().any(|h| matches!(
            h.rep,
            Rep::Indexed {
                table: Indexed::Dynamic,
                ..
            }
        ) && h.value.is_some()),
        "{fields:?}"
    );
}

/// The frames view of py-edge's connections: the keepalive PINGs and the GOAWAY are listed, and
/// the authorization value the client sent is redacted, never shown.
#[test]
fn frames_list_pings_and_goaway_and_never_a_secret() {
    let name = "py-edge-lo.pcap.gz";
    let app = replayed(name, None);
    let mut text = String::new();
    for conn in app.model.conns.values() {
        let log = connection_frames(name, conn);
        let shown = tui::frames::build(String::new(), &log, conn.opened);
        for l in &shown.lines {
            text.push_str(&l.to_string());
            text.push('\n');
        }
    }
    assert!(text.contains("PING"), "keepalive PINGs");
    assert!(text.contains("GOAWAY"), "the graceful GOAWAY");
    assert!(text.contains("<redacted 23 bytes>"), "the secret, redacted");
    assert!(!text.contains("secret-token"), "never the secret itself");
}

/// The Findings view lists what the replay's findings say, most severe first, with the
/// evidence of the chosen one; Enter opens the calls that show it.
#[test]
fn the_findings_view_lists_them_and_opens_the_calls_behind_one() {
    let mut app = replayed("retries-lo.pcap.gz", None);
    keys(&mut app, "4");
    assert_eq!(app.view, tui::app::View::Findings);
    let first = app.model.findings.first().cloned().expect("a finding");
    assert_eq!(first.kind, decoder::findings::Kind::Retries);
    assert_eq!(first.severity, decoder::findings::Severity::Critical);
    let s = screen(&mut app, 120, 30);
    insta::assert_snapshot!("findings_120x30", s);
    assert!(s.contains("retry storm"), "{s}");
    keys(&mut app, "\n");
    assert_eq!(app.view, tui::app::View::Calls);
    assert_eq!(app.call_filter.text(), "method:/grpctap.test.Echo/Unary");
    let s = screen(&mut app, 120, 30);
    assert!(
        s.contains("Echo/Unary") && !s.contains("Echo/ServerStream"),
        "{s}"
    );
    // A connection's finding opens that connection's calls.
    let mut app = replayed("keepalive-pings-lo.pcap.gz", None);
    keys(&mut app, "4\n");
    assert!(
        app.call_filter.text().starts_with("conn:"),
        "{}",
        app.call_filter.text()
    );
}

/// With a range chosen on the timeline, the Findings view shows the findings of the calls
/// that ended in it, found by reading the replay's files again: over a range that holds the
/// whole capture, exactly the replay's own; over the part before a backend was added, no idle
/// backend, and fewer of the calls whose errors HTTP 200 hides.
#[test]
fn the_findings_view_follows_the_range_chosen() {
    use decoder::findings::Kind;
    let name = "balance-scaleout-lo.pcap.gz";
    let mut app = with_files(replayed(name, None), name, &std::env::temp_dir());
    let whole: Vec<_> = app.model.findings.to_vec();
    let idle = whole
        .iter()
        .find(|f| f.kind == Kind::IdleBackend)
        .cloned()
        .expect("the capture's idle backend");
    // What each says: kind, words and evidence.
    let said = |f: &[decoder::findings::Finding]| {
        f.iter()
            .map(|f| format!("{} {} {:?}", f.kind.name(), f.summary, f.evidence))
            .collect::<Vec<_>>()
    };
    keys(&mut app, "4");
    // No range: the whole capture's, and the view says so.
    let (shown, covers) = app.findings_shown();
    assert_eq!(said(&shown), said(&whole));
    assert!(covers.starts_with("the whole capture"), "{covers}");
    // A range holding every packet.
    app.model.range = Some((0, u64::MAX / 1_000_000_000));
    assert!(app.poll_job(), "the range's findings start");
    assert!(screen(&mut app, 120, 30).contains("reading the files again"));
    assert!(wait_job(&mut app));
    let (shown, covers) = app.findings_shown();
    assert!(covers.contains("ended in the range"), "{covers}");
    assert_eq!(said(&shown), said(&whole));
    // Up to the second before the backend was added.
    let before = idle.from.0 / 1_000_000_000;
    app.model.range = Some((0, before));
    assert!(app.poll_job());
    assert!(wait_job(&mut app));
    let (shown, _) = app.findings_shown();
    assert!(
        !shown.iter().any(|f| f.kind == Kind::IdleBackend),
        "{:?}",
        said(&shown)
    );
    let calls = |f: &[decoder::findings::Finding], k: Kind| {
        f.iter()
            .filter(|f| f.kind == k)
            .flat_map(|f| f.evidence.iter())
            .find(|e| e.0 == "calls")
            .map(|e| e.1)
    };
    let (part, all) = (
        calls(&shown, Kind::HttpStatusMasksErrors),
        calls(&whole, Kind::HttpStatusMasksErrors),
    );
    assert!(
        part.is_some_and(|p| all.is_some_and(|a| p < a)),
        "{part:?} {all:?}"
    );
    let s = screen(&mut app, 120, 30);
    assert!(
        s.contains("Findings of the calls that ended in the range"),
        "{s}"
    );
}

/// The Connections view's RTT is the shortest PING round trip of each connection, from the
/// round trips the decoder paired (PING to its ACK), for the connections that had one.
#[test]
fn connections_show_their_shortest_ping_round_trip() {
    let events = replay_events("keepalive-pings-lo.pcap.gz", None);
    let mut want: std::collections::HashMap<decoder::ConnId, (std::time::Duration, u64)> =
        std::collections::HashMap::new();
    for e in &events {
        if let tui::feed::UiEvent::PingRtt { conn, rtt } = e {
            let w = want.entry(*conn).or_insert((*rtt, 0));
            w.0 = w.0.min(*rtt);
            w.1 += 1;
        }
    }
    assert!(want.len() >= 2, "PINGs answered on several connections");
    let mut app = app_of(events);
    for c in app.model.conns.values() {
        assert_eq!(c.ping_rtt, want.get(&c.id).copied(), "conn {}", c.id.get());
    }
    keys(&mut app, "3");
    let s = screen(&mut app, 120, 30);
    assert!(s.lines().nth(1).is_some_and(|h| h.contains("RTT")), "{s}");
    let (id, (rtt, _)) = want.iter().next().expect("one");
    let row = s
        .lines()
        .find(|l| l.starts_with(&format!("{} ", id.get())))
        .unwrap_or_else(|| panic!("no row for {}: {s}", id.get()));
    assert!(row.contains(&tui::fmt::duration_short(*rtt)), "{row}");
}

/// A range's findings read the files through the run's BPF filter: without the backend added
/// later, there is no idle backend.
#[cfg(feature = "live")]
#[test]
fn a_ranges_findings_pass_the_replays_bpf_filter() {
    use decoder::findings::Kind;
    let how = |keep: Option<&str>| crate::extract::Redecode {
        limits: decoder::DecoderLimits::default(),
        capture: capture::CaptureLimits::default(),
        keylog: Default::default(),
        store: decoder::reflection::SchemaStore::new(None),
        call_filter: String::new(),
        keep: keep.map(str::to_owned),
        max_methods: 1000,
        findings: Some(std::sync::Arc::new(|| {
            decoder::findings::Findings::new(decoder::findings::Thresholds::default())
        })),
    };
    let files = [capture("balance-scaleout-lo.pcap.gz")];
    let all = (decoder::Nanos::ZERO, decoder::Nanos::MAX);
    let kinds = |keep| {
        crate::extract::range_findings(&files, all, &how(keep))
            .expect("findings")
            .iter()
            .map(|f| f.kind)
            .collect::<Vec<_>>()
    };
    assert!(kinds(None).contains(&Kind::IdleBackend));
    assert!(!kinds(Some("not host 127.0.0.4")).contains(&Kind::IdleBackend));
}

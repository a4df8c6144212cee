//! The call detail: a timeline of headers, messages, and trailers or reset with times relative
//! to the request, metadata (secrets already redacted by the decoder), messages decoded as JSON
//! (by schema when loaded, raw otherwise) and the decoded error details. Built once when the
//! call is opened.

use std::sync::Arc;

use decoder::grpc::msg::Body;
use decoder::{CallRecord, Nanos, Side, StatusSource};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::feed::OpenRow;
use crate::fmt;
use crate::model::Model;

/// How messages are decoded.
#[derive(Debug, Clone, Default)]
pub struct Decode {
    /// The schemas: loaded (google.rpc error details are always in them), and learned from
    /// server reflection in the capture.
    pub store: Option<Arc<decoder::reflection::SchemaStore>>,
    /// Largest decompressed message.
    pub cap: usize,
    /// The `--proto-path` directories the schemas were loaded from (a grpcurl command gets
    /// them as `-import-path`).
    pub proto_paths: Vec<std::path::PathBuf>,
}

/// A call made into lines.
#[derive(Debug, Clone)]
pub struct Detail {
    /// Everything, to scroll through (the method first).
    pub lines: Vec<Line<'static>>,
}

/// Characters of a metadata value shown (the decoded error details are shown on their own).
const MAX_VALUE_CHARS: usize = 96;

/// Lines of one decoded message shown at most.
const MAX_JSON_LINES: usize = 400;

fn heading(text: &str) -> Line<'static> {
    Line::from(Span::styled(
        text.to_owned(),
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
    ))
}

fn kv(key: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<10}"), Style::default().fg(Color::DarkGray)),
        Span::raw(value),
    ])
}

/// Time of `ts` from `origin`, as "+1.234 ms".
fn rel(ts: Nanos, origin: Nanos) -> String {
    match ts.checked_since(origin) {
        Some(d) => format!("+{}", fmt::duration(d)),
        None => format!("-{}", fmt::duration(origin - ts)),
    }
}

fn status_line(c: &CallRecord) -> String {
    let mut s = match c.status {
        Some(code) => code.name().to_owned(),
        None if c.status_source == StatusSource::Unfinished => "still open".to_owned(),
        None if c.status_source == StatusSource::DeadlineNear => {
            "DEADLINE_EXCEEDED or CANCELLED (ended at its deadline; only the client can tell)"
                .to_owned()
        }
        None if c.status_source == StatusSource::ClientClosed => {
            "an error (code unknown: the client closed its connection with the call open)"
                .to_owned()
        }
        None if c.error_unknown_code => "an error (code unknown)".to_owned(),
        None => "unknown".to_owned(),
    };
    if let Some(g) = c.grpc_status {
        s.push_str(&format!(" (grpc-status {g}"));
    } else {
        s.push_str(" (no grpc-status");
    }
    s.push_str(&format!(", from {}", c.status_source.name()));
    if c.status_confidence == decoder::Confidence::Inferred {
        s.push_str(", inferred");
    }
    s.push(')');
    s
}

/// The first line: the method, or `<unknown>`.
fn titled(method: Option<&str>) -> Vec<Line<'static>> {
    let title = method
        .unwrap_or(decoder::aggregate::UNKNOWN_METHOD)
        .to_owned();
    vec![Line::from(Span::styled(
        title,
        Style::default().add_modifier(Modifier::BOLD),
    ))]
}

/// The detail of a finished call.
pub fn build(c: &CallRecord, d: &Decode) -> Detail {
    let mut lines = titled(c.method_label().as_deref());
    let error = crate::model::is_error(c);
    lines.push(Line::from(vec![
        Span::styled(
            format!("{:<10}", "status"),
            Style::default().fg(Color::DarkGray),
        ),
        Span::styled(
            status_line(c),
            Style::default().fg(if error { Color::Red } else { Color::Green }),
        ),
    ]));
    if let Some(m) = c.grpc_message.as_ref().filter(|m| !m.is_empty()) {
        lines.push(kv("message", format!("{m:?}")));
    }
    let mut call = format!(
        "{} · {}",
        c.call_type.name(),
        c.duration()
            .map_or("duration unknown".to_owned(), fmt::duration)
    );
    if c.method_confidence == decoder::Confidence::Inferred {
        call.push_str(" · method inferred from the messages");
    }
    if c.lost_bytes {
        call.push_str(" · bytes lost: counts are lower bounds");
    }
    lines.push(kv("call", call));
    lines.push(kv(
        "peers",
        format!(
            "{} → {} · conn {} · stream {}",
            c.client,
            c.server,
            c.conn.get(),
            c.stream_id
        ),
    ));
    let mut more = Vec::new();
    if let Some(a) = &c.authority {
        more.push(format!("authority {a}"));
    }
    if let Some(t) = c.timeout {
        let used = c
            .duration()
            .map(|d| {
                format!(
                    " ({:.0}% used)",
                    100.0 * d.as_secs_f64() / t.as_secs_f64().max(1e-9)
                )
            })
            .unwrap_or_default();
        more.push(format!("deadline {}{used}", fmt::duration(t)));
    } else {
        more.push("no deadline".to_owned());
    }
    if c.req.encoding.is_some() || c.resp.encoding.is_some() {
        more.push(format!(
            "encoding {}/{}",
            c.req.encoding.as_deref().unwrap_or("identity"),
            c.resp.encoding.as_deref().unwrap_or("identity")
        ));
    }
    lines.push(kv("headers", more.join(" · ")));
    if let Some(ua) = &c.user_agent {
        lines.push(kv("agent", ua.to_string()));
    }
    if let Some(t) = &c.tls {
        let version = decoder::tls::session::TlsInfo::version_name(t.version);
        let sni = t
            .sni
            .as_deref()
            .map(|s| format!(" · server name {s}"))
            .unwrap_or_default();
        lines.push(kv("tls", format!("TLS {version}, decrypted{sni}")));
    }
    if let Some(t) = &c.trace_id {
        lines.push(kv("trace", t.to_string()));
    }
    lines.push(Line::default());
    timeline(c, &mut lines);
    metadata(c, &mut lines);
    let schemas = d.store.as_ref().and_then(|s| s.current());
    messages(c, schemas.as_deref(), d.cap, &mut lines);
    if let (Some(details), Some(s)) = (&c.status_details, &schemas) {
        lines.push(Line::default());
        lines.push(heading("Error details (google.rpc.Status)"));
        json_lines(
            &decoder::payload::status_details_json(details, s),
            &mut lines,
        );
    }
    Detail { lines }
}

fn timeline(c: &CallRecord, lines: &mut Vec<Line<'static>>) {
    lines.push(heading("Timeline"));
    let origin = c
        .start
        .or(c.req.bodies.first().map(|b| b.ts))
        .or(c.end)
        .unwrap_or(Nanos::ZERO);
    let mut events: Vec<(Nanos, Side, String)> = Vec::new();
    match c.start {
        Some(s) => events.push((s, Side::Client, "request headers".to_owned())),
        None => events.push((
            origin,
            Side::Client,
            "request headers (before the capture)".to_owned(),
        )),
    }
    let kept =
        |bodies: &[Body], side: Side, name: &str, events: &mut Vec<(Nanos, Side, String)>| {
            for (i, b) in bodies.iter().enumerate() {
                let z = if b.compressed { " compressed" } else { "" };
                events.push((
                    b.ts,
                    side,
                    format!("{name} #{} · {}{z}", i + 1, fmt::bytes(u64::from(b.len))),
                ));
            }
        };
    kept(&c.req.bodies, Side::Client, "request", &mut events);
    if c.req.bodies.is_empty() && c.req.msgs > 0 {
        let text = format!(
            "{} request messages ({}; not kept)",
            c.req.msgs,
            fmt::bytes(c.req.bytes)
        );
        events.push((origin, Side::Client, text));
    }
    if let Some(h) = c.response_headers {
        let status = c
            .http_status
            .map(|s| format!(" · :status {s}"))
            .unwrap_or_default();
        events.push((h, Side::Server, format!("response headers{status}")));
    }
    kept(&c.resp.bodies, Side::Server, "response", &mut events);
    if c.resp.bodies.is_empty() && c.resp.msgs > 0 {
        let at = c.first_response.unwrap_or(origin);
        let text = format!(
            "{} response messages ({}; not kept)",
            c.resp.msgs,
            fmt::bytes(c.resp.bytes)
        );
        events.push((at, Side::Server, text));
    }
    if let Some(h) = c.client_end
        && c.reset.is_none_or(|r| r.by != Side::Client)
    {
        events.push((h, Side::Client, "end of request stream".to_owned()));
    }
    if let Some(end) = c.end {
        let (side, text) = match (c.status_source, c.reset) {
            (_, Some(r)) => (
                r.by,
                format!(
                    "RST_STREAM {} by the {}",
                    decoder::h2::frame::ErrorCode(r.code).name(),
                    r.by.name()
                ),
            ),
            (StatusSource::Trailers | StatusSource::TrailersOnly, _) => {
                let only = if c.status_source == StatusSource::TrailersOnly {
                    "trailers-only response"
                } else {
                    "trailers"
                };
                let code = c.status.map(|s| s.name()).unwrap_or("?");
                (
                    Side::Server,
                    format!("{only} · grpc-status {} {code}", c.grpc_status.unwrap_or(0)),
                )
            }
            (StatusSource::Goaway, _) => (Side::Server, "GOAWAY: never processed".to_owned()),
            (StatusSource::ConnectionClosed, _) => (Side::Server, "connection closed".to_owned()),
            (StatusSource::NoTrailers, _) => {
                (Side::Server, "stream ended without trailers".to_owned())
            }
            (StatusSource::HpackUnknown, _) => {
                (Side::Server, "trailers (grpc-status unreadable)".to_owned())
            }
            (s, _) => (Side::Server, format!("ended ({})", s.name())),
        };
        events.push((end, side, text));
    } else {
        events.push((
            origin.max(c.start.unwrap_or(Nanos::ZERO)),
            Side::Server,
            "still open".to_owned(),
        ));
    }
    // Stable: events at the same time keep the order they happen in.
    events.sort_by_key(|e| e.0);
    for (ts, side, text) in events {
        let arrow = match side {
            Side::Client => Span::styled(" → ", Style::default().fg(Color::Cyan)),
            Side::Server => Span::styled(" ← ", Style::default().fg(Color::Magenta)),
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {:>11}", rel(ts, origin)),
                Style::default().fg(Color::DarkGray),
            ),
            arrow,
            Span::raw(text),
        ]));
    }
}

fn metadata(c: &CallRecord, lines: &mut Vec<Line<'static>>) {
    let Some(md) = &c.metadata else { return };
    lines.push(Line::default());
    lines.push(heading("Metadata (secrets redacted)"));
    for (name, block) in [
        ("request", &md.request),
        ("response", &md.response),
        ("trailers", &md.trailers),
    ] {
        if block.fields.is_empty() {
            continue;
        }
        lines.push(Line::from(Span::styled(
            format!("  {name}"),
            Style::default().add_modifier(Modifier::BOLD),
        )));
        for (k, v) in &block.fields {
            let n = v.chars().count();
            let v = if n > MAX_VALUE_CHARS {
                let head: String = v.chars().take(MAX_VALUE_CHARS - 16).collect();
                format!("{head}… ({n} characters)")
            } else {
                v.clone()
            };
            lines.push(Line::from(vec![
                Span::styled(format!("    {k}: "), Style::default().fg(Color::DarkGray)),
                Span::raw(v),
            ]));
        }
        if block.dropped > 0 {
            lines.push(Line::from(format!("    ({} more not kept)", block.dropped)));
        }
    }
}

fn messages(
    c: &CallRecord,
    schemas: Option<&decoder::schema::Schemas>,
    cap: usize,
    lines: &mut Vec<Line<'static>>,
) {
    let info = c.method.as_deref().and_then(|m| schemas?.method(m));
    let sides = [
        (
            "Request",
            &c.req.bodies,
            c.req.msgs,
            c.req.encoding.as_deref(),
            info.map(|i| i.input.as_str()),
        ),
        (
            "Response",
            &c.resp.bodies,
            c.resp.msgs,
            c.resp.encoding.as_deref(),
            info.map(|i| i.output.as_str()),
        ),
    ];
    // Shown on screen: a smaller budget than --calls, for the whole call.
    let mut budget = decoder::payload::OutputBudget::SCREEN;
    for (name, bodies, count, encoding, type_name) in sides {
        for (i, b) in bodies.iter().enumerate() {
            lines.push(Line::default());
            let ty = type_name.map_or_else(|| "raw: field numbers".to_owned(), str::to_owned);
            lines.push(heading(&format!("{name} #{} ({ty})", i + 1)));
            let v =
                decoder::payload::message_json(b, encoding, type_name, schemas, cap, &mut budget);
            json_lines(&v, lines);
        }
        if (bodies.len() as u64) < count && !bodies.is_empty() {
            lines.push(Line::from(format!(
                "  ({} more {} messages not kept)",
                count - bodies.len() as u64,
                name.to_lowercase()
            )));
        }
    }
}

fn json_lines(v: &serde_json::Value, lines: &mut Vec<Line<'static>>) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|e| e.to_string());
    let total = text.lines().count();
    for l in text.lines().take(MAX_JSON_LINES) {
        lines.push(Line::from(format!("  {l}")));
    }
    if total > MAX_JSON_LINES {
        lines.push(Line::from(format!(
            "  … {} more lines",
            total - MAX_JSON_LINES
        )));
    }
}

/// The detail of a call still open: what its headers said and its messages so far.
pub fn open_call(o: &OpenRow, model: &Model) -> Detail {
    let mut lines = titled(o.method.as_deref());
    let age = o
        .start
        .map(|s| fmt::duration(model.now - s))
        .unwrap_or_else(|| "began before the capture".to_owned());
    lines.push(kv("status", format!("open for {age}")));
    lines.push(kv(
        "peers",
        format!(
            "{} → {} · conn {} · stream {}",
            o.client,
            o.server,
            o.conn.get(),
            o.stream_id
        ),
    ));
    if let Some(a) = &o.authority {
        lines.push(kv("authority", a.to_string()));
    }
    if let Some(t) = o.timeout {
        lines.push(kv("deadline", fmt::duration(t)));
    }
    lines.push(kv(
        "messages",
        format!("{} requests, {} responses so far", o.req_msgs, o.resp_msgs),
    ));
    lines.push(Line::default());
    lines.push(Line::from(
        "Its messages, metadata and status show here once it ends.",
    ));
    Detail { lines }
}

/// Request metadata a grpcurl command does not repeat: HTTP/2 and gRPC's own fields (grpcurl
/// sets them itself), and what says how the first call was made rather than what it asked.
const NOT_METADATA: [&str; 10] = [
    "content-type",
    "te",
    "user-agent",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "accept-encoding",
    "grpc-previous-rpc-attempts",
    "content-length",
    "connection",
];

/// `arg` for a POSIX shell: as it is when it holds nothing the shell reads, else in single
/// quotes.
fn shell(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A grpcurl command that makes the call again: the method, its request messages as JSON
/// (`-d`, decoded by the schemas), the request metadata (secrets and the sender's
/// never-indexed fields left out, and gRPC's own fields), the deadline (`-max-time`), TLS or
/// `-plaintext`, the `:authority` when it differs from the server address, and the schemas
/// (`-import-path`, `-proto`) when they came from `--proto-path` (else grpcurl asks the server
/// by reflection). An error says why none can be made.
pub fn grpcurl(c: &CallRecord, d: &Decode) -> Result<String, String> {
    let path = c
        .method
        .as_deref()
        .ok_or("the method is not known: no command can name it")?;
    let schemas = d.store.as_ref().and_then(|s| s.current());
    let schemas = schemas.as_deref();
    let info = schemas
        .and_then(|s| s.method(path))
        .ok_or("no schema for the method: its messages cannot be written as JSON (--proto-path)")?;
    if (c.req.bodies.len() as u64) < c.req.msgs {
        return Err(format!(
            "{} of the {} request messages were kept: the call cannot be made again whole",
            c.req.bodies.len(),
            c.req.msgs
        ));
    }
    let mut args: Vec<String> = vec!["grpcurl".into()];
    if c.tls.is_none() {
        args.push("-plaintext".into());
    } else if let Some(sni) = c.tls.as_ref().and_then(|t| t.sni.as_deref()) {
        args.extend(["-servername".into(), sni.to_owned()]);
    }
    let target = c.server.to_string();
    if let Some(a) = c.authority.as_deref().filter(|a| *a != target) {
        args.extend(["-authority".into(), a.to_owned()]);
    }
    if let Some(t) = c.timeout {
        args.extend(["-max-time".into(), format!("{}", t.as_secs_f64())]);
    }
    let mut left_out = Vec::new();
    if let Some(md) = &c.metadata {
        for (k, v) in &md.request.fields {
            if NOT_METADATA.contains(&k.as_str()) || k.starts_with("<unknown") {
                continue;
            }
            if decoder::metadata::is_secret(k) || v.starts_with("<redacted") {
                left_out.push(k.clone());
                continue;
            }
            args.extend(["-H".into(), format!("{k}: {v}")]);
        }
    }
    let from_files = schemas.and_then(|s| s.file_of(path));
    if let (Some(file), false) = (&from_files, d.proto_paths.is_empty()) {
        for dir in &d.proto_paths {
            args.extend(["-import-path".into(), dir.display().to_string()]);
        }
        args.extend(["-proto".into(), file.clone()]);
    }
    let mut budget = decoder::payload::OutputBudget::CALLS;
    let mut data = Vec::new();
    for b in &c.req.bodies {
        let v = decoder::payload::message_json(
            b,
            c.req.encoding.as_deref(),
            Some(&info.input),
            schemas,
            d.cap,
            &mut budget,
        );
        data.push(serde_json::to_string(&v).map_err(|e| e.to_string())?);
    }
    if !data.is_empty() {
        args.extend(["-d".into(), data.join("\n")]);
    }
    args.push(target);
    args.push(path.trim_start_matches('/').to_owned());
    let mut cmd: Vec<String> = args.iter().map(|a| shell(a)).collect();
    if !left_out.is_empty() {
        cmd.push(format!("# left out: {}", left_out.join(", ")));
    }
    Ok(cmd.join(" "))
}

/// `text` as the OSC 52 sequence that puts it on the terminal's clipboard (where the terminal
/// allows it; over ssh and tmux too when they pass it on).
pub fn osc52(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        decoder::metadata::base64(text.as_bytes())
    )
}

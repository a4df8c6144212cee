//! The end of a run: the summary table, `--summary-json`, `--connections-json`,
//! `--metrics-text`, `--stats`, what went wrong with which input, the metrics server's
//! linger, and the exit status.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use capture::CaptureStats;
use capture::input::InputReport;
use serde::Serialize;

use crate::cli::ReplayArgs;
use crate::connections::{Connections, render_table};
use crate::files::{write_json, writer};
use crate::pipeline::Pipeline;
use crate::summary::{self, Summary};

/// How one input file went (as `--connections-json` lists it).
#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    packets: u64,
    /// Why reading stopped before the end, if it did.
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    files: &'a [FileReport],
    capture: CaptureJson,
    connections: &'a [crate::connections::ConnRow],
    connections_not_listed: u64,
}

/// The capture counters, named as in docs/cli.md.
#[derive(Serialize)]
struct CaptureJson {
    packets: u64,
    bytes: u64,
    non_tcp: u64,
    unsupported_link: u64,
    truncated: u64,
    malformed: u64,
    ip_fragments: u64,
    ip_reassembled: u64,
    ip_fragments_dropped: u64,
    tcp_segments: u64,
    tcp_bytes: u64,
    out_of_order: u64,
    retransmitted: u64,
    overlap_conflicts: u64,
    out_of_window: u64,
    stray_segments: u64,
    gaps: u64,
    gap_bytes: u64,
    connections_opened: u64,
    connections_closed: u64,
    connections_expired: u64,
    connections_evicted: u64,
    connections_reused: u64,
}

impl From<&CaptureStats> for CaptureJson {
    fn from(s: &CaptureStats) -> Self {
        CaptureJson {
            packets: s.packets,
            bytes: s.bytes,
            non_tcp: s.non_tcp,
            unsupported_link: s.unsupported_link,
            truncated: s.truncated,
            malformed: s.malformed,
            ip_fragments: s.ip_fragments,
            ip_reassembled: s.ip_reassembled,
            ip_fragments_dropped: s.ip_fragments_dropped,
            tcp_segments: s.tcp_segments,
            tcp_bytes: s.tcp_bytes,
            out_of_order: s.out_of_order,
            retransmitted: s.retransmitted,
            overlap_conflicts: s.overlap_conflicts,
            out_of_window: s.out_of_window,
            stray_segments: s.stray_segments,
            gaps: s.gaps,
            gap_bytes: s.gap_bytes,
            connections_opened: s.conns_opened,
            connections_closed: s.conns_closed,
            connections_expired: s.conns_expired,
            connections_evicted: s.conns_evicted,
            connections_reused: s.conns_reused,
        }
    }
}

/// What a run leaves for its report.
pub(crate) struct Done<'a> {
    pub(crate) pipeline: &'a mut Pipeline,
    pub(crate) stats: &'a CaptureStats,
    pub(crate) conns: Option<&'a Connections>,
    pub(crate) inputs: Vec<InputReport>,
    pub(crate) registry: &'a prometheus_client::registry::Registry,
    pub(crate) started: std::time::Instant,
    pub(crate) server: Option<exporter::server::MetricsServer>,
    /// What the OTLP export did (with `--otlp`).
    pub(crate) otlp: Option<std::sync::Arc<exporter::otlp::OtlpStats>>,
}

/// Writes every report the arguments ask for; the exit status: 0 when every input was read
/// to its end, 1 when some stopped early, 2 when none could be read at all.
pub(crate) fn report(args: &ReplayArgs, done: Done<'_>) -> anyhow::Result<ExitCode> {
    let Done {
        pipeline,
        stats: s,
        conns,
        inputs,
        registry,
        started,
        server,
        otlp,
    } = done;
    let Some(mut sum) = pipeline.out.take::<Summary>() else {
        anyhow::bail!("internal: the run has no summary");
    };
    if let Some(j) = pipeline.out.get_mut::<crate::calls_json::JsonLines>() {
        sum.stats.payload_errors = j.payload_errors;
    }
    if let Some(m) = pipeline.out.get_mut::<crate::calls_json::MessageLines>() {
        // The same message unreadable in both outputs is counted once.
        sum.stats.payload_errors = sum.stats.payload_errors.max(m.payload_errors);
    }
    if let Some(path) = &args.out.metrics_text {
        let mut w = writer(path)?;
        w.write_all(exporter::server::render(registry, false).as_bytes())?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.out.stats {
        let secs = started.elapsed().as_secs_f64();
        let calls = sum.agg.total.calls + sum.agg.total.unfinished;
        eprintln!(
            "grpctap: {} packets, {:.1} MB in {:.3} s: {:.1} MB/s, {:.0} packets/s, {} calls; peak RSS {:.1} MiB",
            s.packets,
            s.bytes as f64 / 1e6,
            secs,
            s.bytes as f64 / 1e6 / secs,
            s.packets as f64 / secs,
            calls,
            capture::stats::peak_rss_kib() as f64 / 1024.0
        );
    }
    if let Some((text, ended, passed)) = pipeline.out.filtered() {
        let what = match (text.is_empty(), pipeline.out.range()) {
            (false, None) => format!("--call-filter {text:?}"),
            (true, Some((f, t))) => format!("--from/--to {}", range_text(f, t)),
            (false, Some((f, t))) => {
                format!("--call-filter {text:?} --from/--to {}", range_text(f, t))
            }
            (true, None) => String::new(),
        };
        eprintln!("grpctap: {what}: {passed} of {ended} calls");
    }
    for r in &inputs {
        match (&r.error, r.packets) {
            (Some(e), 0) => eprintln!("grpctap: {e}"),
            (Some(e), n) => eprintln!("grpctap: {e} (the {n} packets before it were read)"),
            (None, _) => {}
        }
    }
    let stats = s;
    // With --from / --to, rates are over the part of the capture in the range.
    let (first, last) = match pipeline.out.range() {
        Some((from, to)) => (
            pipeline.first_ts.map(|f| f.max(from)),
            pipeline.last_ts.min(to),
        ),
        None => (pipeline.first_ts, pipeline.last_ts),
    };
    let span_s = summary::span(first, last);
    let to_stdout = args.outputs_to_stdout();
    let findings = sum
        .findings
        .as_ref()
        .map(decoder::findings::Findings::report);
    if let Some(path) = &args.out.summary_json {
        let mut v = summary::to_json(&sum.agg, stats, &sum.stats, span_s);
        if let (Some(f), Some(obj)) = (&findings, v.as_object_mut()) {
            obj.insert("findings".to_owned(), summary::findings_json(f));
        }
        if let (Some(o), Some(obj)) = (&otlp, v.as_object_mut()) {
            obj.insert(
                "otlp".to_owned(),
                serde_json::json!({
                    "spans_sent": o.spans_sent.get(),
                    "spans_dropped": o.spans_dropped.get(),
                    "requests_given_up": o.failed_requests.get(),
                    "retries": o.retries.get(),
                    "metric_exports": o.metric_exports.get(),
                }),
            );
        }
        write_json(path, &v)?;
    }
    if let (Some(path), Some(conns)) = (&args.connections_json, conns) {
        let files: Vec<FileReport> = inputs
            .iter()
            .map(|r| FileReport {
                path: r.name.clone(),
                packets: r.packets,
                error: r.error.clone(),
            })
            .collect();
        let report = JsonReport {
            files: &files,
            capture: stats.into(),
            connections: &conns.rows,
            connections_not_listed: conns.folded,
        };
        write_json(path, &report)?;
    }
    // No file could be read at all: the errors above say so; an empty table would only suggest
    // a capture without gRPC.
    let nothing_read =
        !inputs.is_empty() && inputs.iter().all(|r| r.error.is_some() && r.packets == 0);
    if to_stdout == 0 && !nothing_read && args.out.findings {
        let text = summary::render_findings(findings.as_deref().unwrap_or(&[]), pipeline.first_ts);
        crate::files::Stdout.write_all(text.as_bytes())?;
    } else if to_stdout == 0 && !nothing_read {
        let mut w = crate::files::Stdout;
        w.write_all(summary::render_table(&sum.agg, stats, &sum.stats, span_s).as_bytes())?;
        if let Some(f) = findings.as_deref().filter(|f| !f.is_empty()) {
            writeln!(w)?;
            w.write_all(summary::render_findings(f, pipeline.first_ts).as_bytes())?;
        }
        if let (true, Some(conns)) = (args.connections, conns) {
            writeln!(w)?;
            w.write_all(render_table(conns).as_bytes())?;
            writeln!(w, "\n{}", summary_line(stats))?;
        }
    }
    if let Some(server) = server {
        match args.metrics_linger {
            Some(secs) => std::thread::sleep(std::time::Duration::from_secs(secs)),
            None => {
                eprintln!("grpctap: replay done; still serving metrics (Ctrl-C to stop)");
                loop {
                    std::thread::park();
                }
            }
        }
        server.stop();
    }
    let failed = inputs.iter().filter(|r| r.error.is_some()).count();
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        n if n == inputs.len() && inputs.iter().all(|r| r.packets == 0) => ExitCode::from(2),
        _ => ExitCode::from(1),
    })
}

fn summary_line(s: &CaptureStats) -> String {
    format!(
        "capture: {} packets, {} bytes; {} connections ({} closed, {} still open, {} expired, {} evicted); \
         tcp: {} segments, {} payload bytes, {} out of order, {} retransmitted, {} gaps ({} bytes); \
         skipped: {} non-TCP, {} truncated, {} malformed, {} unsupported link",
        s.packets,
        s.bytes,
        s.conns_opened,
        s.conns_closed,
        s.conns_opened - s.conns_closed - s.conns_expired - s.conns_evicted - s.conns_reused,
        s.conns_expired,
        s.conns_evicted,
        s.tcp_segments,
        s.tcp_bytes,
        s.out_of_order,
        s.retransmitted,
        s.gaps,
        s.gap_bytes,
        s.non_tcp,
        s.truncated,
        s.malformed,
        s.unsupported_link,
    )
}

/// A resolved --from/--to range as Unix seconds.
fn range_text(from: decoder::Nanos, to: decoder::Nanos) -> String {
    let s = |t: decoder::Nanos| {
        if t == decoder::Nanos::MAX {
            "end".to_owned()
        } else {
            format!("{:.6}", t.0 as f64 / 1e9)
        }
    };
    format!("{}..{}", s(from), s(to))
}

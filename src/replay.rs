//! `grpctap replay`: read capture files in order through one reassembler and report.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use capture::{CaptureStats, FileSource, Reassembler};
use serde::Serialize;

use crate::cli::ReplayArgs;
use crate::connections::{Connections, render_table};

/// How one input file went.
#[derive(Debug, Serialize)]
pub(crate) struct FileReport {
    pub(crate) path: String,
    pub(crate) packets: u64,
    /// Why reading stopped before the end, if it did.
    pub(crate) error: Option<String>,
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

/// Reads every file into `reasm`, events to `sink`. Returns one report per file; a file that
/// fails is reported and the next one is still read.
pub(crate) fn replay_files<S: capture::StreamSink>(
    files: &[impl AsRef<Path>],
    reasm: &mut Reassembler,
    sink: &mut S,
    max_block: usize,
) -> Vec<FileReport> {
    let mut reports = Vec::with_capacity(files.len());
    for path in files {
        let path = path.as_ref();
        let mut report = FileReport {
            path: path.display().to_string(),
            packets: 0,
            error: None,
        };
        match FileSource::open(path, max_block) {
            Err(e) => report.error = Some(e.to_string()),
            Ok(mut src) => loop {
                match src.next_packet() {
                    Ok(Some(pkt)) => {
                        report.packets += 1;
                        reasm.handle_packet(&pkt, sink);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        report.error = Some(e.to_string());
                        break;
                    }
                }
            },
        }
        reports.push(report);
    }
    reasm.finish(sink);
    reports
}

pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let limits = args.limits.to_limits();
    let max_block = limits.max_block_size;
    let mut reasm = Reassembler::new(limits);
    let mut conns = Connections::default();
    let reports = replay_files(&args.files, &mut reasm, &mut conns, max_block);
    for r in &reports {
        if let Some(e) = &r.error {
            eprintln!(
                "grpctap: {e} ({} packets read before it were processed)",
                r.packets
            );
        }
    }
    let stats = reasm.stats();
    let to_stdout = args.json.as_deref() == Some(Path::new("-"));
    if let Some(path) = &args.json {
        let report = JsonReport {
            files: &reports,
            capture: stats.into(),
            connections: &conns.rows,
            connections_not_listed: conns.folded,
        };
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        if to_stdout {
            std::io::stdout().write_all(text.as_bytes())?;
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if !to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(render_table(&conns).as_bytes())?;
        writeln!(out, "\n{}", summary_line(stats))?;
    }
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        n if n == reports.len() && reports.iter().all(|r| r.packets == 0) => ExitCode::from(2),
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

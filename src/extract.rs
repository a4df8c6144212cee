//! One connection taken again from the capture files: its packets (the UI's `W`, a pcapng that
//! replays to the same calls) and its HTTP/2 frames (the UI's frames view, the connection
//! decoded again on its own with every frame reported).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture::input::{Next, PacketSource};
use capture::wire::{LinkPayload, parse_ip, parse_link, parse_tcp};
use capture::{ConnId, EventKind, Packet, RoleSource, StreamEvent, StreamSink};
use decoder::findings::{Finding, Findings};
use decoder::framelog::{FrameLog, FrameLogLimits, Scope};
use decoder::reflection::SchemaStore;
use decoder::tls::keylog::KeyLog;
use decoder::{ConnDecoder, DecoderLimits, Nanos};

use crate::fanout::Fanout;
use crate::pipeline::Pipeline;
use crate::summary::Summary;
use crate::timespec::TimeSpec;

/// Hands `f` every packet of `paths` in order, until it says no more (false) or the files end.
fn each_packet(
    paths: &[PathBuf],
    mut f: impl FnMut(&Packet<'_>) -> Result<bool, String>,
) -> Result<(), String> {
    let limits = capture::CaptureLimits::default();
    let mut files = capture::input::Files::new(paths.to_vec(), limits.max_block_size);
    loop {
        match files.next_packet()? {
            Next::Packet(p) if !f(&p)? => return Ok(()),
            Next::Packet(_) | Next::Idle => {}
            Next::End => return Ok(()),
        }
    }
}

/// Hands `f` the packets between `client` and `server` (both ways) of `paths`: from `from`
/// (the connection's first packet) to `until` (inclusive; none: to the connection's end, where
/// a SYN opens another on the same addresses). Returns how many it was given.
fn connection_packets(
    paths: &[PathBuf],
    (client, server): (SocketAddr, SocketAddr),
    from: Nanos,
    until: Option<Nanos>,
    mut f: impl FnMut(&Packet<'_>) -> Result<(), String>,
) -> Result<u64, String> {
    let mut given = 0u64;
    let mut first_syn: Option<u32> = None;
    each_packet(paths, |p| {
        if p.ts < from {
            return Ok(true);
        }
        if until.is_some_and(|u| p.ts > u) {
            return Ok(false);
        }
        let Ok(LinkPayload::Ip(ip)) = parse_link(p.linktype, p.data) else {
            return Ok(true);
        };
        let Ok(ip) = parse_ip(ip) else {
            return Ok(true);
        };
        if ip.frag.is_some() {
            return Ok(true);
        }
        let Ok(tcp) = parse_tcp(&ip) else {
            return Ok(true);
        };
        let (a, b) = (
            SocketAddr::new(tcp.src, tcp.src_port),
            SocketAddr::new(tcp.dst, tcp.dst_port),
        );
        if !((a == client && b == server) || (a == server && b == client)) {
            return Ok(true);
        }
        if tcp.flags.syn() && !tcp.flags.ack() {
            match first_syn {
                None if given == 0 => first_syn = Some(tcp.seq),
                // The same SYN again (a retransmission).
                Some(seq) if seq == tcp.seq => {}
                // Another SYN: the addresses' next connection.
                _ if until.is_none() => return Ok(false),
                _ => {}
            }
        }
        f(p)?;
        given += 1;
        Ok(true)
    })?;
    Ok(given)
}

/// Writes the packets of the connection between `client` and `server` (as
/// [`connection_packets`] picks them) into `out`. One link type: packets of another are left
/// out and counted. Returns a line for the user.
pub(crate) fn write_connection(
    paths: &[PathBuf],
    (client, server): (SocketAddr, SocketAddr),
    from: Nanos,
    until: Option<Nanos>,
    out: &Path,
) -> Result<String, String> {
    let mut writer: Option<(u32, capture::write::PcapngWriter)> = None;
    let (mut written, mut other_link) = (0u64, 0u64);
    connection_packets(paths, (client, server), from, until, |p| {
        let w = match &mut writer {
            Some(w) => w,
            None => {
                let w = capture::write::PcapngWriter::create(
                    out,
                    p.linktype,
                    262_144,
                    capture::write::Rotate::default(),
                )
                .map_err(|e| format!("{}: {e}", out.display()))?;
                writer.insert((p.linktype, w))
            }
        };
        if w.0 != p.linktype {
            other_link += 1;
            return Ok(());
        }
        w.1.write(p)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        written += 1;
        Ok(())
    })?;
    let Some((_, mut w)) = writer else {
        return Err(format!(
            "no packet of {client} ↔ {server} in the capture files"
        ));
    };
    w.flush().map_err(|e| format!("{}: {e}", out.display()))?;
    let mut line = format!(
        "{written} packets of {client} ↔ {server} written to {}",
        out.display()
    );
    if other_link > 0 {
        line.push_str(&format!(" ({other_link} of another link type left out)"));
    }
    Ok(line)
}

/// Decodes one connection again, on its own, with every frame reported into a log.
struct FrameTap {
    limits: DecoderLimits,
    keylog: Arc<KeyLog>,
    dec: Option<ConnDecoder>,
    /// The connection decoded (the first one opened; the addresses' next is not).
    conn: Option<ConnId>,
    log: FrameLog,
    http1: bool,
}

/// Lends the log to the decoder as its sink.
struct Frames<'a>(&'a mut FrameLog);

impl decoder::Sink for Frames<'_> {
    fn call_ended(&mut self, _call: &decoder::CallRecord) {}

    fn frame(&mut self, _conn: ConnId, frame: &decoder::h2::event::FrameSeen<'_>) {
        self.0.push(frame);
    }
}

impl StreamSink for FrameTap {
    fn on_event(&mut self, ev: StreamEvent<'_>) {
        if self.conn.is_some_and(|c| c != ev.conn) {
            return;
        }
        let ts = ev.ts;
        let mut out = Frames(&mut self.log);
        match ev.kind {
            EventKind::Open(info) => {
                self.conn = Some(ev.conn);
                self.dec = Some(
                    ConnDecoder::new(
                        ev.conn,
                        (info.client, info.server),
                        ts,
                        info.roles != RoleSource::Guess,
                        self.limits,
                    )
                    .with_keylog(self.keylog.clone())
                    .log_frames(),
                );
            }
            EventKind::Data(bytes) => {
                if let Some(d) = self.dec.as_mut() {
                    d.handle_data(ev.dir, ts, bytes, &mut out);
                    self.http1 |= d.is_http() && !d.is_http2();
                }
            }
            EventKind::Gap { len } => {
                if let Some(d) = self.dec.as_mut() {
                    d.handle_gap(ev.dir, ts, len, &mut out);
                }
            }
            EventKind::Close { .. } => {}
        }
    }
}

/// The HTTP/2 frames of the connection between `client` and `server` (the packets
/// [`connection_packets`] picks), decoded again from its first packet, the log keeping those
/// of `scope`.
pub(crate) fn connection_frames(
    paths: &[PathBuf],
    addrs: (SocketAddr, SocketAddr),
    (from, until): (Nanos, Option<Nanos>),
    scope: Scope,
    (limits, keylog): (DecoderLimits, Arc<KeyLog>),
) -> Result<FrameLog, String> {
    let mut tap = FrameTap {
        limits,
        keylog,
        dec: None,
        conn: None,
        log: FrameLog::new(scope, FrameLogLimits::default()),
        http1: false,
    };
    let mut reasm = capture::Reassembler::new(capture::CaptureLimits::default());
    let n = connection_packets(paths, addrs, from, until, |p| {
        reasm.handle_packet(p, &mut tap);
        Ok(())
    })?;
    if n == 0 {
        return Err(format!(
            "no packet of {} ↔ {} in the capture files",
            addrs.0, addrs.1
        ));
    }
    if tap.log.is_empty() && tap.http1 {
        return Err("the connection is HTTP/1.1: it has no HTTP/2 frames".to_owned());
    }
    Ok(tap.log)
}

/// A file name in `dir` not taken yet: `stem.pcapng`, else `stem-1.pcapng`, ...
pub(crate) fn free_name(dir: &Path, stem: &str) -> PathBuf {
    let mut p = dir.join(format!("{stem}.pcapng"));
    let mut n = 1;
    while p.exists() {
        p = dir.join(format!("{stem}-{n}.pcapng"));
        n += 1;
    }
    p
}

/// Makes the findings engine of the run, with the thresholds of `--finding-threshold` and the
/// schemas' idempotency. The summary, the exporter and the UI each run one, and the UI another
/// for a range.
pub(crate) type FindingsMaker = Arc<dyn Fn() -> Findings + Send + Sync>;

/// How the run decoded, for decoding its files again: its decoder limits, TLS secrets, schemas,
/// `--call-filter`, its BPF filter, and its findings engine (none: `--no-findings`).
#[derive(Clone)]
pub(crate) struct Redecode {
    pub(crate) limits: DecoderLimits,
    /// The run's reassembly bounds.
    pub(crate) capture: capture::CaptureLimits,
    pub(crate) keylog: Arc<KeyLog>,
    pub(crate) store: Arc<SchemaStore>,
    pub(crate) call_filter: String,
    /// The BPF filter of `replay FILE... FILTER`.
    pub(crate) keep: Option<String>,
    pub(crate) max_methods: usize,
    pub(crate) findings: Option<FindingsMaker>,
}

/// The findings of the calls that ended from `from` to `to` (capture times, inclusive), as
/// `grpctap replay --from --to --findings` gives them for the same files: every file decoded
/// again from its first packet (so that each connection's state, its HPACK tables and its
/// streams, is what it was), the calls that ended in the range counted, reading stopped after
/// `to`. Connection events (GOAWAY, PINGs, windows) before `from` count too: they shaped the
/// connections the range's calls ran on.
pub(crate) fn range_findings(
    paths: &[PathBuf],
    (from, to): (Nanos, Nanos),
    how: &Redecode,
) -> Result<Vec<Finding>, String> {
    let Some(make) = how.findings.as_ref() else {
        return Err("findings are off (--no-findings)".to_owned());
    };
    let mut out = Fanout::default();
    out.filter_calls(
        decoder::filter::Filter::parse(&how.call_filter),
        (Some(TimeSpec::At(from)), Some(TimeSpec::At(to))),
    );
    out.push(Summary::new(how.max_methods).with_findings(Some(make())));
    let mut pipeline =
        Pipeline::new(how.limits, how.store.clone(), out).with_keylog(how.keylog.clone());
    let mut keep = match &how.keep {
        Some(expr) => Some(crate::bpf::bpf(expr).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut reasm = capture::Reassembler::new(how.capture.clone());
    let mut first = true;
    each_packet(paths, |p| {
        if let Some(keep) = keep.as_mut()
            && !keep(p)
        {
            return Ok(true);
        }
        // The run's clock (capture::clock), so that times are those the UI has.
        let ts = reasm.time_of(p.ts);
        if first {
            first = false;
            pipeline.out.set_first_packet(ts);
        }
        if ts > to {
            pipeline.last_ts = pipeline.last_ts.max(to);
            return Ok(false);
        }
        reasm.handle_packet(&Packet { ts, ..*p }, &mut pipeline);
        Ok(true)
    })?;
    reasm.finish(&mut pipeline);
    Ok(pipeline
        .out
        .get_mut::<Summary>()
        .and_then(|s| s.findings.as_ref())
        .map(Findings::report)
        .unwrap_or_default())
}

/// What the UI takes from the capture files `paths`: packets, written into `dir`, frames and
/// the findings of a range, decoded as `how` says.
pub(crate) fn capture_files(
    paths: Vec<PathBuf>,
    dir: PathBuf,
    how: Redecode,
) -> tui::app::CaptureFiles {
    let paths = Arc::new(paths);
    let (p, q) = (paths.clone(), paths.clone());
    let (limits, keylog) = (how.limits, how.keylog.clone());
    tui::app::CaptureFiles {
        write: Arc::new(move |req: tui::app::WriteRequest| {
            let out = free_name(&dir, &req.name);
            write_connection(&p, (req.client, req.server), req.from, req.until, &out)
        }),
        frames: Arc::new(move |req: tui::app::FramesRequest| {
            connection_frames(
                &paths,
                (req.client, req.server),
                (req.from, req.until),
                req.scope,
                (limits, keylog.clone()),
            )
        }),
        findings: Arc::new(move |(from, to): (Nanos, Nanos)| range_findings(&q, (from, to), &how)),
    }
}

//! One connection taken again from the capture files: its packets (the UI's `W`, a pcapng that
//! replays to the same calls) and its HTTP/2 frames (the UI's frames view, the connection
//! decoded again on its own with every frame reported).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use capture::input::{Next, PacketSource};
use capture::wire::{LinkPayload, parse_ip, parse_link, parse_tcp};
use capture::{ConnId, EventKind, Packet, RoleSource, StreamEvent, StreamSink};
use decoder::framelog::{FrameLog, FrameLogLimits, Scope};
use decoder::tls::keylog::KeyLog;
use decoder::{ConnDecoder, DecoderLimits, Nanos};

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
    let limits = capture::CaptureLimits::default();
    let mut files = capture::input::Files::new(paths.to_vec(), limits.max_block_size);
    let mut given = 0u64;
    let mut first_syn: Option<u32> = None;
    loop {
        let p = match files.next_packet() {
            Ok(Next::Packet(p)) => p,
            Ok(Next::Idle) => continue,
            Ok(Next::End) => break,
            Err(e) => return Err(e),
        };
        if p.ts < from {
            continue;
        }
        if until.is_some_and(|u| p.ts > u) {
            break;
        }
        let Ok(LinkPayload::Ip(ip)) = parse_link(p.linktype, p.data) else {
            continue;
        };
        let Ok(ip) = parse_ip(ip) else { continue };
        if ip.frag.is_some() {
            continue;
        }
        let Ok(tcp) = parse_tcp(&ip) else { continue };
        let (a, b) = (
            SocketAddr::new(tcp.src, tcp.src_port),
            SocketAddr::new(tcp.dst, tcp.dst_port),
        );
        if !((a == client && b == server) || (a == server && b == client)) {
            continue;
        }
        if tcp.flags.syn() && !tcp.flags.ack() {
            match first_syn {
                None if given == 0 => first_syn = Some(tcp.seq),
                // The same SYN again (a retransmission).
                Some(seq) if seq == tcp.seq => {}
                // Another SYN: the addresses' next connection.
                _ if until.is_none() => break,
                _ => {}
            }
        }
        f(&p)?;
        given += 1;
    }
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

/// What the UI takes from the capture files `paths`: packets, written into `dir`, and frames,
/// decoded with `limits` and the TLS secrets of `keylog`.
pub(crate) fn capture_files(
    paths: Vec<PathBuf>,
    dir: PathBuf,
    limits: DecoderLimits,
    keylog: Arc<KeyLog>,
) -> tui::app::CaptureFiles {
    let paths = Arc::new(paths);
    let p = paths.clone();
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
    }
}

//! The packets of one connection, taken again from the capture files (the UI's `W`): a pcapng
//! that replays to the same calls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use capture::input::{Next, PacketSource};
use capture::wire::{LinkPayload, parse_ip, parse_link, parse_tcp};
use decoder::Nanos;

/// Writes the packets between `client` and `server` (both ways) of `paths` into `out`: from
/// `from` (the connection's first packet) to `until` (inclusive; none: to the connection's
/// end, where a SYN opens another on the same addresses). One link type: packets of another
/// are left out and counted. Returns a line for the user.
pub(crate) fn write_connection(
    paths: &[PathBuf],
    (client, server): (SocketAddr, SocketAddr),
    from: Nanos,
    until: Option<Nanos>,
    out: &Path,
) -> Result<String, String> {
    let limits = capture::CaptureLimits::default();
    let mut files = capture::input::Files::new(paths.to_vec(), limits.max_block_size);
    let mut writer: Option<(u32, capture::write::PcapngWriter)> = None;
    let (mut written, mut other_link) = (0u64, 0u64);
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
                None if written == 0 => first_syn = Some(tcp.seq),
                // The same SYN again (a retransmission).
                Some(seq) if seq == tcp.seq => {}
                // Another SYN: the addresses' next connection.
                _ if until.is_none() => break,
                _ => {}
            }
        }
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
            continue;
        }
        w.1.write(&p)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        written += 1;
    }
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

/// The UI's packet writer over the capture files `paths`, writing into `dir`.
pub(crate) fn writer(paths: Vec<PathBuf>, dir: PathBuf) -> tui::app::PacketWriter {
    tui::app::PacketWriter(std::sync::Arc::new(move |req: tui::app::WriteRequest| {
        let out = free_name(&dir, &req.name);
        write_connection(&paths, (req.client, req.server), req.from, req.until, &out)
    }))
}

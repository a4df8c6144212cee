//! Large captures made from a real one, for benchmarks and load tests of the tap: copies of
//! the seed's connections, each copy with its own addresses, interleaved in batches so many
//! connections are live at once, timestamps moving forward. Every byte stream is the seed's.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::source::FileSource;
use crate::wire::{LinkPayload, parse_link};

/// Copies interleaved at once: that many copies of the seed's connections are live together.
pub const BATCH: usize = 64;

/// Writes to `out` a nanosecond pcap of at least `mb` MiB made of copies of `seed`.
/// IPv4 packets get the copy number in the low three bytes of both addresses; other packets are
/// copied as they are.
#[allow(clippy::cast_possible_truncation)] // copy numbers and lengths fit the fields written
pub fn build(seed: &Path, mb: u64, out: &Path) -> io::Result<()> {
    let mut src = FileSource::open(seed, 16 << 20).map_err(io::Error::other)?;
    let mut packets: Vec<(u64, Vec<u8>, Option<usize>)> = Vec::new();
    let mut linktype = 1;
    let mut bytes = 0u64;
    while let Some(p) = src.next_packet().map_err(io::Error::other)? {
        // Offset of the IPv4 header, to give each copy its own addresses.
        let ip_at = match parse_link(p.linktype, p.data) {
            Ok(LinkPayload::Ip(ip)) if ip.first().is_some_and(|b| b >> 4 == 4) => {
                Some(ip.as_ptr() as usize - p.data.as_ptr() as usize)
            }
            _ => None,
        };
        linktype = p.linktype;
        bytes += p.data.len() as u64 + 16;
        packets.push((p.ts.0, p.data.to_vec(), ip_at));
    }
    let t0 = packets.first().map_or(0, |p| p.0);
    let span = packets.last().map_or(0, |p| p.0) - t0 + 1_000_000_000;
    let copies = usize::try_from((mb << 20).div_ceil(bytes.max(1)).max(1)).unwrap_or(usize::MAX);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = out.with_extension("part");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    w.write_all(&0xa1b2_3c4du32.to_le_bytes())?; // nanosecond pcap
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0u8; 8])?;
    w.write_all(&262_144u32.to_le_bytes())?;
    w.write_all(&linktype.to_le_bytes())?;
    let mut frame = Vec::new();
    for batch in 0..copies.div_ceil(BATCH) {
        let first = batch * BATCH;
        let n = BATCH.min(copies - first);
        let shift = batch as u64 * span;
        for (ts, data, ip_at) in &packets {
            for c in first..first + n {
                frame.clear();
                frame.extend_from_slice(data);
                if let Some(at) = ip_at {
                    let id = (c as u32 + 1).to_be_bytes();
                    for a in [at + 12, at + 16] {
                        frame[a + 1..a + 4].copy_from_slice(&id[1..]);
                    }
                }
                let ts = ts - t0 + shift + 1_700_000_000_000_000_000;
                w.write_all(&((ts / 1_000_000_000) as u32).to_le_bytes())?;
                w.write_all(&((ts % 1_000_000_000) as u32).to_le_bytes())?;
                w.write_all(&(frame.len() as u32).to_le_bytes())?;
                w.write_all(&(frame.len() as u32).to_le_bytes())?;
                w.write_all(&frame)?;
            }
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, out)
}

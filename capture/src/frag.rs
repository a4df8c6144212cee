//! IP fragment reassembly within bounds (RFC 791 section 3.2, RFC 8200 section 4.5).
//!
//! Rare on gRPC paths (TCP avoids fragmentation with MSS and PMTUD), so this favours simplicity:
//! a small table searched linearly, a buffer per datagram. Bounded by
//! `max_fragmented_datagrams`, 64 KiB per datagram and `fragment_timeout`; anything over a bound
//! is dropped and counted, never fatal.

use std::net::IpAddr;
use std::time::Duration;

use crate::event::Nanos;
use crate::wire::IpPacket;

/// Largest IP datagram (16-bit total length).
const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    protocol: u8,
}

#[derive(Debug)]
struct Partial {
    key: Key,
    first_seen: Nanos,
    buf: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
    /// Datagram payload length, known once the last fragment arrived.
    total: Option<usize>,
}

impl Partial {
    fn add(&mut self, start: usize, data: &[u8]) {
        let end = start + data.len();
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[start..end].copy_from_slice(data);
        self.have.push((start, end));
        self.have.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.have.len());
        for &(s, e) in &self.have {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.have = merged;
    }

    fn complete(&self) -> bool {
        self.total
            .is_some_and(|t| self.have.first() == Some(&(0, t)))
    }
}

/// A datagram rebuilt from its fragments.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) protocol: u8,
    pub(crate) payload: Vec<u8>,
}

/// What happened to a fragment.
#[derive(Debug)]
pub(crate) enum FragOutcome {
    /// Kept; the datagram is not complete yet.
    Held,
    /// This fragment completed the datagram.
    Complete(Datagram),
    /// Dropped (count it): cut by snaplen, past 64 KiB, or the table was full.
    Dropped,
}

/// Datagrams being reassembled.
#[derive(Debug)]
pub(crate) struct Defrag {
    max: usize,
    timeout: Duration,
    parts: Vec<Partial>,
}

impl Defrag {
    pub(crate) fn new(max: usize, timeout: Duration) -> Defrag {
        Defrag {
            max,
            timeout,
            parts: Vec::new(),
        }
    }

    /// Adds one fragment. Returns how many held fragments' datagrams were given up (evicted or
    /// timed out) alongside the outcome for this one.
    pub(crate) fn add(&mut self, ip: &IpPacket<'_>, ts: Nanos) -> (FragOutcome, u64) {
        let Some(frag) = ip.frag else {
            return (FragOutcome::Dropped, 0);
        };
        let mut dropped = 0;
        let timeout = self.timeout;
        let before = self.parts.len();
        self.parts
            .retain(|p| ts.saturating_since(p.first_seen) < timeout);
        dropped += (before - self.parts.len()) as u64;
        let start = frag.offset as usize;
        let end = start + ip.payload.len();
        if ip.missing > 0 || end > MAX_DATAGRAM {
            return (FragOutcome::Dropped, dropped);
        }
        let key = Key {
            src: ip.src,
            dst: ip.dst,
            id: frag.id,
            protocol: ip.protocol,
        };
        let idx = match self.parts.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if self.parts.len() >= self.max.max(1) {
                    // Oldest first: the table is kept in arrival order.
                    self.parts.remove(0);
                    dropped += 1;
                }
                self.parts.push(Partial {
                    key,
                    first_seen: ts,
                    buf: Vec::new(),
                    have: Vec::new(),
                    total: None,
                });
                self.parts.len() - 1
            }
        };
        let part = &mut self.parts[idx];
        if !frag.more {
            part.total = Some(end);
        }
        if part.total.is_some_and(|t| end > t) {
            self.parts.remove(idx);
            return (FragOutcome::Dropped, dropped + 1);
        }
        part.add(start, ip.payload);
        if !part.complete() {
            return (FragOutcome::Held, dropped);
        }
        let mut p = self.parts.remove(idx);
        p.buf.truncate(p.total.unwrap_or(0));
        (
            FragOutcome::Complete(Datagram {
                src: key.src,
                dst: key.dst,
                protocol: key.protocol,
                payload: p.buf,
            }),
            dropped,
        )
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and known
mod tests {
    use super::*;
    use crate::wire::FragInfo;
    use std::net::Ipv4Addr;

    fn frag(offset: u32, more: bool, payload: &[u8]) -> IpPacket<'_> {
        IpPacket {
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
            protocol: 6,
            payload,
            missing: 0,
            frag: Some(FragInfo {
                id: 7,
                offset,
                more,
            }),
        }
    }

    #[test]
    fn out_of_order_fragments_reassemble() {
        let mut d = Defrag::new(4, Duration::from_secs(30));
        assert!(matches!(
            d.add(&frag(16, false, b"cccc"), Nanos(0)).0,
            FragOutcome::Held
        ));
        assert!(matches!(
            d.add(&frag(0, true, b"aaaaaaaa"), Nanos(0)).0,
            FragOutcome::Held
        ));
        match d.add(&frag(8, true, b"bbbbbbbb"), Nanos(0)).0 {
            FragOutcome::Complete(dg) => assert_eq!(dg.payload, b"aaaaaaaabbbbbbbbcccc"),
            other => panic!("{other:?}"),
        }
        assert!(d.parts.is_empty());
    }

    #[test]
    fn bounds_timeouts_and_lies_drop() {
        let mut d = Defrag::new(1, Duration::from_secs(30));
        d.add(&frag(0, true, b"aaaaaaaa"), Nanos(0));
        let mut other = frag(0, true, b"x");
        other.frag = Some(FragInfo {
            id: 8,
            offset: 0,
            more: true,
        });
        assert_eq!(d.add(&other, Nanos(0)).1, 1, "table full evicts the oldest");
        assert_eq!(
            d.add(&frag(0, true, b"y"), Nanos(31_000_000_000)).1,
            1,
            "expired"
        );
        assert!(matches!(
            d.add(&frag(65_528, true, b"0123456789"), Nanos(0)).0,
            FragOutcome::Dropped
        ));
    }
}

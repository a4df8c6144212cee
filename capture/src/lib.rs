//! Packets in, ordered TCP byte-stream events out.
//!
//! This is the first stage of grpctap's data flow:
//!
//! ```text
//! packet (ts, linktype, &[u8])     input::PacketSource: input::Files (source::FileSource:
//!                                  pcap, pcapng, gzip, one after the other) or live::LiveSource
//!   -> TCP segment view            wire (link, IPv4/IPv6 + extension headers, TCP), frag
//!   -> StreamEvent {conn, dir, ts, Open | Data | Gap | Close}
//!                                  flow::FlowTable + reasm::HalfStream per direction
//! ```
//!
//! Contract:
//! - Time comes only from packet timestamps; the same packets give the same events.
//! - Every table and buffer is bounded by [`CaptureLimits`]; hitting a bound evicts the oldest
//!   or idlest state and is counted in [`CaptureStats`], never fatal.
//! - A malformed packet is counted and skipped; it never affects other packets.
//! - Events are handed to a [`StreamSink`]: in-order payload is lent straight from the packet
//!   buffer, so the common path copies and allocates nothing.

pub mod clock;
pub mod config;
pub mod event;
pub mod flow;
mod frag;
pub mod input;
#[cfg(feature = "live")]
pub mod live;
mod reasm;
pub mod source;
pub mod stats;
pub mod synth;
pub mod wire;
pub mod write;

pub use config::CaptureLimits;
pub use event::{
    CloseReason, ConnId, ConnInfo, Dir, EventKind, HalfStats, Nanos, RoleSource, StreamEvent,
    StreamSink,
};
pub use flow::FlowTable;
pub use source::{FileSource, Packet, SourceError};
pub use stats::CaptureStats;

use frag::{Defrag, FragOutcome};
use wire::{IPPROTO_TCP, IpPacket, LinkPayload, WireError};

/// Link/IP/TCP decoding, IP defragmentation and the flow table, fed one packet at a time.
#[derive(Debug)]
pub struct Reassembler {
    flows: FlowTable,
    defrag: Defrag,
    stats: CaptureStats,
    clock: clock::Clock,
}

impl Reassembler {
    /// A reassembler with the given bounds.
    pub fn new(limits: CaptureLimits) -> Reassembler {
        Reassembler::with_shard(limits, 0)
    }

    /// A reassembler for worker `shard` of a sharded run: its connection ids carry the shard.
    pub fn with_shard(limits: CaptureLimits, shard: u16) -> Reassembler {
        Reassembler {
            defrag: Defrag::new(limits.max_fragmented_datagrams, limits.fragment_timeout),
            flows: FlowTable::new(limits).with_shard(shard),
            stats: CaptureStats::default(),
            clock: clock::Clock::default(),
        }
    }

    /// Which of `n` workers of a sharded run a packet belongs to: a fixed hash of its two
    /// addresses, the same both ways, so a worker owns whole connections, and all those between
    /// two hosts (a resumed TLS 1.2 session is decrypted with the secret an earlier connection
    /// between them taught; server reflection on one connection names the messages of the
    /// next: one worker sees them in packet order). What is not IP goes to worker 0.
    pub fn shard_of(pkt: &Packet<'_>, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let Ok(LinkPayload::Ip(ip)) = wire::parse_link(pkt.linktype, pkt.data) else {
            return 0;
        };
        let Ok(ip) = wire::parse_ip(ip) else {
            return 0;
        };
        flow::shard_of(ip.src, ip.dst, n)
    }

    /// Time has reached `now` elsewhere (see [`FlowTable::advance`]).
    pub fn advance(&mut self, now: Nanos) {
        self.flows.advance(now);
    }

    /// The time to give a packet stamped `ts` (see [`clock`]): its own, unless it jumped far
    /// from the packets before it. Call it once per packet, before everything that uses the
    /// packet's time (pacing, sampling, [`Reassembler::handle_packet`]).
    pub fn time_of(&mut self, ts: Nanos) -> Nanos {
        self.clock.accept(ts, &mut self.stats)
    }

    /// What has been counted so far.
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// The connection table.
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Feeds one packet; events go to `sink`.
    pub fn handle_packet<S: StreamSink + ?Sized>(&mut self, pkt: &Packet<'_>, sink: &mut S) {
        self.stats.packets += 1;
        self.stats.bytes += pkt.data.len() as u64;
        let ip = match wire::parse_link(pkt.linktype, pkt.data) {
            Ok(LinkPayload::Ip(ip)) => ip,
            Ok(LinkPayload::Other(_)) => {
                self.stats.non_tcp += 1;
                return;
            }
            Err(WireError::Invalid {
                layer: wire::Layer::Link,
                what: "unsupported link type",
            }) => {
                self.stats.unsupported_link += 1;
                return;
            }
            Err(e) => return self.count_error(e),
        };
        let ip = match wire::parse_ip(ip) {
            Ok(ip) => ip,
            Err(e) => return self.count_error(e),
        };
        if ip.frag.is_some() {
            self.stats.ip_fragments += 1;
            let (outcome, given_up) = self.defrag.add(&ip, pkt.ts);
            self.stats.ip_fragments_dropped += given_up;
            match outcome {
                FragOutcome::Held => {}
                FragOutcome::Dropped => self.stats.ip_fragments_dropped += 1,
                FragOutcome::Complete(dg) => {
                    self.stats.ip_reassembled += 1;
                    let whole = IpPacket {
                        src: dg.src,
                        dst: dg.dst,
                        protocol: dg.protocol,
                        payload: &dg.payload,
                        missing: 0,
                        frag: None,
                    };
                    self.handle_ip(&whole, pkt, sink);
                }
            }
            return;
        }
        self.handle_ip(&ip, pkt, sink);
    }

    fn handle_ip<S: StreamSink + ?Sized>(
        &mut self,
        ip: &IpPacket<'_>,
        pkt: &Packet<'_>,
        sink: &mut S,
    ) {
        if ip.protocol == wire::IPPROTO_UDP
            && let Some((sport, dport, payload)) = wire::parse_udp(ip.payload)
            && (sport == 53 || dport == 53)
        {
            // DNS: what it answers names the addresses of the connections.
            self.stats.non_tcp += 1;
            self.stats.dns_datagrams += 1;
            if sport == 53 {
                sink.on_dns(pkt.ts, std::net::SocketAddr::new(ip.src, sport), payload);
            }
            return;
        }
        if ip.protocol != IPPROTO_TCP {
            self.stats.non_tcp += 1;
            return;
        }
        let seg = match wire::parse_tcp(ip) {
            Ok(seg) => seg,
            Err(e) => return self.count_error(e),
        };
        if seg.missing > 0 {
            self.stats.truncated += 1;
        }
        self.flows
            .handle_segment(&seg, pkt.ts, &mut self.stats, sink);
    }

    fn count_error(&mut self, e: WireError) {
        match e {
            WireError::Truncated { .. } => self.stats.truncated += 1,
            WireError::Invalid { .. } => self.stats.malformed += 1,
        }
    }

    /// Expires idle connections as of `now` (also done as packet time advances).
    pub fn poll_timeouts<S: StreamSink + ?Sized>(&mut self, now: Nanos, sink: &mut S) {
        self.flows.poll_timeouts(now, &mut self.stats, sink);
    }

    /// Ends the capture: open connections close with `EndOfCapture`, holes become gaps.
    pub fn finish<S: StreamSink + ?Sized>(&mut self, sink: &mut S) {
        self.flows.finish(&mut self.stats, sink);
    }
}

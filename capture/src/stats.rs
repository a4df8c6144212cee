//! Counters of what the capture layer saw, skipped and repaired.

/// Everything the capture layer counts. Plain integers: the binary copies them out to the
/// summary, the exporter and the TUI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets read from the source.
    pub packets: u64,
    /// Captured bytes of those packets (what is in the file).
    pub bytes: u64,
    /// Packets that are not TCP over IP (ARP, UDP, ICMP, ...), skipped.
    pub non_tcp: u64,
    /// Of those, UDP datagrams to or from port 53 (DNS, read for names).
    pub dns_datagrams: u64,
    /// Packets whose link type is not supported.
    pub unsupported_link: u64,
    /// Packets cut by the snapshot length: headers missing, or TCP payload incomplete.
    pub truncated: u64,
    /// Packets with impossible header fields.
    pub malformed: u64,
    /// IP fragments seen.
    pub ip_fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub ip_reassembled: u64,
    /// Fragments dropped (timeout, bound, overlap past the datagram, snaplen).
    pub ip_fragments_dropped: u64,
    /// TCP segments handed to the flow table.
    pub tcp_segments: u64,
    /// TCP payload bytes delivered in order to the next layer.
    pub tcp_bytes: u64,
    /// Segments that arrived ahead of a hole and were buffered.
    pub out_of_order: u64,
    /// Segments carrying only bytes already delivered or buffered.
    pub retransmitted: u64,
    /// Segments that overlapped buffered bytes with different content (first copy kept).
    pub overlap_conflicts: u64,
    /// Segments dropped because their sequence number was implausibly far off.
    pub out_of_window: u64,
    /// RST, FIN or bare ACK for a connection not being tracked.
    pub stray_segments: u64,
    /// Holes given up on: bytes that will not be delivered.
    pub gaps: u64,
    /// Sum of gap lengths.
    pub gap_bytes: u64,
    /// Connections that started being tracked.
    pub conns_opened: u64,
    /// Connections whose both directions ended with FIN, or by RST.
    pub conns_closed: u64,
    /// Connections expired after `idle_timeout`.
    pub conns_expired: u64,
    /// Connections evicted to stay within `max_connections`.
    pub conns_evicted: u64,
    /// Connections replaced by a new SYN on the same 4-tuple before they were seen to close.
    pub conns_reused: u64,
    /// Packets whose timestamp jumped far from the packets before it, taken at the time of the
    /// packet before (see [`crate::clock`]).
    pub time_jumps: u64,
}

impl std::ops::AddAssign for CaptureStats {
    /// Adds another part's counters (the workers of a sharded run).
    fn add_assign(&mut self, o: CaptureStats) {
        let CaptureStats {
            packets,
            bytes,
            non_tcp,
            dns_datagrams,
            unsupported_link,
            truncated,
            malformed,
            ip_fragments,
            ip_reassembled,
            ip_fragments_dropped,
            tcp_segments,
            tcp_bytes,
            out_of_order,
            retransmitted,
            overlap_conflicts,
            out_of_window,
            stray_segments,
            gaps,
            gap_bytes,
            conns_opened,
            conns_closed,
            conns_expired,
            conns_evicted,
            conns_reused,
            time_jumps,
        } = o;
        self.packets += packets;
        self.bytes += bytes;
        self.non_tcp += non_tcp;
        self.dns_datagrams += dns_datagrams;
        self.unsupported_link += unsupported_link;
        self.truncated += truncated;
        self.malformed += malformed;
        self.ip_fragments += ip_fragments;
        self.ip_reassembled += ip_reassembled;
        self.ip_fragments_dropped += ip_fragments_dropped;
        self.tcp_segments += tcp_segments;
        self.tcp_bytes += tcp_bytes;
        self.out_of_order += out_of_order;
        self.retransmitted += retransmitted;
        self.overlap_conflicts += overlap_conflicts;
        self.out_of_window += out_of_window;
        self.stray_segments += stray_segments;
        self.gaps += gaps;
        self.gap_bytes += gap_bytes;
        self.conns_opened += conns_opened;
        self.conns_closed += conns_closed;
        self.conns_expired += conns_expired;
        self.conns_evicted += conns_evicted;
        self.conns_reused += conns_reused;
        self.time_jumps += time_jumps;
    }
}

/// Peak resident memory of this process in KiB (Linux `VmHWM`), 0 where unknown: the memory
/// figure benchmarks and `replay --stats` report.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

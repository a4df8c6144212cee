//! Every bound of the capture layer, in one place.

use std::time::Duration;

/// Bounds and timeouts of the capture layer. Hitting any bound is counted in
/// [`crate::CaptureStats`]; none of them is fatal.
#[derive(Debug, Clone)]
pub struct CaptureLimits {
    /// Connections tracked at once. Past it the least recently active (closed ones first) is
    /// evicted.
    pub max_connections: usize,
    /// Out-of-order bytes buffered per connection direction. Past it the first hole becomes a gap.
    pub max_ooo_bytes_per_direction: usize,
    /// Out-of-order segments buffered per connection direction.
    pub max_ooo_segments_per_direction: usize,
    /// Out-of-order bytes buffered over all connections.
    pub max_ooo_bytes_total: usize,
    /// A hole older than this (capture time) is declared a gap: the sender's retransmission
    /// timer would have filled it by now.
    pub reorder_timeout: Duration,
    /// An open connection silent for this long is expired. gRPC connections idle for minutes
    /// between keepalives, so this is long.
    pub idle_timeout: Duration,
    /// A closed connection is kept this long to absorb retransmitted FINs and trailing ACKs.
    pub closed_linger: Duration,
    /// A segment whose sequence number is further than this from the expected one is treated as
    /// belonging to another incarnation of the connection and dropped.
    pub max_seq_jump: u32,
    /// IP datagrams being reassembled from fragments at once.
    pub max_fragmented_datagrams: usize,
    /// Fragments of a datagram not completed within this time are dropped.
    pub fragment_timeout: Duration,
    /// Largest pcap/pcapng block accepted (the read buffer grows to it).
    pub max_block_size: usize,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        Self {
            max_connections: 262_144,
            max_ooo_bytes_per_direction: 4 << 20,
            max_ooo_segments_per_direction: 1024,
            max_ooo_bytes_total: 256 << 20,
            reorder_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(15 * 60),
            closed_linger: Duration::from_secs(10),
            max_seq_jump: 1 << 30,
            max_fragmented_datagrams: 256,
            fragment_timeout: Duration::from_secs(30),
            max_block_size: 16 << 20,
        }
    }
}

//! The seam between the input loop and decoding: one thread's decoder (`crate::run`) or the
//! workers of a sharded run (`crate::threads`) take its packets alike.

use capture::{CaptureStats, Nanos};
use decoder::output::Health;

use crate::fanout::Fanout;

/// The capture layer's counters as outputs show them.
pub(crate) fn health(s: &CaptureStats, drops: u64) -> Health {
    Health {
        packets: s.packets,
        bytes: s.bytes,
        drops,
        gaps: s.gaps,
        gap_bytes: s.gap_bytes,
        truncated: s.truncated,
    }
}

/// Where the input loop hands its packets: the decoder on this thread, or the workers of a
/// sharded run (`crate::threads`).
pub(crate) trait Decode {
    /// The time to give a packet stamped `ts` (`capture::clock`).
    fn time_of(&mut self, ts: Nanos) -> Nanos;
    /// Decodes one packet.
    fn packet(&mut self, pkt: &capture::Packet<'_>);
    /// Every output.
    fn out(&mut self) -> &mut Fanout;
    /// The capture's time went on to `to` (reading stopped at `--to`).
    fn reached(&mut self, to: Nanos);
    /// Tells the outputs where the run is; `done`: no packet follows (their `end_of_input`).
    fn tick(&mut self, source: &str, drops: u64, progress: Option<(u64, u64)>, done: bool);
    /// No packet follows (`drops`: the kernel's): the outputs hear it, then every connection
    /// ends. The capture counters and every packet dropped.
    fn end(&mut self, source: &str, drops: u64) -> (CaptureStats, u64);
}

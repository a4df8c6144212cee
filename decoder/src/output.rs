//! The outputs of a run (the summary, JSON Lines, the exporter, the terminal UI): each is a
//! [`Sink`] for what the decoder finds, plus the three moments of a run's life that the
//! binary's input loop announces. The loop hands every output the same events in the same
//! order through one fan-out, so no output is wired by hand.

use types::Nanos;

use crate::calls::sink::Sink;
use crate::conn::ConnDecoder;

/// Capture-level counters outputs show (the binary copies them from the capture layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Packets read.
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// Packets dropped by the kernel or libpcap, or at a full decoding thread's queue (live
    /// capture).
    pub drops: u64,
    /// TCP gaps (bytes the capture lost).
    pub gaps: u64,
    /// Bytes in those gaps.
    pub gap_bytes: u64,
    /// Packets cut by the snapshot length.
    pub truncated: u64,
}

/// The connections being decoded, for outputs that show what is still in progress.
pub trait Conns {
    /// Calls `f` with each connection's decoder (none where the decoders are on other threads:
    /// a sharded run).
    fn for_each_conn(&self, f: &mut dyn FnMut(&ConnDecoder));

    /// Calls `f` with each call still open (as its decoder has it, or as it began).
    fn for_each_open_call(&self, f: &mut dyn FnMut(&crate::CallRecord)) {
        self.for_each_conn(&mut |c| c.for_each_open(|o| f(o.rec)));
    }
}

/// Where a run is: sent to every output every few hundred packets, and whenever a live
/// capture sits idle.
#[derive(Clone, Copy)]
pub struct Tick<'a> {
    /// The newest packet time seen.
    pub now: Nanos,
    /// The first packet time of the capture (what the summary's rates are measured from).
    pub first: Option<Nanos>,
    /// Capture counters so far.
    pub health: Health,
    /// What is being read ("a.pcap (+2 files)", "live eth0").
    pub source: &'a str,
    /// Bytes read of the current file and its size (replays).
    pub progress: Option<(u64, u64)>,
    /// No packet will follow.
    pub done: bool,
    /// The connections being decoded.
    pub conns: &'a dyn Conns,
}

impl std::fmt::Debug for Tick<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tick")
            .field("now", &self.now)
            .field("first", &self.first)
            .field("health", &self.health)
            .field("source", &self.source)
            .field("progress", &self.progress)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// One output of a run.
pub trait Output: Sink {
    /// Whether the output counts single messages ([`Sink::message`]): there is one call per
    /// message, so outputs that do not are left out of them.
    fn wants_messages(&self) -> bool {
        false
    }
    /// The run is at `tick` (cheap unless the output has something due).
    fn tick(&mut self, _tick: &Tick<'_>) {}
    /// No more packets will be read; the calls still open are about to be ended as unfinished
    /// (an output that shows a live view stops listening here, so they stay open there).
    fn end_of_input(&mut self, _tick: &Tick<'_>) {}
    /// The run is over: write out what is buffered. An error here is the output's own (a file
    /// that could not be written); the others are still finished.
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

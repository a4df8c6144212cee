//! HTTP/2 flow control as a tap sees it (RFC 9113 section 6.9): each sender's connection window
//! and each stream's, from SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_UPDATE and DATA. A sender whose
//! window reached zero, and whose next DATA on the stream follows within a few milliseconds the
//! WINDOW_UPDATE that opened it again, was stalled with data waiting: the time from the zero to
//! the update is the stall. (A sender with nothing to send leaves its window open; one whose
//! next DATA comes later was not waiting on the window.)
//!
//! Followed only on connections seen from their start: joined mid-way, the windows are not
//! known. Windows count DATA's data bytes (padding, rare in gRPC, is left out).

use std::time::Duration;

use types::Nanos;

/// The default initial window (RFC 9113 6.9.2) and the connection's first window.
const DEFAULT_WINDOW: i64 = 65_535;

/// A DATA frame this soon after the WINDOW_UPDATE that opened its window was waiting for it.
const WAITING_WITHIN: Duration = Duration::from_millis(5);

/// A receiver's window this large cannot push back on anything (1 GiB).
pub(crate) const UNBOUNDED_WINDOW: i64 = 1 << 30;

/// Index of a sender: 0 the client, 1 the server.
pub(crate) type Sender = usize;

/// The connection's part.
#[derive(Debug, Clone)]
pub(crate) struct ConnFlow {
    /// Followed at all (the connection was seen from its start).
    pub(crate) on: bool,
    /// Each sender's connection window.
    conn: [i64; 2],
    /// Each sender's initial stream window (the receiver's SETTINGS_INITIAL_WINDOW_SIZE).
    init: [i64; 2],
    /// Streams of each sender at a zero window.
    blocked: [u32; 2],
    /// A receiver's window (connection or initial stream window) was reported as unbounded.
    pub(crate) unbounded_said: [bool; 2],
}

/// One stream's part.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamFlow {
    win: [i64; 2],
    /// Since when each sender sat at a zero window, and when a WINDOW_UPDATE opened it.
    zero: [Option<Nanos>; 2],
    opened: [Option<Nanos>; 2],
    /// Each sender's stalls and their time.
    pub(crate) stalled: [Duration; 2],
    pub(crate) stalls: [u32; 2],
}

impl ConnFlow {
    /// A connection's flow control, followed when `on`.
    pub(crate) fn new(on: bool) -> ConnFlow {
        ConnFlow {
            on,
            conn: [DEFAULT_WINDOW; 2],
            init: [DEFAULT_WINDOW; 2],
            blocked: [0; 2],
            unbounded_said: [false; 2],
        }
    }

    /// A new stream's windows.
    pub(crate) fn stream(&self) -> StreamFlow {
        StreamFlow {
            win: self.init,
            ..StreamFlow::default()
        }
    }

    /// The receiver of `sender`'s bytes announced SETTINGS_INITIAL_WINDOW_SIZE `value`: the
    /// streams' windows move by the change (6.9.2). Returns the change, for the open streams.
    pub(crate) fn initial(&mut self, sender: Sender, value: u32) -> i64 {
        let delta = i64::from(value).saturating_sub(self.init[sender]);
        self.init[sender] = i64::from(value);
        delta
    }

    /// A stream's window moved by `delta` for `sender` (a SETTINGS change).
    pub(crate) fn shift(s: &mut StreamFlow, sender: Sender, delta: i64) {
        s.win[sender] = s.win[sender].saturating_add(delta);
    }

    /// Whether `sender`'s receiver made a window unbounded (first time only).
    pub(crate) fn unbounded(&mut self, sender: Sender) -> Option<i64> {
        let w = self.conn[sender].max(self.init[sender]);
        if !self.on || self.unbounded_said[sender] || w < UNBOUNDED_WINDOW {
            return None;
        }
        self.unbounded_said[sender] = true;
        Some(w)
    }

    /// A DATA frame of `len` data bytes from `sender` began at `ts` on stream `s`.
    #[inline]
    pub(crate) fn data(&mut self, s: &mut StreamFlow, sender: Sender, len: u32, ts: Nanos) {
        if !self.on {
            return;
        }
        let len = i64::from(len);
        self.conn[sender] = self.conn[sender].saturating_sub(len);
        s.win[sender] = s.win[sender].saturating_sub(len);
        if let (Some(zero), Some(opened)) = (s.zero[sender], s.opened[sender]) {
            // It sent as soon as it could: it had been waiting.
            if ts
                .checked_since(opened)
                .is_some_and(|d| d <= WAITING_WITHIN)
            {
                s.stalled[sender] += opened.checked_since(zero).unwrap_or_default();
                s.stalls[sender] += 1;
            }
            self.unblock(s, sender);
        }
        if s.win[sender] <= 0 || self.conn[sender] <= 0 {
            if s.zero[sender].is_none() {
                self.blocked[sender] += 1;
            }
            s.zero[sender].get_or_insert(ts);
        }
    }

    fn unblock(&mut self, s: &mut StreamFlow, sender: Sender) {
        if s.zero[sender].take().is_some() {
            self.blocked[sender] = self.blocked[sender].saturating_sub(1);
        }
        s.opened[sender] = None;
    }

    /// The receiver of `sender`'s bytes sent WINDOW_UPDATE `increment` for the connection at
    /// `ts`: the streams waiting only on it open. `streams` are the open streams' parts.
    pub(crate) fn conn_update<'a>(
        &mut self,
        sender: Sender,
        increment: u32,
        ts: Nanos,
        streams: impl Iterator<Item = &'a mut StreamFlow>,
    ) {
        if !self.on {
            return;
        }
        // Saturating: a hostile peer may send updates past the protocol's 2^31 - 1.
        self.conn[sender] = self.conn[sender].saturating_add(i64::from(increment));
        if self.blocked[sender] > 0 && self.conn[sender] > 0 {
            for s in streams {
                if s.zero[sender].is_some() && s.win[sender] > 0 {
                    s.opened[sender].get_or_insert(ts);
                }
            }
        }
    }

    /// The same for stream `s`'s window.
    pub(crate) fn stream_update(
        &mut self,
        s: &mut StreamFlow,
        sender: Sender,
        increment: u32,
        ts: Nanos,
    ) {
        if !self.on {
            return;
        }
        s.win[sender] = s.win[sender].saturating_add(i64::from(increment));
        if s.zero[sender].is_some() && s.win[sender] > 0 && self.conn[sender] > 0 {
            s.opened[sender].get_or_insert(ts);
        }
    }

    /// A stream ended: it no longer waits.
    pub(crate) fn ended(&mut self, s: &mut StreamFlow) {
        for sender in 0..2 {
            self.unblock(s, sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_the_time_at_zero_until_the_update_the_sender_was_waiting_for() {
        let mut c = ConnFlow::new(true);
        c.initial(1, 20_000);
        let mut s = c.stream();
        let ms = |n: u64| Nanos(n * 1_000_000);
        c.data(&mut s, 1, 16_384, ms(0));
        c.data(&mut s, 1, 3_616, ms(1)); // the window is spent
        c.stream_update(&mut s, 1, 10_000, ms(201));
        c.data(&mut s, 1, 10_000, ms(202)); // sent at once: it was waiting
        assert_eq!((s.stalls[1], s.stalled[1]), (1, Duration::from_millis(200)));
        // Spent again, opened, but the next DATA comes much later: not waiting.
        c.stream_update(&mut s, 1, 10_000, ms(400));
        c.data(&mut s, 1, 100, ms(900));
        assert_eq!(s.stalls[1], 1);
        // The connection window alone can block too.
        let mut c = ConnFlow::new(true);
        c.initial(0, 1 << 20);
        let mut a = c.stream();
        c.data(&mut a, 0, 65_535, ms(0));
        c.conn_update(0, 65_535, ms(50), std::iter::once(&mut a));
        c.data(&mut a, 0, 1000, ms(51));
        assert_eq!((a.stalls[0], a.stalled[0]), (1, Duration::from_millis(50)));
        // Off: nothing is counted.
        let mut c = ConnFlow::new(false);
        let mut s = c.stream();
        c.data(&mut s, 1, 70_000, ms(0));
        c.stream_update(&mut s, 1, 70_000, ms(100));
        c.data(&mut s, 1, 1, ms(100));
        assert_eq!(s.stalls[1], 0);
    }
}

//! Packet time as the tap uses it. A capture's timestamps are data from outside: one packet
//! stamped 30 days (or 30 years) ahead, or far in the past, would otherwise expire every
//! connection as idle, put months into latency histograms and make time-driven outputs walk
//! across the jump. A packet whose time jumps more than [`MAX_FORWARD`] ahead of the packets
//! before it, or more than [`MAX_BACKWARD`] behind them, is taken at the time of the packet
//! before it and counted (`time_jumps`); when the next packet agrees with the jump (a capture
//! that really resumed a day later, a clock stepped back), the clock follows from then on.
//! Small reorderings (multi-queue captures, merged interfaces) keep their own times.

use std::time::Duration;

use types::Nanos;

use crate::stats::CaptureStats;

/// A larger step forward between two packets is taken for a bad timestamp until the next
/// packet confirms it.
pub const MAX_FORWARD: Duration = Duration::from_secs(24 * 3600);
/// A larger step backward likewise.
pub const MAX_BACKWARD: Duration = Duration::from_secs(10);

/// The time the tap has reached.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    now: Option<Nanos>,
    /// The time of the last packet that jumped, not yet confirmed.
    pending: Option<Nanos>,
}

/// Whether `ts` is within the bounds of `from`.
fn near(from: Nanos, ts: Nanos) -> bool {
    let fwd = u64::try_from(MAX_FORWARD.as_nanos()).unwrap_or(u64::MAX);
    let back = u64::try_from(MAX_BACKWARD.as_nanos()).unwrap_or(u64::MAX);
    ts.0 <= from.0.saturating_add(fwd) && ts.0.saturating_add(back) >= from.0
}

impl Clock {
    /// The time to use for a packet stamped `ts`.
    pub fn accept(&mut self, ts: Nanos, stats: &mut CaptureStats) -> Nanos {
        let Some(now) = self.now else {
            self.now = Some(ts);
            return ts;
        };
        if near(now, ts) {
            self.pending = None;
            self.now = Some(now.max(ts));
            return ts;
        }
        if self.pending.is_some_and(|p| near(p, ts)) {
            // Two packets agree: the capture's time really moved.
            self.pending = None;
            self.now = Some(ts);
            return ts;
        }
        stats.time_jumps += 1;
        self.pending = Some(ts);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn outliers_are_held_to_the_clock_and_real_jumps_followed() {
        let mut st = CaptureStats::default();
        let mut c = Clock::default();
        let t0 = 1_700_000_000 * S;
        let mut at = |ts: u64| c.accept(Nanos(ts), &mut st).0;
        assert_eq!(at(t0), t0);
        assert_eq!(at(t0 + S), t0 + S);
        // Reordered a little: its own time.
        assert_eq!(at(t0 + S / 2), t0 + S / 2);
        // One packet 30 days ahead, then back to normal: held to the clock.
        assert_eq!(at(t0 + 30 * 86_400 * S), t0 + S);
        assert_eq!(at(t0 + 2 * S), t0 + 2 * S);
        // 30 years back, alone: the same.
        assert_eq!(at(t0 - 30 * 365 * 86_400 * S), t0 + 2 * S);
        assert_eq!(at(t0 + 3 * S), t0 + 3 * S);
        // A capture that resumes two days later: the first packet held, the clock follows.
        let later = t0 + 2 * 86_400 * S;
        assert_eq!(at(later), t0 + 3 * S);
        assert_eq!(at(later + S), later + S);
        assert_eq!(at(later + 2 * S), later + 2 * S);
        assert_eq!(st.time_jumps, 3);
    }
}

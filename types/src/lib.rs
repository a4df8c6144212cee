//! The values that cross every seam of grpctap's data flow: packet time ([`Nanos`]), the
//! identity of a TCP connection ([`ConnId`]) and the direction of bytes within it ([`Dir`]).
//!
//! They live in a crate of their own because the stages that share them must not depend on one
//! another (`capture` and `decoder` are siblings; `tui` and `exporter` see only `decoder`).
//! Nothing here reads a clock or does I/O.

#![forbid(unsafe_code)]

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in capture time: nanoseconds since the Unix epoch, from packet timestamps. Never read
/// from the machine's clock, so a replay gives the same times as the live run it recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The epoch.
    pub const ZERO: Nanos = Nanos(0);
    /// The latest representable time (year 2554).
    pub const MAX: Nanos = Nanos(u64::MAX);

    /// Seconds since the epoch as a float (JSON output).
    #[inline]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self - earlier`, zero when `earlier` is later.
    #[inline]
    pub fn saturating_since(self, earlier: Nanos) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self - earlier`, `None` when `earlier` is later.
    #[inline]
    pub fn checked_since(self, earlier: Nanos) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }

    /// This time plus `d`, saturating at [`Nanos::MAX`].
    #[inline]
    pub fn saturating_add(self, d: Duration) -> Nanos {
        Nanos(self.0.saturating_add(duration_ns(d)))
    }

    /// This time minus `d`, saturating at the epoch.
    #[inline]
    pub fn saturating_sub(self, d: Duration) -> Nanos {
        Nanos(self.0.saturating_sub(duration_ns(d)))
    }
}

/// A duration in nanoseconds, saturating (584 years fit).
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Nanos {
    type Output = Nanos;
    /// Saturating: packet times come off the wire.
    #[inline]
    fn add(self, d: Duration) -> Nanos {
        self.saturating_add(d)
    }
}

impl Sub for Nanos {
    type Output = Duration;
    /// Saturating at zero.
    #[inline]
    fn sub(self, earlier: Nanos) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Identifies one TCP connection for its whole life; never reused within a run.
///
/// The top 16 bits name the shard (the worker that owns the connection), the low 48 bits count
/// connections within it, so ids made by different workers never collide. With one shard the
/// id is just the count, the number users see in `--calls` and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

impl ConnId {
    const SEQ_BITS: u32 = 48;

    /// An id no connection has (all bits set: shard 65535, the last sequence number), for a
    /// value to fill in later.
    pub const PLACEHOLDER: ConnId = ConnId(u64::MAX);

    /// The `seq`-th connection of `shard` (`seq` keeps its low 48 bits: 2.8e14 connections).
    #[inline]
    pub fn new(shard: u16, seq: u64) -> ConnId {
        ConnId((u64::from(shard) << Self::SEQ_BITS) | (seq & ((1 << Self::SEQ_BITS) - 1)))
    }

    /// The id as one number (what JSON and the UI show).
    #[inline]
    pub fn get(self) -> u64 {
        self.0
    }

    /// The worker that owns the connection.
    #[inline]
    pub fn shard(self) -> u16 {
        // The shift leaves 16 bits.
        u16::try_from(self.0 >> Self::SEQ_BITS).unwrap_or(u16::MAX)
    }

    /// The connection's number within its shard.
    #[inline]
    pub fn seq(self) -> u64 {
        self.0 & ((1 << Self::SEQ_BITS) - 1)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl serde::Serialize for ConnId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Direction of bytes within a connection, as the capture layer first named the two ends. The
/// HTTP/2 layer may learn from the bytes that the roles are the other way round; it keeps this
/// naming and maps it to client and server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the client (the side that sent the SYN, or the guess) to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

impl Dir {
    /// Both directions, `ToServer` first.
    pub const BOTH: [Dir; 2] = [Dir::ToServer, Dir::ToClient];

    /// Index 0 for `ToServer`, 1 for `ToClient` (for two-element arrays).
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }

    /// The other direction.
    #[inline]
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_ids_keep_shard_and_sequence_apart() {
        let a = ConnId::new(0, 7);
        assert_eq!((a.get(), a.shard(), a.seq()), (7, 0, 7));
        let b = ConnId::new(3, 7);
        assert_ne!(a, b);
        assert_eq!((b.shard(), b.seq()), (3, 7));
        assert_eq!(ConnId::new(u16::MAX, u64::MAX).shard(), u16::MAX);
        assert_eq!(a.to_string(), "c7");
    }

    #[test]
    fn time_arithmetic_saturates() {
        let t = Nanos(1_500_000_000);
        assert_eq!(t - Nanos(2_000_000_000), Duration::ZERO);
        assert_eq!(Nanos(2_000_000_000) - t, Duration::from_millis(500));
        assert_eq!(Nanos::MAX + Duration::from_secs(1), Nanos::MAX);
        assert_eq!(t.saturating_sub(Duration::from_secs(9)), Nanos::ZERO);
        assert_eq!(t.to_string(), "1.500000000");
        assert_eq!(
            t.checked_since(Nanos(2)),
            Some(Duration::from_nanos(1_499_999_998))
        );
        assert_eq!(Nanos(1).checked_since(t), None);
        assert_eq!(Dir::ToServer.reverse().index(), 1);
    }
}

/// `s` with every control character (C0, DEL, C1) written as a Rust-style escape (`\u{1b}`), for
/// text from the wire printed to a terminal: a method name holding ESC or OSC sequences would
/// otherwise drive the terminal (OSC 52 writes the clipboard). Borrowed when there is none.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(
            printable("/pkg.Svc/Do"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("/a\u{1b}]52;c;aGk=\u{7}/b\u{9b}x\u{7f}"),
            "/a\\u{1b}]52;c;aGk=\\u{7}/b\\u{9b}x\\u{7f}"
        );
        assert_eq!(printable("tab\there"), "tab\\u{9}here");
        assert_eq!(printable("é ü"), "é ü");
    }
}

//! The status rules: how a call's effective status follows from the way its stream ended
//! (gRPC PROTOCOL-HTTP2.md, "Responses" and "Errors"; doc/http-grpc-status-mapping.md). The
//! real status is in the trailers; HTTP 200 says nothing. When the wire carries no status the
//! rule says where the inferred one came from, and never invents an OK.
//!
//! Pure functions over [`Ending`], so every rule is tested here without building a frame.

use std::time::Duration;

use types::Nanos;

use super::record::{Confidence, StatusSource};
use crate::grpc::{self, Code};

/// How a stream ended, as the call tracker saw it: the inputs of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server's HEADERS with END_STREAM: trailers, or a trailers-only response.
    Trailers {
        /// `grpc-status`, when present and readable.
        grpc_status: Option<Code>,
        /// `:status` of the response (from its headers or the trailers-only block).
        http_status: Option<u16>,
        /// Response headers came before (trailers proper, not trailers-only).
        after_headers: bool,
        /// Some fields of the block referred to header table entries from before the capture:
        /// `grpc-status` may be among them.
        unreadable: bool,
    },
    /// The server's DATA with END_STREAM: the stream ended without trailers.
    NoTrailers,
    /// RST_STREAM from either side.
    Reset {
        /// HTTP/2 error code.
        code: u32,
        /// The call's `grpc-timeout` had run out (see [`deadline_passed`]).
        deadline_passed: bool,
    },
    /// Above the last stream id of the server's GOAWAY: never processed (RFC 9113 6.8).
    Refused,
    /// The TCP connection closed (FIN or RST) with the call open.
    ConnectionClosed {
        /// The call's `grpc-timeout` had run out.
        deadline_passed: bool,
    },
    /// The capture ended with the call open.
    EndOfCapture,
}

/// The effective status and the rule that gave it.
pub fn decide(e: Ending) -> (Option<Code>, StatusSource) {
    match e {
        Ending::Trailers {
            grpc_status: Some(code),
            after_headers,
            ..
        } => {
            let src = if after_headers {
                StatusSource::Trailers
            } else {
                StatusSource::TrailersOnly
            };
            (Some(code), src)
        }
        Ending::Trailers {
            http_status: Some(http),
            ..
        } if http != 200 => (Some(grpc::from_http_status(http)), StatusSource::HttpStatus),
        // The status may be among the fields we cannot read: say so, guess nothing.
        Ending::Trailers {
            unreadable: true, ..
        } => (None, StatusSource::HpackUnknown),
        // Trailers without grpc-status: gRPC clients fail such calls.
        Ending::Trailers { .. } => (Some(Code::UNKNOWN), StatusSource::Trailers),
        Ending::NoTrailers => (Some(Code::INTERNAL), StatusSource::NoTrailers),
        // A client cancels an expired call with CANCEL (PROTOCOL-HTTP2.md, "Errors").
        Ending::Reset {
            code: 0x8,
            deadline_passed: true,
        } => (Some(Code::DEADLINE_EXCEEDED), StatusSource::Deadline),
        Ending::Reset { code, .. } => (Some(grpc::from_reset(code)), StatusSource::Reset),
        Ending::Refused => (Some(Code::UNAVAILABLE), StatusSource::Goaway),
        Ending::ConnectionClosed {
            deadline_passed: true,
        } => (Some(Code::DEADLINE_EXCEEDED), StatusSource::Deadline),
        Ending::ConnectionClosed {
            deadline_passed: false,
        } => (Some(Code::UNAVAILABLE), StatusSource::ConnectionClosed),
        Ending::EndOfCapture => (None, StatusSource::Unfinished),
    }
}

/// How sure a status given by `source` is. `start_seen`: the call's request headers were seen
/// (without them a reset's meaning is unsure: the deadline they carried is not known).
pub fn confidence(source: StatusSource, start_seen: bool) -> Confidence {
    match source {
        StatusSource::Trailers
        | StatusSource::TrailersOnly
        | StatusSource::HttpStatus
        | StatusSource::NoTrailers
        | StatusSource::Goaway
        | StatusSource::ConnectionClosed => Confidence::Exact,
        StatusSource::Reset | StatusSource::Deadline if start_seen => Confidence::Exact,
        StatusSource::Reset
        | StatusSource::Deadline
        | StatusSource::HpackLearned
        | StatusSource::HpackName
        | StatusSource::StatusDetails
        | StatusSource::OneResponse
        | StatusSource::ErrorMessage
        | StatusSource::NoResponse => Confidence::Inferred,
        StatusSource::HpackUnknown | StatusSource::Unfinished => Confidence::Unknown,
    }
}

/// Whether a call that started at `start` with `grpc-timeout` `timeout` had run out of time by
/// `now`. The capture sees the request a little after the client started its clock, so a reset
/// up to 1% (at least 2 ms) early still counts.
pub fn deadline_passed(start: Option<Nanos>, timeout: Option<Duration>, now: Nanos) -> bool {
    let (Some(start), Some(timeout)) = (start, timeout) else {
        return false;
    };
    let elapsed = now.saturating_since(start);
    let slack = (timeout / 100).max(Duration::from_millis(2));
    elapsed + slack >= timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatusSource as S;

    fn trailers(grpc: Option<u32>, http: Option<u16>, after: bool, unreadable: bool) -> Ending {
        Ending::Trailers {
            grpc_status: grpc.map(Code),
            http_status: http,
            after_headers: after,
            unreadable,
        }
    }

    #[test]
    fn every_rule() {
        let table: [(Ending, Option<u32>, StatusSource); 16] = [
            (
                trailers(Some(0), Some(200), true, false),
                Some(0),
                S::Trailers,
            ),
            (
                trailers(Some(5), Some(200), false, false),
                Some(5),
                S::TrailersOnly,
            ),
            // grpc-status wins over any HTTP status, and over unreadable fields.
            (
                trailers(Some(3), Some(503), false, true),
                Some(3),
                S::TrailersOnly,
            ),
            (
                trailers(None, Some(503), false, false),
                Some(14),
                S::HttpStatus,
            ),
            (
                trailers(None, Some(404), false, true),
                Some(12),
                S::HttpStatus,
            ),
            (trailers(None, Some(200), true, true), None, S::HpackUnknown),
            (trailers(None, None, false, true), None, S::HpackUnknown),
            (trailers(None, Some(200), true, false), Some(2), S::Trailers),
            (Ending::NoTrailers, Some(13), S::NoTrailers),
            (
                Ending::Reset {
                    code: 8,
                    deadline_passed: true,
                },
                Some(4),
                S::Deadline,
            ),
            (
                Ending::Reset {
                    code: 8,
                    deadline_passed: false,
                },
                Some(1),
                S::Reset,
            ),
            // Only CANCEL says the client gave up; other codes keep their mapping.
            (
                Ending::Reset {
                    code: 2,
                    deadline_passed: true,
                },
                Some(13),
                S::Reset,
            ),
            (
                Ending::Reset {
                    code: 7,
                    deadline_passed: false,
                },
                Some(14),
                S::Reset,
            ),
            (Ending::Refused, Some(14), S::Goaway),
            (
                Ending::ConnectionClosed {
                    deadline_passed: true,
                },
                Some(4),
                S::Deadline,
            ),
            (
                Ending::ConnectionClosed {
                    deadline_passed: false,
                },
                Some(14),
                S::ConnectionClosed,
            ),
        ];
        for (ending, code, source) in table {
            assert_eq!(decide(ending), (code.map(Code), source), "{ending:?}");
        }
        assert_eq!(decide(Ending::EndOfCapture), (None, S::Unfinished));
    }

    #[test]
    fn deadlines_with_slack() {
        let ms = |n: u64| Nanos(n * 1_000_000);
        let t = Some(Duration::from_millis(100));
        assert!(!deadline_passed(Some(ms(0)), t, ms(97)));
        assert!(deadline_passed(Some(ms(0)), t, ms(98)), "2 ms early counts");
        assert!(deadline_passed(Some(ms(0)), t, ms(150)));
        let long = Some(Duration::from_secs(10));
        assert!(
            deadline_passed(Some(ms(0)), long, ms(9_900)),
            "1% early counts"
        );
        assert!(!deadline_passed(Some(ms(0)), long, ms(9_800)));
        assert!(!deadline_passed(None, t, ms(500)), "start unknown");
        assert!(!deadline_passed(Some(ms(0)), None, ms(500)), "no deadline");
    }
}

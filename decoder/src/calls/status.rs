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
        /// Where the reset fell against the call's `grpc-timeout` (see [`deadline`]).
        deadline: Deadline,
        /// The client sent it.
        by_client: bool,
    },
    /// Above the last stream id of the server's GOAWAY: never processed (RFC 9113 6.8).
    Refused,
    /// The TCP connection closed (FIN or RST) with the call open.
    ConnectionClosed {
        /// Where the close fell against the call's `grpc-timeout`.
        deadline: Deadline,
        /// The client's FIN or RST came first: it closed the connection.
        by_client: bool,
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
            code,
            deadline: Deadline::Passed,
            by_client,
        } if cancels(code, by_client) => (Some(Code::DEADLINE_EXCEEDED), StatusSource::Deadline),
        // Near the deadline a user's cancel and the expiry look alike: an error, which one
        // only the client knows.
        Ending::Reset {
            code,
            deadline: Deadline::Near,
            by_client,
        } if cancels(code, by_client) => (None, StatusSource::DeadlineNear),
        Ending::Reset { code, .. } => (Some(grpc::from_reset(code)), StatusSource::Reset),
        Ending::Refused => (Some(Code::UNAVAILABLE), StatusSource::Goaway),
        Ending::ConnectionClosed {
            deadline: Deadline::Passed,
            ..
        } => (Some(Code::DEADLINE_EXCEEDED), StatusSource::Deadline),
        Ending::ConnectionClosed {
            deadline: Deadline::Near,
            ..
        } => (None, StatusSource::DeadlineNear),
        // A client that closes its own connection gave its calls up: it saw CANCELLED
        // (grpc-go), UNAVAILABLE (grpc-java's shutdownNow) or nothing (its process ended).
        Ending::ConnectionClosed {
            deadline: Deadline::Before,
            by_client: true,
        } => (None, StatusSource::ClientClosed),
        Ending::ConnectionClosed {
            deadline: Deadline::Before,
            by_client: false,
        } => (Some(Code::UNAVAILABLE), StatusSource::ConnectionClosed),
        Ending::EndOfCapture => (None, StatusSource::Unfinished),
    }
}

/// Whether a reset is how its sender cancels a call (its user's cancel or its deadline):
/// CANCEL, as gRPC's spec names it, or a client's INTERNAL_ERROR, which connect-es clients
/// send instead (at or past the deadline; before it, it maps to INTERNAL as any other).
pub(crate) fn cancels(code: u32, by_client: bool) -> bool {
    code == 0x8 || (by_client && code == 0x2)
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
        | StatusSource::EndOfStream => Confidence::Exact,
        // Without its start, a call may have ended before the capture began: see the tracker.
        StatusSource::ConnectionClosed if start_seen => Confidence::Exact,
        StatusSource::ConnectionClosed => Confidence::Unknown,
        StatusSource::Reset | StatusSource::Deadline if start_seen => Confidence::Exact,
        StatusSource::Reset
        | StatusSource::Deadline
        | StatusSource::DeadlineNear
        | StatusSource::ClientClosed
        | StatusSource::HpackLearned
        | StatusSource::HpackName
        | StatusSource::StatusDetails
        | StatusSource::OneResponse
        | StatusSource::ErrorMessage
        | StatusSource::NoResponse => Confidence::Inferred,
        StatusSource::HpackUnknown | StatusSource::Unfinished | StatusSource::ProtocolUnknown => {
            Confidence::Unknown
        }
    }
}

/// Where an end fell against a call's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Before it (or the call had no deadline we know of): not an expiry.
    Before,
    /// Within the few milliseconds around it where clients' expiries and cancellations overlap
    /// on the wire: taken as an expiry, inferred.
    Near,
    /// Well past it: an expiry.
    Passed,
}

/// How a client stack's deadline shows on the wire, from its `user-agent`: how early its
/// expiry can come against the wire's `grpc-timeout`, and how late a user's cancellation can.
/// Measured per stack from real captures (testdata/gen/DEADLINES.md); a stack not measured, or
/// a call whose `user-agent` could not be read, gets the widest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineHabit {
    /// grpc-go and tonic: the wire value is the time left (grpc-go) or the configured one with
    /// the timer started before the headers left (tonic); they reset 0 to 2.3 ms after it.
    /// A cancellation cannot come after the deadline (the timer ends the call first).
    Precise,
    /// gRPC C-core (python, C++, ruby, PHP, ...): the wire value is rounded up (`1010m` for
    /// 1 s) but the timer fires at the configured deadline: up to 10.5 ms early at 1 s; and a
    /// python client's cancel can come late, past the wire deadline (8 ms after its delay was
    /// seen, python against python).
    RoundsUp,
    /// grpc-js, and stacks not measured: whole milliseconds left on the wire, a timer on an
    /// event loop that fires up to 14 ms late, so a user's cancel can land after the wire
    /// deadline (one did, 1.4 ms after).
    Loose,
}

impl DeadlineHabit {
    /// The habit of the client whose `user-agent` is `ua`.
    pub fn of(ua: Option<&str>) -> DeadlineHabit {
        let Some(ua) = ua else {
            return DeadlineHabit::Loose;
        };
        if ua.starts_with("grpc-go/") || ua.starts_with("tonic/") {
            DeadlineHabit::Precise
        } else if ua.contains("grpc-c/") {
            DeadlineHabit::RoundsUp
        } else {
            DeadlineHabit::Loose
        }
    }

    /// Time since the request from which an end may be the expiry, and from which it is one.
    fn window(self, timeout: Duration) -> (Duration, Duration) {
        // The capture sees the request a little after the client started its clock: up to
        // 2 ms on an idle host, 7 ms measured on a loaded one (a busy client queues its
        // requests). Up to a tenth of the timeout (at most CLIENT_LAG) before the deadline, a
        // cancellation and an expiry look alike; a shorter call's cancellation at 70 % of its
        // timeout still reads as one.
        let capture = Duration::from_millis(2);
        let lag = (timeout / 10).clamp(capture, CLIENT_LAG);
        match self {
            // A cancellation cannot come after the deadline: from 2 ms before it, an expiry.
            DeadlineHabit::Precise => {
                (timeout.saturating_sub(lag), timeout.saturating_sub(capture))
            }
            // A cancellation may come up to 15 ms after it.
            DeadlineHabit::RoundsUp | DeadlineHabit::Loose => (
                timeout.saturating_sub(timeout / 100 + lag),
                timeout + Duration::from_millis(15) + Duration::from_nanos(1),
            ),
        }
    }
}

/// The most a busy client may start a call's clock before its request reaches the wire, as
/// far as the window of doubt reaches.
const CLIENT_LAG: Duration = Duration::from_millis(20);

/// Where `now` falls against the deadline of a call that started at `start` with `grpc-timeout`
/// `timeout`, for a client with `habit`. From the earliest its expiry can come to the latest a
/// cancellation can, the two look alike: [`Deadline::Near`]. For stacks whose cancellations
/// cannot come late, an end from when their expiry usually comes on is one.
pub fn deadline(
    start: Option<Nanos>,
    timeout: Option<Duration>,
    now: Nanos,
    habit: DeadlineHabit,
) -> Deadline {
    let (Some(start), Some(timeout)) = (start, timeout) else {
        return Deadline::Before;
    };
    let (near, passed) = habit.window(timeout);
    let elapsed = now.saturating_since(start);
    if elapsed < near {
        Deadline::Before
    } else if elapsed >= passed {
        Deadline::Passed
    } else {
        Deadline::Near
    }
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
    fn a_clients_internal_error_at_its_deadline_is_its_cancel() {
        let client = |code, deadline| Ending::Reset {
            code,
            deadline,
            by_client: true,
        };
        assert_eq!(
            decide(client(2, Deadline::Passed)),
            (Some(Code::DEADLINE_EXCEEDED), StatusSource::Deadline)
        );
        assert_eq!(
            decide(client(2, Deadline::Near)),
            (None, StatusSource::DeadlineNear)
        );
        assert_eq!(
            decide(client(2, Deadline::Before)),
            (Some(Code::INTERNAL), StatusSource::Reset)
        );
    }

    #[test]
    fn every_rule() {
        let reset = |code, deadline| Ending::Reset {
            code,
            deadline,
            by_client: true,
        };
        let closed = |deadline| Ending::ConnectionClosed {
            deadline,
            by_client: false,
        };
        let table: [(Ending, Option<u32>, StatusSource); 21] = [
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
            (reset(8, Deadline::Passed), Some(4), S::Deadline),
            (reset(8, Deadline::Near), None, S::DeadlineNear),
            (reset(8, Deadline::Before), Some(1), S::Reset),
            // Only CANCEL says the client gave up; other codes keep their mapping.
            // The server's INTERNAL_ERROR past the deadline is INTERNAL (a client's reads as
            // its cancel: below).
            (
                Ending::Reset {
                    code: 2,
                    deadline: Deadline::Passed,
                    by_client: false,
                },
                Some(13),
                S::Reset,
            ),
            (reset(7, Deadline::Before), Some(14), S::Reset),
            (Ending::Refused, Some(14), S::Goaway),
            (closed(Deadline::Passed), Some(4), S::Deadline),
            (closed(Deadline::Near), None, S::DeadlineNear),
            (closed(Deadline::Before), Some(14), S::ConnectionClosed),
            // The client closed it: it gave the call up.
            (
                Ending::ConnectionClosed {
                    deadline: Deadline::Before,
                    by_client: true,
                },
                None,
                S::ClientClosed,
            ),
            (
                Ending::ConnectionClosed {
                    deadline: Deadline::Passed,
                    by_client: true,
                },
                Some(4),
                S::Deadline,
            ),
            (Ending::EndOfCapture, None, S::Unfinished),
        ];
        for (ending, code, source) in table {
            assert_eq!(decide(ending), (code.map(Code), source), "{ending:?}");
        }
    }

    #[test]
    fn deadlines_with_measured_tolerances() {
        let ms = |n: u64| Nanos(n * 1_000_000);
        let d =
            |h, t: u64, at: u64| deadline(Some(ms(0)), Some(Duration::from_millis(t)), ms(at), h);
        use DeadlineHabit::{Loose, Precise, RoundsUp};
        // grpc-js and unknown stacks, 100 ms: early 1 ms and a busy client's 10, a cancel
        // may come 15 ms late.
        assert_eq!(d(Loose, 100, 88), Deadline::Before);
        assert_eq!(d(Loose, 100, 89), Deadline::Near);
        assert_eq!(d(Loose, 100, 115), Deadline::Near);
        assert_eq!(d(Loose, 100, 116), Deadline::Passed);
        // grpc-go and tonic: an end from 2 ms before the deadline on is its expiry; from a
        // tenth of the timeout before (10 ms here), a busy client's expiry or a cancellation.
        assert_eq!(d(Precise, 100, 89), Deadline::Before);
        assert_eq!(d(Precise, 100, 90), Deadline::Near);
        assert_eq!(d(Precise, 100, 97), Deadline::Near);
        assert_eq!(d(Precise, 100, 98), Deadline::Passed);
        assert_eq!(d(Precise, 100, 5000), Deadline::Passed);
        // A 20 ms call cancelled at 70 %: a cancellation; at most 20 ms of doubt for long ones.
        assert_eq!(d(Precise, 20, 14), Deadline::Before);
        assert_eq!(d(Precise, 20, 18), Deadline::Passed);
        assert_eq!(d(Precise, 5000, 4979), Deadline::Before);
        assert_eq!(d(Precise, 5000, 4980), Deadline::Near);
        // C-core's 1 s (1010m on the wire) expiring 10.5 ms early.
        assert_eq!(d(RoundsUp, 1010, 999), Deadline::Near);
        assert_eq!(d(RoundsUp, 1010, 979), Deadline::Before);
        assert_eq!(d(RoundsUp, 1010, 980), Deadline::Near);
        assert_eq!(d(RoundsUp, 1010, 1030), Deadline::Passed);
        assert_eq!(DeadlineHabit::of(Some("grpc-go/1.33.3")), Precise);
        assert_eq!(DeadlineHabit::of(Some("tonic/0.14.9")), Precise);
        assert_eq!(
            DeadlineHabit::of(Some("grpc-python/1.85.3 grpc-c/58.0.0 (linux; chttp2)")),
            RoundsUp
        );
        assert_eq!(DeadlineHabit::of(Some("grpc-node-js/1.14.7")), Loose);
        assert_eq!(DeadlineHabit::of(None), Loose);
        let none = deadline(None, Some(Duration::from_millis(1)), ms(500), Loose);
        assert_eq!(none, Deadline::Before);
        assert_eq!(
            deadline(Some(ms(0)), None, ms(500), Loose),
            Deadline::Before
        );
    }
}

/// How a gRPC-Web or Connect call ended.
#[derive(Debug)]
pub(crate) struct WebEnd {
    pub(crate) code: Option<Code>,
    pub(crate) source: StatusSource,
    pub(crate) message: Option<String>,
    /// The error's details as a serialized google.rpc.Status (what gRPC's
    /// `grpc-status-details-bin` carries): gRPC-Web's `grpc-status-details-bin` trailer, or
    /// built from a Connect error's `code`, `message` and `details` (each an Any: its `type`
    /// and base64 `value`).
    pub(crate) details: Option<Vec<u8>>,
}

impl WebEnd {
    fn of(code: Option<Code>, source: StatusSource) -> WebEnd {
        WebEnd {
            code,
            source,
            message: None,
            details: None,
        }
    }
}

/// The status a gRPC-Web or Connect call ended with, from its end-of-stream envelope (`end`:
/// gRPC-Web's trailers as header lines, Connect's end-of-stream JSON) or, for a Connect unary
/// call (`unary`), from its HTTP status and error body; with the message and details it
/// carried.
pub(crate) fn end_of_stream(
    kind: super::headers::RequestKind,
    end: Option<&[u8]>,
    http_status: Option<u16>,
    unary: bool,
) -> WebEnd {
    use super::headers::RequestKind;
    // A streaming response that is not 200 and ends without its end-of-stream envelope: the
    // HTTP status is the status (gRPC's mapping for gRPC-Web, Connect's for Connect).
    if !unary && end.is_none() && http_status.is_some_and(|h| h != 200) {
        let code = match kind {
            RequestKind::Connect => connect_http_code(http_status),
            _ => crate::grpc::from_http_status(http_status.unwrap_or(0)),
        };
        return WebEnd::of(Some(code), StatusSource::HttpStatus);
    }
    match kind {
        RequestKind::GrpcWeb | RequestKind::GrpcWebText => {
            let Some(end) = end else {
                let (c, s) = decide(Ending::NoTrailers);
                return WebEnd::of(c, s);
            };
            // A trailers frame without grpc-status: UNKNOWN, as gRPC's trailers without it.
            let mut out = WebEnd::of(Some(Code::UNKNOWN), StatusSource::EndOfStream);
            for line in end.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    continue;
                };
                let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
                if name.eq_ignore_ascii_case(b"grpc-status") {
                    out.code = Some(crate::grpc::parse_status(value).unwrap_or(Code::UNKNOWN));
                } else if name.eq_ignore_ascii_case(b"grpc-message") {
                    out.message = Some(crate::grpc::decode_message(value));
                } else if name.eq_ignore_ascii_case(b"grpc-status-details-bin") {
                    out.details = crate::metadata::decode_bin(value);
                }
            }
            out
        }
        RequestKind::Connect if unary => {
            if http_status == Some(200) {
                return WebEnd::of(Some(Code::OK), StatusSource::EndOfStream);
            }
            let parsed = end.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
            let mut out = match parsed.as_ref() {
                Some(e) => connect_error(e),
                None => WebEnd::of(None, StatusSource::EndOfStream),
            };
            out.code = out.code.or_else(|| Some(connect_http_code(http_status)));
            out.source = StatusSource::EndOfStream;
            out
        }
        RequestKind::Connect => {
            let Some(end) = end else {
                let (c, s) = decide(Ending::NoTrailers);
                return WebEnd::of(c, s);
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(end) else {
                return WebEnd::of(Some(Code::UNKNOWN), StatusSource::EndOfStream);
            };
            let mut out = match v.get("error") {
                None | Some(serde_json::Value::Null) => {
                    WebEnd::of(Some(Code::OK), StatusSource::EndOfStream)
                }
                Some(e) => connect_error(e),
            };
            out.code = out.code.or(Some(Code::UNKNOWN));
            out.source = StatusSource::EndOfStream;
            out
        }
        RequestKind::Grpc | RequestKind::Other => WebEnd::of(None, StatusSource::NoTrailers),
    }
}

/// Most details of one Connect error kept.
const MAX_DETAILS: usize = 64;

/// A Connect error (`{"code": ..., "message": ..., "details": [{"type", "value"}, ...]}`):
/// its code (none when it names none known), message, and the whole as a serialized
/// google.rpc.Status whose details are Anys (`type.googleapis.com/` + `type`, the base64
/// `value` decoded); details that are not objects with both are left out.
fn connect_error(e: &serde_json::Value) -> WebEnd {
    let code = e.get("code").and_then(|c| connect_code(c.as_str()?));
    let message = e.get("message").and_then(|m| Some(m.as_str()?.to_owned()));
    let mut status = Vec::new();
    if let Some(c) = code.filter(|c| c.0 != 0) {
        put_varint(&mut status, 1 << 3);
        put_varint(&mut status, u64::from(c.0));
    }
    if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
        put_field(&mut status, 2, m.as_bytes());
    }
    let details = e.get("details").and_then(|d| d.as_array());
    let mut any = Vec::new();
    for d in details.into_iter().flatten().take(MAX_DETAILS) {
        let (Some(ty), Some(value)) = (
            d.get("type").and_then(|t| t.as_str()),
            d.get("value")
                .and_then(|v| v.as_str())
                .and_then(|v| crate::metadata::decode_bin(v.as_bytes())),
        ) else {
            continue;
        };
        any.clear();
        let url = format!("type.googleapis.com/{ty}");
        put_field(&mut any, 1, url.as_bytes());
        put_field(&mut any, 2, &value);
        put_field(&mut status, 3, &any);
    }
    WebEnd {
        code,
        source: StatusSource::EndOfStream,
        message,
        details: details.filter(|d| !d.is_empty()).map(|_| status),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

/// A length-delimited field (wire type 2).
fn put_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A Connect error code (its JSON name) as the gRPC code of the same meaning.
fn connect_code(name: &str) -> Option<Code> {
    let n = match name {
        "canceled" => 1,
        "unknown" => 2,
        "invalid_argument" => 3,
        "deadline_exceeded" => 4,
        "not_found" => 5,
        "already_exists" => 6,
        "permission_denied" => 7,
        "resource_exhausted" => 8,
        "failed_precondition" => 9,
        "aborted" => 10,
        "out_of_range" => 11,
        "unimplemented" => 12,
        "internal" => 13,
        "unavailable" => 14,
        "data_loss" => 15,
        "unauthenticated" => 16,
        _ => return None,
    };
    Some(Code(n))
}

/// The Connect protocol's code for an HTTP status whose body names none.
fn connect_http_code(http: Option<u16>) -> Code {
    Code(match http {
        Some(400 | 415) => 13,
        Some(401) => 16,
        Some(403) => 7,
        Some(404) => 12,
        Some(408) => 4,
        Some(409) => 10,
        Some(412) => 9,
        Some(413 | 431) => 8,
        Some(429 | 502 | 503 | 504) => 14,
        _ => 2,
    })
}

#[cfg(test)]
mod end_tests {
    use super::*;
    use crate::calls::headers::RequestKind as K;

    #[test]
    fn grpc_web_and_connect_endings() {
        let end = |k, e: Option<&[u8]>, h, u| {
            let w = end_of_stream(k, e, Some(h), u);
            (w.code, w.source, w.message)
        };
        let t = b"grpc-status:5\r\ngrpc-message:no%20such\r\n";
        let (c, s, m) = end(K::GrpcWeb, Some(t), 200, false);
        assert_eq!(
            (c, s, m.as_deref()),
            (Some(Code(5)), StatusSource::EndOfStream, Some("no such"))
        );
        let (c, s, _) = end(K::GrpcWeb, None, 200, false);
        assert_eq!((c, s), decide(Ending::NoTrailers));
        let e = br#"{"error":{"code":"unavailable","message":"down"}}"#;
        let (c, _, m) = end(K::Connect, Some(e), 200, false);
        assert_eq!((c, m.as_deref()), (Some(Code(14)), Some("down")));
        let (c, _, _) = end(K::Connect, Some(b"{}"), 200, false);
        assert_eq!(c, Some(Code::OK));
        let u = br#"{"code":"not_found","message":"x"}"#;
        let (c, _, _) = end(K::Connect, Some(u), 404, true);
        assert_eq!(c, Some(Code(5)));
        let (c, _, _) = end(K::Connect, None, 503, true);
        assert_eq!(c, Some(Code(14)));
        let (c, _, _) = end(K::Connect, None, 200, true);
        assert_eq!(c, Some(Code::OK));
    }

    #[test]
    fn connect_error_details_become_a_google_rpc_status() {
        // ErrorInfo { reason: "R" } is 0a 01 52: base64 "CgFS" (Connect sends it unpadded).
        let u = br#"{"code":"not_found","message":"gone","details":[{"type":"google.rpc.ErrorInfo","value":"CgFS","debug":{"reason":"R"}},{"type":"x"},7]}"#;
        let w = end_of_stream(K::Connect, Some(u), Some(404), true);
        let d = w.details.expect("details");
        let mut want = vec![0x08, 5, 0x12, 4];
        want.extend_from_slice(b"gone");
        let url = b"type.googleapis.com/google.rpc.ErrorInfo";
        let mut any = vec![0x0a, u8::try_from(url.len()).expect("short")];
        any.extend_from_slice(url);
        any.extend_from_slice(&[0x12, 3, 0x0a, 1, b'R']);
        want.extend_from_slice(&[0x1a, u8::try_from(any.len()).expect("short")]);
        want.extend_from_slice(&any);
        assert_eq!(d, want);
        assert_eq!(crate::grpc::details_code(&d), Some(Code(5)));
        // Streaming: the end-of-stream message's error; without details, none.
        let e = br#"{"error":{"code":"aborted","details":[{"type":"google.rpc.ErrorInfo","value":"CgFS"}]}}"#;
        let w = end_of_stream(K::Connect, Some(e), Some(200), false);
        assert_eq!(w.code, Some(Code(10)));
        assert!(w.details.is_some());
        let e = br#"{"error":{"code":"aborted"}}"#;
        assert!(
            end_of_stream(K::Connect, Some(e), Some(200), false)
                .details
                .is_none()
        );
        // gRPC-Web's trailer frame may carry grpc-status-details-bin.
        let t = b"grpc-status:5\r\ngrpc-status-details-bin:CAU\r\n";
        let w = end_of_stream(K::GrpcWeb, Some(t), Some(200), false);
        assert_eq!(w.details.as_deref(), Some(&[0x08, 0x05][..]));
    }
}

//! The header fields call tracking reads, and the strings it keeps of them.

use std::sync::Arc;

use crate::hpack::{HeaderList, Text};

/// The fields of one header block that call tracking reads, found in one pass.
#[derive(Debug, Default)]
pub(crate) struct Wanted<'a> {
    /// `:method` or `:path` is readable: the block is a request's.
    pub(crate) request: bool,
    pub(crate) path: Option<Text<'a>>,
    pub(crate) status: Option<&'a [u8]>,
    pub(crate) authority: Option<&'a [u8]>,
    pub(crate) content_type: Option<&'a [u8]>,
    pub(crate) user_agent: Option<&'a [u8]>,
    pub(crate) encoding: Option<&'a [u8]>,
    pub(crate) timeout: Option<&'a [u8]>,
    pub(crate) grpc_status: Option<&'a [u8]>,
    pub(crate) grpc_message: Option<&'a [u8]>,
    pub(crate) traceparent: Option<&'a [u8]>,
    pub(crate) tracestate: Option<&'a [u8]>,
    pub(crate) grpc_trace_bin: Option<&'a [u8]>,
    pub(crate) status_details: Option<&'a [u8]>,
    /// `connect-protocol-version` was sent (a Connect request).
    pub(crate) connect_version: bool,
    /// `connect-timeout-ms`: a Connect call's deadline.
    pub(crate) connect_timeout: Option<&'a [u8]>,
    /// `:method` was GET (gRPC only POSTs; Connect unary calls may GET).
    pub(crate) get: bool,
    /// `content-encoding` (a Connect unary body's compression) and
    /// `connect-content-encoding` (a Connect stream's messages').
    pub(crate) content_encoding: Option<&'a [u8]>,
    pub(crate) connect_encoding: Option<&'a [u8]>,
    /// `grpc-accept-encoding`.
    pub(crate) accept_encoding: Option<&'a [u8]>,
    /// `grpc-previous-rpc-attempts`.
    pub(crate) previous_attempts: Option<&'a [u8]>,
    /// `te: trailers` was sent.
    pub(crate) te_trailers: bool,
}

impl<'a> Wanted<'a> {
    /// The first of each field in `list` (a field sent twice keeps its first value).
    pub(crate) fn of(list: &'a HeaderList) -> Wanted<'a> {
        let mut w = Wanted::default();
        for f in list.iter() {
            let Text::Bytes(name) = f.name else { continue };
            let v = f.value.bytes();
            match name {
                b":path" => {
                    w.request = true;
                    w.path.get_or_insert(f.value);
                }
                b":method" => {
                    w.request = true;
                    w.get |= v == Some(b"GET");
                }
                b":status" => w.status = w.status.or(v),
                b":authority" => w.authority = w.authority.or(v),
                b"content-type" => w.content_type = w.content_type.or(v),
                b"user-agent" => w.user_agent = w.user_agent.or(v),
                b"grpc-encoding" => w.encoding = w.encoding.or(v),
                b"grpc-timeout" => w.timeout = w.timeout.or(v),
                b"grpc-status" => w.grpc_status = w.grpc_status.or(v),
                b"grpc-message" => w.grpc_message = w.grpc_message.or(v),
                b"traceparent" => w.traceparent = w.traceparent.or(v),
                b"tracestate" => w.tracestate = w.tracestate.or(v),
                b"grpc-trace-bin" => w.grpc_trace_bin = w.grpc_trace_bin.or(v),
                b"grpc-status-details-bin" => w.status_details = w.status_details.or(v),
                b"connect-protocol-version" => w.connect_version = true,
                b"connect-timeout-ms" => w.connect_timeout = w.connect_timeout.or(v),
                b"content-encoding" => w.content_encoding = w.content_encoding.or(v),
                b"connect-content-encoding" => w.connect_encoding = w.connect_encoding.or(v),
                b"grpc-accept-encoding" => w.accept_encoding = w.accept_encoding.or(v),
                b"grpc-previous-rpc-attempts" => {
                    w.previous_attempts = w.previous_attempts.or(v);
                }
                b"te" => w.te_trailers |= v == Some(b"trailers"),
                _ => {}
            }
        }
        w
    }
}

/// What a request is, by its `content-type` (gRPC's PROTOCOL-HTTP2.md: `application/grpc`,
/// optionally `+proto`, `+json`, ... and parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// gRPC, or a request whose content-type could not be read (a joined connection's
    /// header table entry from before the capture: most traffic is gRPC).
    Grpc,
    /// gRPC-Web (`application/grpc-web`, `+proto`, ...), as a proxy or browser sends it.
    GrpcWeb,
    /// gRPC-Web's text mode (`application/grpc-web-text`): the same frames, base64-encoded.
    GrpcWebText,
    /// The Connect protocol: streaming (`application/connect+...`), or unary
    /// (`application/proto`, `application/json`) with `connect-protocol-version`.
    Connect,
    /// Any other HTTP/2 request (REST, a web page).
    Other,
}

impl RequestKind {
    /// The kind of a request whose `content-type` is `ct` (`None`: unread or absent).
    #[inline]
    pub(crate) fn of(ct: Option<&[u8]>, connect_version: bool) -> RequestKind {
        let Some(ct) = ct else {
            return RequestKind::Grpc;
        };
        // gRPC's own content-types first, without splitting (nearly every request).
        if ct.len() >= 16
            && ct[..16].eq_ignore_ascii_case(b"application/grpc")
            && matches!(ct.get(16), None | Some(b'+' | b';'))
        {
            return RequestKind::Grpc;
        }
        RequestKind::of_type(ct, connect_version)
    }

    /// The kind of a request as its headers show it: a GET is a Connect unary call when its
    /// query says `connect=v1` (the message is in the query), else no RPC.
    pub(crate) fn of_request(w: &Wanted<'_>) -> RequestKind {
        if w.get {
            let query = match w.path {
                Some(Text::Bytes(p)) => p.splitn(2, |&b| b == b'?').nth(1),
                _ => None,
            };
            let connect =
                query.is_some_and(|q| q.split(|&b| b == b'&').any(|kv| kv == b"connect=v1"));
            return if connect {
                RequestKind::Connect
            } else {
                RequestKind::Other
            };
        }
        RequestKind::of(w.content_type, w.connect_version)
    }

    fn of_type(ct: &[u8], connect_version: bool) -> RequestKind {
        if ct.is_empty() {
            return RequestKind::Grpc;
        };
        let essence = ct.split(|&b| b == b';').next().unwrap_or(ct).trim_ascii();
        let is = |p: &[u8]| {
            essence.len() >= p.len()
                && essence[..p.len()].eq_ignore_ascii_case(p)
                && essence.get(p.len()).is_none_or(|&b| b == b'+')
        };
        if is(b"application/grpc") {
            RequestKind::Grpc
        } else if is(b"application/grpc-web") {
            RequestKind::GrpcWeb
        } else if is(b"application/grpc-web-text") {
            RequestKind::GrpcWebText
        } else if is(b"application/connect")
            || (connect_version && (is(b"application/proto") || is(b"application/json")))
        {
            RequestKind::Connect
        } else {
            RequestKind::Other
        }
    }

    /// Whether `ct` is a Connect streaming content-type (`application/connect+...`): its
    /// messages have envelopes; a unary Connect body has none.
    pub(crate) fn is_connect_stream(ct: &[u8]) -> bool {
        const P: &[u8] = b"application/connect";
        ct.len() >= P.len() && ct[..P.len()].eq_ignore_ascii_case(P)
    }

    /// Name in summaries and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Grpc => "grpc",
            RequestKind::GrpcWeb => "grpc-web",
            RequestKind::GrpcWebText => "grpc-web-text",
            RequestKind::Connect => "connect",
            RequestKind::Other => "other",
        }
    }
}

/// Strings that repeat on every call of a connection (method, authority, user agent, ...),
/// shared instead of allocated per call. Bounded: a peer sending ever-new paths gets fresh
/// strings once the table is full.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    entries: Vec<(Box<[u8]>, Arc<str>)>,
}

impl Interner {
    const MAX: usize = 256;

    pub(crate) fn get(&mut self, b: &[u8]) -> Arc<str> {
        if let Some((_, s)) = self.entries.iter().find(|(k, _)| **k == *b) {
            return s.clone();
        }
        let s: Arc<str> = Arc::from(String::from_utf8_lossy(b));
        if self.entries.len() < Self::MAX {
            self.entries.push((b.into(), s.clone()));
        }
        s
    }
}

/// The trace id of a W3C trace context `traceparent` value ("00-<32 hex>-<16 hex>-<2 hex>"),
/// if it is well formed and not all zeros.
pub(crate) fn trace_id(v: &[u8]) -> Option<Arc<str>> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split('-');
    let (version, id) = (parts.next()?, parts.next()?);
    let valid = version.len() == 2
        && id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0');
    valid.then(|| Arc::from(id))
}

/// The caller's span of a W3C `traceparent` value: version `00` (or a later one, read as
/// `00`), a non-zero trace id and span id.
pub(crate) fn trace_parent(v: &[u8]) -> Option<TraceParent> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let mut parts = s.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let mut t = TraceParent {
        trace_id: [0; 16],
        span_id: [0; 8],
        flags: u8::from_str_radix(flags.get(..2)?, 16).ok()?,
        state: None,
    };
    hex(trace, &mut t.trace_id)?;
    hex(span, &mut t.span_id)?;
    t.valid().then_some(t)
}

/// The caller's span of a `grpc-trace-bin` value (OpenCensus binary format, base64 as every
/// `-bin` header on the wire): version 0, field 0 the trace id, 1 the span id, 2 the options.
pub(crate) fn grpc_trace_bin(v: &[u8]) -> Option<TraceParent> {
    let mut b64 = Base64::default();
    let mut raw = Vec::with_capacity(40);
    b64.decode(v, &mut raw);
    let b = raw.as_slice();
    let mut t = TraceParent {
        trace_id: [0; 16],
        span_id: [0; 8],
        flags: 0,
        state: None,
    };
    if b.first() != Some(&0) {
        return None;
    }
    let mut at = 1;
    while at < b.len() {
        match b[at] {
            0 => t.trace_id.copy_from_slice(b.get(at + 1..at + 17)?),
            1 => t.span_id.copy_from_slice(b.get(at + 1..at + 9)?),
            2 => t.flags = *b.get(at + 1)?,
            _ => break,
        }
        at += match b[at] {
            0 => 17,
            1 => 9,
            _ => 2,
        };
    }
    t.valid().then_some(t)
}

fn hex(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    for (o, i) in out.iter_mut().zip((0..s.len()).step_by(2)) {
        *o = u8::from_str_radix(&s[i..i + 2], 16).ok()?;
    }
    Some(())
}

/// The span a call's request names as its caller (W3C trace context or `grpc-trace-bin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
    /// `tracestate`, when sent (at most 512 bytes, as W3C allows).
    pub state: Option<Box<str>>,
}

impl TraceParent {
    fn valid(&self) -> bool {
        self.trace_id.iter().any(|&b| b != 0) && self.span_id.iter().any(|&b| b != 0)
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    #[test]
    fn traceparent_and_grpc_trace_bin_name_the_caller() {
        let t = trace_parent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("valid");
        assert_eq!(t.trace_id[0], 0x0a);
        assert_eq!(t.span_id[7], 0x31);
        assert_eq!(t.flags, 1);
        assert!(trace_parent(b"00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none());
        assert!(trace_parent(b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_none());
        assert!(trace_parent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331").is_none());
        // grpc-trace-bin: 0, [0, trace id], [1, span id], [2, options], base64.
        let mut raw = vec![0u8, 0];
        raw.extend_from_slice(&t.trace_id);
        raw.push(1);
        raw.extend_from_slice(&t.span_id);
        raw.extend_from_slice(&[2, 1]);
        let b64 = crate::metadata::base64(&raw);
        let g = grpc_trace_bin(b64.as_bytes()).expect("valid");
        assert_eq!(g, t);
    }
}

#[cfg(test)]
mod kind_tests {
    use super::RequestKind as K;

    #[test]
    fn content_types_tell_grpc_from_the_rest() {
        let of = |ct: &str, v| K::of(Some(ct.as_bytes()), v);
        assert_eq!(of("application/grpc", false), K::Grpc);
        assert_eq!(of("application/grpc+proto", false), K::Grpc);
        assert_eq!(of("Application/GRPC; charset=utf-8", false), K::Grpc);
        assert_eq!(of("application/grpc-web+proto", false), K::GrpcWeb);
        assert_eq!(of("application/grpc-web-text", false), K::GrpcWebText);
        assert_eq!(of("application/grpc-web-text+proto", false), K::GrpcWebText);
        assert_eq!(of("application/grpcx", false), K::Other);
        assert_eq!(of("application/connect+proto", false), K::Connect);
        assert_eq!(of("application/proto", true), K::Connect);
        assert_eq!(of("application/json", true), K::Connect);
        assert_eq!(of("application/json", false), K::Other);
        assert_eq!(K::of(None, false), K::Grpc);
    }
}

/// Base64 (RFC 4648, standard alphabet) decoded as it arrives, as gRPC-Web's text mode sends
/// it: the body may be several base64 strings one after another, each padded, so a quad with
/// padding ends one and the next quad starts afresh; whitespace is skipped, other bytes end
/// decoding (`bad`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Base64 {
    quad: [u8; 4],
    have: u8,
    pub(crate) bad: bool,
}

impl Base64 {
    /// Appends the bytes `input` decodes to into `out`.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            if self.bad {
                return;
            }
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                b'=' => 64,
                b' ' | b'\t' | b'\r' | b'\n' => continue,
                _ => {
                    self.bad = true;
                    return;
                }
            };
            self.quad[usize::from(self.have)] = v;
            self.have += 1;
            if self.have == 4 {
                self.have = 0;
                let q = self.quad;
                if q[0] == 64 || q[1] == 64 {
                    self.bad = true;
                    return;
                }
                out.push((q[0] << 2) | (q[1] >> 4));
                if q[2] != 64 {
                    out.push((q[1] << 4) | (q[2] >> 2));
                    if q[3] != 64 {
                        out.push((q[2] << 6) | q[3]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod base64_tests {
    use super::Base64;

    #[test]
    fn padded_strings_back_to_back_and_split_anywhere() {
        // "AAAAAAJo" is a 5-byte gRPC-Web prefix and "hi"; "gAAAAA0=" a trailer frame head.
        let text = b"AAAAAAJoaQ==gAAAAA8=";
        let want = [0u8, 0, 0, 0, 2, b'h', b'i', 0x80, 0, 0, 0, 0x0f];
        for cut in 0..text.len() {
            let mut b = Base64::default();
            let mut out = Vec::new();
            b.decode(&text[..cut], &mut out);
            b.decode(&text[cut..], &mut out);
            assert_eq!(out, want, "cut at {cut}");
        }
        let mut b = Base64::default();
        let mut out = Vec::new();
        b.decode(b"AA\x00A", &mut out);
        assert!(b.bad);
    }
}

#[cfg(test)]
mod wanted_tests {
    use super::Wanted;
    use crate::hpack::HeaderList;

    /// Every field the calls read is found, among others.
    #[test]
    fn every_wanted_field_is_read() {
        let names: [&[u8]; 21] = [
            b":path",
            b":method",
            b":status",
            b":authority",
            b"content-type",
            b"user-agent",
            b"grpc-encoding",
            b"grpc-timeout",
            b"grpc-status",
            b"grpc-message",
            b"traceparent",
            b"tracestate",
            b"grpc-trace-bin",
            b"grpc-status-details-bin",
            b"connect-protocol-version",
            b"connect-timeout-ms",
            b"content-encoding",
            b"connect-content-encoding",
            b"grpc-accept-encoding",
            b"grpc-previous-rpc-attempts",
            b"te",
        ];
        let mut list = HeaderList::default();
        list.push(b"x-other-header", b"x");
        for n in names {
            let v: &[u8] = match n {
                b":method" => b"GET",
                b"te" => b"trailers",
                _ => n,
            };
            list.push(n, v);
        }
        let w = Wanted::of(&list);
        let got = [
            w.path.and_then(|p| p.bytes()) == Some(b":path".as_slice()),
            w.get,
            w.status == Some(b":status".as_slice()),
            w.authority == Some(b":authority".as_slice()),
            w.content_type == Some(b"content-type".as_slice()),
            w.user_agent == Some(b"user-agent".as_slice()),
            w.encoding == Some(b"grpc-encoding".as_slice()),
            w.timeout == Some(b"grpc-timeout".as_slice()),
            w.grpc_status == Some(b"grpc-status".as_slice()),
            w.grpc_message == Some(b"grpc-message".as_slice()),
            w.traceparent == Some(b"traceparent".as_slice()),
            w.tracestate == Some(b"tracestate".as_slice()),
            w.grpc_trace_bin == Some(b"grpc-trace-bin".as_slice()),
            w.status_details == Some(b"grpc-status-details-bin".as_slice()),
            w.connect_version,
            w.connect_timeout == Some(b"connect-timeout-ms".as_slice()),
            w.content_encoding == Some(b"content-encoding".as_slice()),
            w.connect_encoding == Some(b"connect-content-encoding".as_slice()),
            w.accept_encoding == Some(b"grpc-accept-encoding".as_slice()),
            w.previous_attempts == Some(b"grpc-previous-rpc-attempts".as_slice()),
            w.te_trailers,
        ];
        for (n, ok) in names.iter().zip(got) {
            assert!(ok, "{} not read", String::from_utf8_lossy(n));
        }
    }
}

//! One finished call as a JSON Lines record (`replay --calls`). Field meanings are documented
//! in docs/calls.md and never change silently.

use std::io::Write;

use decoder::output::Output;
use decoder::{CallRecord, ConnId, Sink};
use serde::Serialize;

/// Who reset a stream, and with which HTTP/2 error code.
#[derive(Debug, Serialize)]
pub(crate) struct ResetJson {
    by: &'static str,
    code: u32,
    code_name: &'static str,
}

/// The JSON form of a [`CallRecord`].
#[derive(Debug, Serialize)]
pub(crate) struct CallJson<'a> {
    method: Option<&'a str>,
    service: Option<&'a str>,
    rpc: Option<&'a str>,
    method_confidence: &'static str,
    /// When the `:path` was a header table entry from before the capture: the call's group on
    /// its connection (calls of one group have one method).
    method_group: Option<u32>,
    call_type: &'static str,
    /// `grpc`, `grpc-web` or `connect`.
    protocol: &'static str,
    /// HTTP version: `2` or `1.1`.
    http: &'static str,
    /// The TLS the call travelled in (decrypted with a key log).
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsJson<'a>>,
    client: std::net::SocketAddr,
    server: std::net::SocketAddr,
    conn: ConnId,
    stream_id: u32,
    start: Option<f64>,
    end: Option<f64>,
    duration_s: Option<f64>,
    time_to_first_response_s: Option<f64>,
    grpc_status: Option<u32>,
    status: Option<&'static str>,
    status_source: &'static str,
    status_confidence: &'static str,
    /// Whether the call failed; `null` when its status is not known (true with `status` null:
    /// an error whose code could not be known).
    error: Option<bool>,
    grpc_message: Option<&'a str>,
    http_status: Option<u16>,
    timeout_s: Option<f64>,
    req_msgs: u64,
    resp_msgs: u64,
    req_bytes: u64,
    resp_bytes: u64,
    req_compressed_msgs: u64,
    resp_compressed_msgs: u64,
    encoding: Option<&'a str>,
    resp_encoding: Option<&'a str>,
    authority: Option<&'a str>,
    user_agent: Option<&'a str>,
    reset: Option<ResetJson>,
    lost_bytes: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<MetadataJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    responses: Option<Vec<serde_json::Value>>,
    /// Messages past the `--bodies-max-bytes` budget of each direction, not in the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    requests_dropped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    responses_dropped: Option<u64>,
    /// `grpc-status-details-bin` as google.rpc.Status JSON, details resolved (`--bodies`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_details: Option<serde_json::Value>,
}

/// How `--bodies` decodes messages.
#[derive(Debug, Clone)]
pub(crate) struct Bodies {
    /// The schemas (the user's, and what server reflection in the capture taught).
    pub(crate) store: std::sync::Arc<decoder::reflection::SchemaStore>,
    /// Largest decompressed message.
    pub(crate) cap: usize,
}

impl CallJson<'_> {
    /// Adds the call's messages, decoded; returns how many could not be read.
    pub(crate) fn decode_bodies(&mut self, c: &CallRecord, b: &Bodies) -> usize {
        use decoder::payload::message_json;
        let current = b.store.current();
        let schemas = current.as_deref();
        let info = c.method.as_deref().and_then(|m| schemas?.method(m));
        let req_type = info.map(|i| i.input.as_str());
        let resp_type = info.map(|i| i.output.as_str());
        // One output budget for the whole call (docs/calls.md).
        let mut budget = decoder::payload::OutputBudget::CALLS;
        // Connect's JSON codec: the messages are JSON text.
        let json = c
            .content_type
            .as_deref()
            .is_some_and(decoder::payload::is_json_codec);
        let mut half = |h: &decoder::Half, ty| -> Vec<serde_json::Value> {
            h.bodies
                .iter()
                .map(|m| {
                    if json {
                        decoder::payload::json_codec_message(
                            m,
                            h.encoding.as_deref(),
                            b.cap,
                            &mut budget,
                        )
                    } else {
                        message_json(m, h.encoding.as_deref(), ty, schemas, b.cap, &mut budget)
                    }
                })
                .collect()
        };
        self.requests = Some(half(&c.req, req_type));
        self.responses = Some(half(&c.resp, resp_type));
        self.requests_dropped = Some(c.req.bodies_dropped);
        self.responses_dropped = Some(c.resp.bodies_dropped);
        if let (Some(details), Some(s)) = (&c.status_details, schemas) {
            self.status_details = Some(decoder::payload::status_details_json(details, s));
        }
        let bad =
            |v: &Vec<serde_json::Value>| v.iter().filter(|m| m.get("error").is_some()).count();
        self.requests.as_ref().map_or(0, bad) + self.responses.as_ref().map_or(0, bad)
    }
}

/// Metadata blocks as `[name, value]` pairs in wire order (names may repeat).
#[derive(Debug, Serialize)]
pub(crate) struct MetadataJson {
    request: Vec<(String, String)>,
    response: Vec<(String, String)>,
    trailers: Vec<(String, String)>,
    /// Fields left out past the per-block bound.
    dropped: usize,
}

/// A call's TLS: version and server name.
#[derive(Debug, Serialize)]
struct TlsJson<'a> {
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
}

fn secs(t: decoder::Nanos) -> f64 {
    t.as_secs_f64()
}

impl<'a> From<&'a CallRecord> for CallJson<'a> {
    fn from(c: &'a CallRecord) -> Self {
        CallJson::from_record(c, true)
    }
}

impl<'a> CallJson<'a> {
    /// The record's JSON form; `metadata`: with its metadata (a copy), else without.
    fn from_record(c: &'a CallRecord, metadata: bool) -> Self {
        let split = c.method.as_deref().and_then(decoder::grpc::split_path);
        CallJson {
            method: c.method.as_deref(),
            service: split.map(|s| s.0),
            rpc: split.map(|s| s.1),
            method_confidence: c.method_confidence.name(),
            method_group: c.method_group,
            call_type: c.call_type.name(),
            protocol: c.protocol.name(),
            http: if c.http1 { "1.1" } else { "2" },
            tls: c.tls.as_deref().map(|t| TlsJson {
                version: decoder::tls::session::TlsInfo::version_name(t.version),
                sni: t.sni.as_deref(),
            }),
            client: c.client,
            server: c.server,
            conn: c.conn,
            stream_id: c.stream_id,
            start: c.start.map(secs),
            end: c.end.map(secs),
            duration_s: c.duration().map(|d| d.as_secs_f64()),
            time_to_first_response_s: match (c.start, c.first_response) {
                (Some(s), Some(f)) => Some(f.0.saturating_sub(s.0) as f64 / 1e9),
                _ => None,
            },
            grpc_status: c.grpc_status,
            status: c.status.map(|s| s.name()),
            status_source: c.status_source.name(),
            status_confidence: c.status_confidence.name(),
            error: c.is_error(),
            grpc_message: c.grpc_message.as_deref(),
            http_status: c.http_status,
            timeout_s: c.timeout.map(|t| t.as_secs_f64()),
            req_msgs: c.req.msgs,
            resp_msgs: c.resp.msgs,
            req_bytes: c.req.bytes,
            resp_bytes: c.resp.bytes,
            req_compressed_msgs: c.req.compressed,
            resp_compressed_msgs: c.resp.compressed,
            encoding: c.req.encoding.as_deref(),
            resp_encoding: c.resp.encoding.as_deref(),
            authority: c.authority.as_deref(),
            user_agent: c.user_agent.as_deref(),
            reset: c.reset.map(|r| ResetJson {
                by: r.by.name(),
                code: r.code,
                code_name: decoder::h2::frame::ErrorCode(r.code).name(),
            }),
            lost_bytes: c.lost_bytes,
            metadata: c
                .metadata
                .as_ref()
                .filter(|_| metadata)
                .map(|m| MetadataJson {
                    request: m.request.fields.clone(),
                    response: m.response.fields.clone(),
                    trailers: m.trailers.fields.clone(),
                    dropped: m.request.dropped + m.response.dropped + m.trailers.dropped,
                }),
            requests: None,
            responses: None,
            requests_dropped: None,
            responses_dropped: None,
            status_details: None,
        }
    }
}

/// The `--calls` output: one JSON line per finished call.
pub(crate) struct JsonLines {
    w: Box<dyn Write>,
    /// How each line is made.
    pub(crate) lines: LineConfig,
    /// Messages `--bodies` could not read.
    pub(crate) payload_errors: u64,
    /// The first write error; nothing is written after it.
    error: Option<std::io::Error>,
    /// The line of the next call, made already (by a decoding thread): the call it is for,
    /// the line, and its messages that could not be read.
    prepared: Option<((ConnId, u32), String, u64)>,
    /// The line being written (kept: no allocation per line).
    buf: Vec<u8>,
}

/// How a call's JSON line is made.
#[derive(Debug, Clone)]
pub(crate) struct LineConfig {
    /// Records carry metadata (`--metadata`; the UI keeps it for itself otherwise).
    pub(crate) metadata: bool,
    /// Decode message bodies into the records (`--bodies`).
    pub(crate) bodies: Option<Bodies>,
}

/// Writes JSON into a buffer by hand: the keys as they are (they need no escaping), integers
/// by `itoa`, strings copied when they need no escaping; floats, strings that do and the nested
/// values through serde_json, so every value is written as serde_json writes it (the
/// `Serialize` derive of [`CallJson`] is the reference, and a test holds the two equal).
struct Out<'a>(&'a mut Vec<u8>);

/// A key after the first: `,"name":`.
macro_rules! key {
    ($k:literal) => {
        concat!(",\"", $k, "\":")
    };
}

impl Out<'_> {
    /// Bytes as they are: a key with its quotes, colon and the comma before it ([`key!`]).
    #[inline]
    fn key(&mut self, k: &'static str) {
        self.0.extend_from_slice(k.as_bytes());
    }

    #[inline]
    fn str(&mut self, s: &str) -> serde_json::Result<()> {
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.0.push(b'"');
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(b'"');
            Ok(())
        } else {
            serde_json::to_writer(&mut *self.0, s)
        }
    }

    #[inline]
    fn opt_str(&mut self, s: Option<&str>) -> serde_json::Result<()> {
        match s {
            Some(s) => self.str(s),
            None => {
                self.null();
                Ok(())
            }
        }
    }

    #[inline]
    fn int(&mut self, n: impl itoa::Integer) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    #[inline]
    fn opt_int(&mut self, n: Option<impl itoa::Integer>) {
        match n {
            Some(n) => self.int(n),
            None => self.null(),
        }
    }

    fn opt_float(&mut self, f: Option<f64>) -> serde_json::Result<()> {
        match f {
            Some(f) => serde_json::to_writer(&mut *self.0, &f),
            None => {
                self.null();
                Ok(())
            }
        }
    }

    #[inline]
    fn bool(&mut self, b: bool) {
        self.0.extend_from_slice(if b { b"true" } else { b"false" });
    }

    #[inline]
    fn null(&mut self) {
        self.0.extend_from_slice(b"null");
    }

    fn value<T: Serialize>(&mut self, v: &T) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *self.0, v)
    }

    /// An address as its `Display` writes it, IPv4 without the formatting machinery.
    fn addr(&mut self, a: std::net::SocketAddr) {
        match a {
            std::net::SocketAddr::V4(v4) => {
                self.0.push(b'"');
                for (i, o) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        self.0.push(b'.');
                    }
                    self.int(o);
                }
                self.0.push(b':');
                self.int(v4.port());
                self.0.push(b'"');
            }
            // IPv6 text has no character JSON escapes.
            v6 => {
                let _ = write!(self.0, "\"{v6}\"");
            }
        }
    }
}

impl CallJson<'_> {
    /// The record as one JSON object into `buf`: what `serde_json::to_writer` writes of it,
    /// faster (a call's line is written for every call of a busy capture).
    fn write(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut o = Out(buf);
        o.key("{\"method\":");
        o.opt_str(self.method)?;
        o.key(key!("service"));
        o.opt_str(self.service)?;
        o.key(key!("rpc"));
        o.opt_str(self.rpc)?;
        o.key(key!("method_confidence"));
        o.str(self.method_confidence)?;
        o.key(key!("method_group"));
        o.opt_int(self.method_group);
        o.key(key!("call_type"));
        o.str(self.call_type)?;
        o.key(key!("protocol"));
        o.str(self.protocol)?;
        o.key(key!("http"));
        o.str(self.http)?;
        if let Some(t) = &self.tls {
            o.key(key!("tls"));
            o.value(t)?;
        }
        o.key(key!("client"));
        o.addr(self.client);
        o.key(key!("server"));
        o.addr(self.server);
        o.key(key!("conn"));
        o.int(self.conn.get());
        o.key(key!("stream_id"));
        o.int(self.stream_id);
        o.key(key!("start"));
        o.opt_float(self.start)?;
        o.key(key!("end"));
        o.opt_float(self.end)?;
        o.key(key!("duration_s"));
        o.opt_float(self.duration_s)?;
        o.key(key!("time_to_first_response_s"));
        o.opt_float(self.time_to_first_response_s)?;
        o.key(key!("grpc_status"));
        o.opt_int(self.grpc_status);
        o.key(key!("status"));
        o.opt_str(self.status)?;
        o.key(key!("status_source"));
        o.str(self.status_source)?;
        o.key(key!("status_confidence"));
        o.str(self.status_confidence)?;
        o.key(key!("error"));
        match self.error {
            Some(e) => o.bool(e),
            None => o.null(),
        }
        o.key(key!("grpc_message"));
        o.opt_str(self.grpc_message)?;
        o.key(key!("http_status"));
        o.opt_int(self.http_status);
        o.key(key!("timeout_s"));
        o.opt_float(self.timeout_s)?;
        for (k, n) in [
            (key!("req_msgs"), self.req_msgs),
            (key!("resp_msgs"), self.resp_msgs),
            (key!("req_bytes"), self.req_bytes),
            (key!("resp_bytes"), self.resp_bytes),
            (key!("req_compressed_msgs"), self.req_compressed_msgs),
            (key!("resp_compressed_msgs"), self.resp_compressed_msgs),
        ] {
            o.key(k);
            o.int(n);
        }
        o.key(key!("encoding"));
        o.opt_str(self.encoding)?;
        o.key(key!("resp_encoding"));
        o.opt_str(self.resp_encoding)?;
        o.key(key!("authority"));
        o.opt_str(self.authority)?;
        o.key(key!("user_agent"));
        o.opt_str(self.user_agent)?;
        o.key(key!("reset"));
        match &self.reset {
            Some(r) => o.value(r)?,
            None => o.null(),
        }
        o.key(key!("lost_bytes"));
        o.bool(self.lost_bytes);
        if let Some(m) = &self.metadata {
            o.key(key!("metadata"));
            o.value(m)?;
        }
        if let Some(r) = &self.requests {
            o.key(key!("requests"));
            o.value(r)?;
        }
        if let Some(r) = &self.responses {
            o.key(key!("responses"));
            o.value(r)?;
        }
        if let Some(n) = self.requests_dropped {
            o.key(key!("requests_dropped"));
            o.int(n);
        }
        if let Some(n) = self.responses_dropped {
            o.key(key!("responses_dropped"));
            o.int(n);
        }
        if let Some(d) = &self.status_details {
            o.key(key!("status_details"));
            o.value(d)?;
        }
        o.0.push(b'}');
        Ok(())
    }
}

impl LineConfig {
    /// `call`'s line (without its newline), and how many of its messages could not be read.
    pub(crate) fn line(&self, call: &CallRecord) -> (serde_json::Result<String>, u64) {
        let mut buf = Vec::with_capacity(1024);
        let (done, errors) = self.write_line(call, &mut buf);
        let line = done.and_then(|()| {
            String::from_utf8(buf).map_err(<serde_json::Error as serde::ser::Error>::custom)
        });
        (line, errors)
    }

    /// Writes `call`'s line (without its newline) at the end of `buf`; how many of its
    /// messages could not be read.
    pub(crate) fn write_line(
        &self,
        call: &CallRecord,
        buf: &mut Vec<u8>,
    ) -> (serde_json::Result<()>, u64) {
        let mut json = CallJson::from_record(call, self.metadata);
        let errors = match &self.bodies {
            Some(b) => json.decode_bodies(call, b) as u64,
            None => 0,
        };
        (json.write(buf), errors)
    }
}

impl JsonLines {
    pub(crate) fn new(w: Box<dyn Write>, metadata: bool, bodies: Option<Bodies>) -> JsonLines {
        JsonLines {
            w,
            lines: LineConfig { metadata, bodies },
            payload_errors: 0,
            error: None,
            prepared: None,
            buf: Vec::new(),
        }
    }

    /// The line of the call (`conn`, `stream`) that ends next, made elsewhere.
    pub(crate) fn prepare(&mut self, call: (ConnId, u32), line: String, errors: u64) {
        self.prepared = Some((call, line, errors));
    }
}

impl Sink for JsonLines {
    fn call_ended(&mut self, call: &CallRecord) {
        let prepared = self
            .prepared
            .take()
            .filter(|(k, _, _)| *k == (call.conn, call.stream_id));
        if self.error.is_some() {
            return;
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let (done, errors) = match prepared {
            Some((_, line, errors)) => {
                buf.extend_from_slice(line.as_bytes());
                (Ok(()), errors)
            }
            None => self.lines.write_line(call, &mut buf),
        };
        self.payload_errors += errors;
        buf.push(b'\n');
        let done = done
            .map_err(std::io::Error::other)
            .and_then(|()| self.w.write_all(&buf));
        if let Err(e) = done {
            self.error = Some(e);
        }
        self.buf = buf;
    }
}

impl Output for JsonLines {
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.w.flush()
    }
}

/// `--messages`: one JSON line per message as it is seen.
pub(crate) struct MessageLines {
    w: Box<dyn Write>,
    bodies: Bodies,
    /// Messages that could not be read.
    pub(crate) payload_errors: u64,
    /// The first write error; nothing is written after it.
    error: Option<std::io::Error>,
}

impl MessageLines {
    pub(crate) fn new(w: Box<dyn Write>, bodies: Bodies) -> MessageLines {
        MessageLines {
            w,
            bodies,
            payload_errors: 0,
            error: None,
        }
    }
}

/// One `--messages` line (docs/calls.md).
#[derive(Serialize)]
struct MessageJson<'a> {
    conn: ConnId,
    stream_id: u32,
    /// The method as known when the message was seen (a call joined mid-way may be named
    /// only at its end: its record in `--calls` has the final name).
    method: Option<&'a str>,
    method_confidence: &'static str,
    client: String,
    server: String,
    direction: &'static str,
    /// Its number among the messages of its direction seen (from 0).
    index: u64,
    time: f64,
    compressed: bool,
    /// Length the prefix announced.
    bytes: u32,
    /// Only the first `bytes_kept` were kept (the per-message bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_kept: Option<usize>,
    message: serde_json::Value,
}

impl Sink for MessageLines {
    fn call_ended(&mut self, _call: &CallRecord) {}

    fn message_body(
        &mut self,
        call: &CallRecord,
        from: decoder::Side,
        index: u64,
        body: &decoder::grpc::msg::Body,
    ) {
        if self.error.is_some() {
            return;
        }
        let current = self.bodies.store.current();
        let schemas = current.as_deref();
        let info = call.method.as_deref().and_then(|m| schemas?.method(m));
        let (half, ty, direction) = match from {
            decoder::Side::Client => (&call.req, info.map(|i| i.input.as_str()), "request"),
            decoder::Side::Server => (&call.resp, info.map(|i| i.output.as_str()), "response"),
        };
        let mut budget = decoder::payload::OutputBudget::CALLS;
        let json = call
            .content_type
            .as_deref()
            .is_some_and(decoder::payload::is_json_codec);
        let message = if json {
            decoder::payload::json_codec_message(
                body,
                half.encoding.as_deref(),
                self.bodies.cap,
                &mut budget,
            )
        } else {
            decoder::payload::message_json(
                body,
                half.encoding.as_deref(),
                ty,
                schemas,
                self.bodies.cap,
                &mut budget,
            )
        };
        if message.get("error").is_some() {
            self.payload_errors += 1;
        }
        let json = MessageJson {
            conn: call.conn,
            stream_id: call.stream_id,
            method: call.method.as_deref(),
            method_confidence: call.method_confidence.name(),
            client: call.client.to_string(),
            server: call.server.to_string(),
            direction,
            index,
            time: secs(body.ts),
            compressed: body.compressed,
            bytes: body.len,
            bytes_kept: body.cut().then_some(body.data.len()),
            message,
        };
        let line = serde_json::to_string(&json).map_err(std::io::Error::other);
        if let Err(e) = line.and_then(|l| writeln!(self.w, "{l}")) {
            self.error = Some(e);
        }
    }
}

impl Output for MessageLines {
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decoder::Nanos;

    /// The hand-written line is what serde_json writes of the derive, byte for byte, for
    /// strings that need escaping and those that do not, both address families, every
    /// optional part present and absent.
    #[test]
    fn the_written_line_is_what_serde_writes() {
        let v4 = "10.1.2.3:50051".parse().expect("addr");
        let v6 = "[fe80::1%3]:443".parse().expect("addr");
        let mut plain = CallRecord::new(ConnId::new(0, 7), 1, v4, v4, None);
        plain.method = Some("/a.B/C".into());
        let mut odd = CallRecord::new(ConnId::PLACEHOLDER, u32::MAX, v6, v4, Some(Nanos(1)));
        odd.method = Some("/p\"k\\g.S/M\u{1}é\u{7f}".into());
        odd.grpc_message = Some("line\nbreak\ttab \u{2028} ok".into());
        odd.authority = Some("host:1".into());
        odd.user_agent = Some("grpc-go/1.0 \"x\"".into());
        odd.end = Some(Nanos(1_234_567_891));
        odd.first_response = Some(Nanos(1_000_000_007));
        odd.timeout = Some(std::time::Duration::from_nanos(999_999_999));
        odd.grpc_status = Some(14);
        odd.status = Some(decoder::grpc::Code::UNAVAILABLE);
        odd.http_status = Some(503);
        odd.req.msgs = 3;
        odd.resp.bytes = u64::MAX;
        odd.req.encoding = Some("gzip".into());
        odd.reset = Some(decoder::calls::record::Reset {
            by: decoder::Side::Client,
            code: 8,
        });
        odd.tls = Some(std::sync::Arc::new(decoder::calls::record::TlsTag {
            version: 0x0304,
            sni: Some("a\"b".into()),
        }));
        odd.lost_bytes = true;
        odd.method_group = Some(2);
        for c in [&plain, &odd] {
            for extra in [false, true] {
                let mut json = CallJson::from(c);
                if extra {
                    json.requests = Some(vec![serde_json::json!({"a": [1, "\u{0}"]})]);
                    json.responses = Some(Vec::new());
                    json.requests_dropped = Some(2);
                    json.responses_dropped = Some(0);
                    json.status_details = Some(serde_json::json!({"code": 14}));
                }
                let mut buf = Vec::new();
                json.write(&mut buf).expect("written");
                let want = serde_json::to_string(&json).expect("serialized");
                assert_eq!(String::from_utf8(buf).expect("utf-8"), want);
            }
        }
    }
}

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
    client: String,
    server: String,
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
            client: c.client.to_string(),
            server: c.server.to_string(),
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
            metadata: c.metadata.as_ref().map(|m| MetadataJson {
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
}

/// How a call's JSON line is made.
#[derive(Debug, Clone)]
pub(crate) struct LineConfig {
    /// Records carry metadata (`--metadata`; the UI keeps it for itself otherwise).
    pub(crate) metadata: bool,
    /// Decode message bodies into the records (`--bodies`).
    pub(crate) bodies: Option<Bodies>,
}

impl LineConfig {
    /// `call`'s line (without its newline), and how many of its messages could not be read.
    pub(crate) fn line(&self, call: &CallRecord) -> (serde_json::Result<String>, u64) {
        let mut json = CallJson::from(call);
        if !self.metadata {
            json.metadata = None;
        }
        let errors = match &self.bodies {
            Some(b) => json.decode_bodies(call, b) as u64,
            None => 0,
        };
        (serde_json::to_string(&json), errors)
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
        let (line, errors) = match prepared {
            Some((_, line, errors)) => (Ok(line), errors),
            None => self.lines.line(call),
        };
        self.payload_errors += errors;
        let line = line.map_err(std::io::Error::other);
        if let Err(e) = line.and_then(|l| writeln!(self.w, "{l}")) {
            self.error = Some(e);
        }
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

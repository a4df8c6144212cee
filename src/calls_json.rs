//! One finished call as a JSON Lines record (`replay --calls`). Field meanings are documented
//! in docs/calls.md and never change silently.

use decoder::{CallRecord, Confidence};
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
    call_type: &'static str,
    client: String,
    server: String,
    conn: u64,
    stream_id: u32,
    start: Option<f64>,
    end: Option<f64>,
    duration_s: Option<f64>,
    time_to_first_response_s: Option<f64>,
    grpc_status: Option<u32>,
    status: Option<&'static str>,
    status_source: &'static str,
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
    /// `grpc-status-details-bin` as google.rpc.Status JSON, details resolved (`--bodies`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_details: Option<serde_json::Value>,
}

/// How `--bodies` decodes messages.
#[derive(Debug, Clone)]
pub(crate) struct Bodies {
    pub(crate) schemas: Option<std::sync::Arc<decoder::schema::Schemas>>,
    /// Largest decompressed message.
    pub(crate) cap: usize,
}

impl CallJson<'_> {
    /// Adds the call's messages, decoded; returns how many could not be read.
    pub(crate) fn decode_bodies(&mut self, c: &CallRecord, b: &Bodies) -> usize {
        use decoder::payload::message_json;
        let schemas = b.schemas.as_deref();
        let info = c
            .method
            .as_deref()
            .and_then(|m| b.schemas.as_ref()?.method(m));
        let req_type = info.map(|i| i.input.as_str());
        let resp_type = info.map(|i| i.output.as_str());
        self.requests = Some(
            c.requests
                .iter()
                .map(|m| message_json(m, c.req_encoding.as_deref(), req_type, schemas, b.cap))
                .collect(),
        );
        self.responses = Some(
            c.responses
                .iter()
                .map(|m| message_json(m, c.resp_encoding.as_deref(), resp_type, schemas, b.cap))
                .collect(),
        );
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

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl<'a> From<&'a CallRecord> for CallJson<'a> {
    fn from(c: &'a CallRecord) -> Self {
        let split = c.method.as_deref().and_then(decoder::grpc::split_path);
        CallJson {
            method: c.method.as_deref(),
            service: split.map(|s| s.0),
            rpc: split.map(|s| s.1),
            method_confidence: match c.method_confidence {
                Confidence::Exact => "exact",
                Confidence::Inferred => "inferred",
                Confidence::Unknown => "unknown",
            },
            call_type: c.call_type.name(),
            client: c.client.to_string(),
            server: c.server.to_string(),
            conn: c.conn,
            stream_id: c.stream_id,
            start: c.start.map(secs),
            end: c.end.map(secs),
            duration_s: c.duration().map(|d| d.as_secs_f64()),
            time_to_first_response_s: match (c.start, c.first_response) {
                (Some(s), Some(f)) => Some(secs(f.saturating_sub(s))),
                _ => None,
            },
            grpc_status: c.grpc_status,
            status: c.status.map(|s| s.name()),
            status_source: c.status_source.name(),
            grpc_message: c.grpc_message.as_deref(),
            http_status: c.http_status,
            timeout_s: c.timeout.map(|t| t.as_secs_f64()),
            req_msgs: c.req_msgs,
            resp_msgs: c.resp_msgs,
            req_bytes: c.req_bytes,
            resp_bytes: c.resp_bytes,
            req_compressed_msgs: c.req_compressed,
            resp_compressed_msgs: c.resp_compressed,
            encoding: c.req_encoding.as_deref(),
            resp_encoding: c.resp_encoding.as_deref(),
            authority: c.authority.as_deref(),
            user_agent: c.user_agent.as_deref(),
            reset: c.reset.map(|r| ResetJson {
                by: crate::pipeline::side_name(r.by),
                code: r.code,
                code_name: decoder::h2::frame::error_code_name(r.code),
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
            status_details: None,
        }
    }
}

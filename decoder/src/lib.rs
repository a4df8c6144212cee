//! HTTP/2, HPACK and gRPC call tracking, sans-IO: ordered byte-stream events in (from the
//! `capture` crate, via the binary), call records out.
//!
//! ```text
//! bytes of a connection direction  -> h2::conn::ConnDecoder (framing, resync after gaps)
//!   header blocks                  -> hpack::Decoder (one per direction, mid-stream tolerant)
//!   DATA payload                   -> length-prefixed message counting per stream
//!   -> CallSink: call_started / call_ended(CallRecord) / conn_event(ping, goaway, anomaly)
//! ```
//!
//! Does not depend on `capture`: the binary translates stream events, so the decoder can be fed
//! from any source and tested with bytes. Time is a parameter (packet timestamps), never read.

pub mod aggregate;
pub mod grpc;
pub mod h2;
pub mod hpack;
pub mod metadata;
pub mod payload;
pub mod schema;

pub use h2::conn::{
    AnomalyKind, CallRecord, CallSink, CallType, Confidence, ConnDecoder, ConnEvent, DecoderLimits,
    Nanos, OpenCall, Reset, Side, StatusSource,
};

//! HTTP/2, HPACK and gRPC call tracking, sans-IO: ordered byte-stream events in (from the
//! `capture` crate, via the binary), call records out.
//!
//! ```text
//! bytes of a connection direction -> h2::Connection        framing, HPACK, resync after gaps
//!                                  -> h2::Event             headers, data, reset, goaway, ...
//!                                  -> calls::Tracker        gRPC rules: calls, status, deadlines
//!                                  -> calls::Sink           call_started / call_ended / conn_event
//! conn::ConnDecoder owns one connection's two stages; aggregate::Aggregator folds ended calls
//! per method (with the one aggregate::MethodCap) for the summary and the TUI.
//! ```
//!
//! Does not depend on `capture`: the binary translates stream events, so the decoder can be fed
//! from any source and tested with bytes. Time is a parameter (packet timestamps), never read;
//! no file is read either (schemas come in as descriptor pools).

pub mod aggregate;
pub mod anomaly;
pub mod calls;
pub mod conn;
pub mod dns;
pub mod filter;
pub mod findings;
pub mod framelog;
pub mod grpc;
pub mod h2;
pub mod hpack;
pub mod http1;
pub mod metadata;
pub mod output;
pub mod payload;
pub mod reflection;
pub mod schema;
pub mod tls;

pub use anomaly::AnomalyKind;
pub use calls::{
    CallLimits, CallRecord, CallType, Confidence, ConnEvent, Half, KeepBudget, NullSink, OpenCall,
    Reset, Sink, StatusSource,
};
pub use conn::{ConnDecoder, DecoderLimits};
pub use h2::Side;
pub use types::{ConnId, Dir, Nanos};

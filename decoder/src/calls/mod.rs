//! gRPC calls over HTTP/2 (PROTOCOL-HTTP2.md): the call tracker consumes the HTTP/2 layer's
//! events and produces call records.
//!
//! ```text
//! h2::Event -> tracker::Tracker::handle
//!   request HEADERS      -> a call opens (method, authority, grpc-timeout, traceparent, metadata)
//!   DATA                 -> grpc::msg::MsgParser per direction (messages, bytes, kept bodies)
//!   trailers / RST_STREAM / GOAWAY / TCP close / end of capture
//!                        -> status::decide(Ending) -> the effective status and its source
//!   call end             -> infer::infer_method when :path was lost (and asked for)
//!   -> sink::Sink {call_started, call_ended, conn_event, message}
//! ```
//!
//! Nothing here reads HTTP/2 frames: an HTTP/1.1-based protocol can feed the same rules.

mod flow;
mod groups;
mod headers;
pub mod infer;
mod learn;
pub mod record;
pub mod sink;
pub mod status;
pub mod tracker;

pub use headers::{RequestKind, TraceParent};
pub use record::{CallRecord, CallType, Confidence, Half, OpenCall, Reset, StatusSource};
pub use sink::{ConnEvent, NullSink, Sink};
pub use tracker::{CallLimits, KeepBudget, Tracker};

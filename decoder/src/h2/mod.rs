//! HTTP/2 (RFC 9113) seen from outside the connection: framing and HPACK only.
//!
//! ```text
//! bytes of one direction (types::Dir) -> connection::Connection
//!   preface / frame-boundary hunt -> 9-byte head -> frame::*::load(head, payload)
//!   header blocks -> hpack::Decoder (one per direction)
//!   -> event::Event {Headers, Data, DataEndStream, Reset, GoAway, Setting, Ping, ...}
//! ```
//!
//! No gRPC rule lives here: the call tracker (`crate::calls`) reads the events. Errors of one
//! frame (`error::Error`) reach only that frame and become anomalies.

pub mod connection;
pub mod error;
pub mod event;
pub mod frame;

pub use connection::{Connection, H2Limits};
pub use error::Error;
pub use event::{Event, EventSink, Side};

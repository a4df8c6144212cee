//! HTTP/2 frames (RFC 9113 section 4 and 6): the header, and one module per frame type, each
//! with `load(head, payload)` over a whole buffered payload. DATA is the exception: the framer
//! streams it, so `data` only computes where its bytes lie.

pub mod continuation;
pub mod data;
pub mod goaway;
pub mod head;
pub mod headers;
pub mod kind;
pub mod ping;
pub mod priority;
pub mod push_promise;
pub mod rst_stream;
pub mod settings;
pub mod window_update;

pub use continuation::Continuation;
pub use goaway::GoAway;
pub use head::{ErrorCode, Flags, HEADER_LEN, Head, PREFACE, SettingId};
pub use headers::Headers;
pub use kind::Kind;
pub use ping::Ping;
pub use priority::Priority;
pub use push_promise::PushPromise;
pub use rst_stream::RstStream;
pub use settings::Settings;
pub use window_update::WindowUpdate;

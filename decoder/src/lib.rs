//! HTTP/2, HPACK and gRPC call tracking, sans-IO: ordered byte-stream events in (from the
//! `capture` crate, via the binary), `CallEvent`s out. Does not depend on `capture`: the binary
//! translates stream events, so the decoder can be fed from any source and tested with bytes.

pub mod hpack;

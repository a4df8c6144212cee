//! HTTP/2 (RFC 9113) seen from outside the connection.

pub mod conn;
pub mod frame;
pub mod msg;

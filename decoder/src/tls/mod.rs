//! TLS, passively: records in, plaintext out, with the secrets a key log gives (sans-IO like
//! the rest: the binary reads key log files and pcapng Decryption Secrets Blocks and hands
//! their text to [`keylog::KeyLog`]).
//!
//! ```text
//! conn::ConnDecoder -> session::TlsSession (one per TLS connection; keylog::KeyLog shared)
//!                   -> crypto (suites, TLS 1.2 PRF / TLS 1.3 HKDF key schedules, AEAD records)
//!                   -> session::PlainSink::plaintext -> HTTP/2 or HTTP/1.1 as for cleartext
//! ```

pub mod crypto;
pub mod keylog;
pub mod session;

#[cfg(test)]
mod tests;

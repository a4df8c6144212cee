//! TLS secrets from NSS key log lines (`SSLKEYLOGFILE`, `--tls-keylog`, a pcapng Decryption
//! Secrets Block), kept by client random and shared by every connection.
//!
//! ```text
//! CLIENT_RANDOM <client random, 64 hex> <TLS 1.2 master secret, 96 hex>
//! CLIENT_EARLY_TRAFFIC_SECRET | CLIENT_HANDSHAKE_TRAFFIC_SECRET | SERVER_HANDSHAKE_TRAFFIC_SECRET
//!   | CLIENT_TRAFFIC_SECRET_0 | SERVER_TRAFFIC_SECRET_0 <client random> <secret, 64 or 96 hex>
//! ```
//!
//! Sans-IO: the binary reads the files and hands their text in. No secret is ever printed: the
//! `Debug` of every type here shows counts only, and a bad line is reported by its number and
//! the reason, never its content.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A secret of up to 48 bytes (SHA-384's length).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    len: u8,
    bytes: [u8; 48],
}

impl Secret {
    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A secret of `b` (at most 48 bytes; longer is cut).
    pub fn new(b: &[u8]) -> Secret {
        let mut bytes = [0; 48];
        let n = b.len().min(48);
        bytes[..n].copy_from_slice(&b[..n]);
        Secret {
            len: u8::try_from(n).unwrap_or(48),
            bytes,
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// What the key log says about one connection (one client random).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2 (and earlier) master secret.
    pub master: Option<Secret>,
    /// TLS 1.3 client early traffic secret (0-RTT).
    pub client_early: Option<Secret>,
    /// TLS 1.3 handshake traffic secrets, client and server.
    pub client_handshake: Option<Secret>,
    /// See `client_handshake`.
    pub server_handshake: Option<Secret>,
    /// TLS 1.3 first application traffic secrets, client and server.
    pub client_app: Option<Secret>,
    /// See `client_app`.
    pub server_app: Option<Secret>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("master", &self.master.is_some())
            .field("client_early", &self.client_early.is_some())
            .field("client_handshake", &self.client_handshake.is_some())
            .field("server_handshake", &self.server_handshake.is_some())
            .field("client_app", &self.client_app.is_some())
            .field("server_app", &self.server_app.is_some())
            .finish()
    }
}

/// Why a key log line was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLine {
    /// Not `LABEL RANDOM SECRET`.
    Shape,
    /// A label this format does not define.
    UnknownLabel,
    /// The client random is not 32 bytes of hex.
    BadRandom,
    /// The secret is not hex of the label's length (48 bytes for CLIENT_RANDOM, 32 or 48
    /// otherwise).
    BadSecret,
}

impl BadLine {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            BadLine::Shape => "not LABEL CLIENT_RANDOM SECRET",
            BadLine::UnknownLabel => "unknown label",
            BadLine::BadRandom => "client random is not 64 hex digits",
            BadLine::BadSecret => "secret is not 64 or 96 hex digits",
        }
    }
}

/// What adding key log text did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    /// Lines that gave a secret.
    pub good: u64,
    /// Bad lines: (line number, counted from the `first_line` given, and why); the first
    /// [`MAX_BAD_REPORTED`] only.
    pub bad: Vec<(u64, BadLine)>,
    /// Bad lines in all.
    pub bad_count: u64,
}

/// Bad lines reported by number per [`KeyLog::add_text`].
pub const MAX_BAD_REPORTED: usize = 20;

/// Client randoms kept; past it the newest lines are not taken (counted in `refused`).
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// The secrets of every connection named so far, by client random. Shared (`Arc`) between the
/// binary, which adds lines as it reads them, and the connections, which look theirs up.
#[derive(Default)]
pub struct KeyLog {
    map: RwLock<HashMap<[u8; 32], Secrets>>,
    /// TLS 1.2 master secrets by the session they can resume (SHA-256 of a session id or a
    /// session ticket), learned from connections decrypted earlier in the capture: stacks log
    /// no key for a resumed TLS 1.2 session (its master secret is the earlier one).
    sessions: RwLock<HashMap<[u8; 32], Secret>>,
    /// Bumped when a line adds a secret: a connection waiting for keys looks again only then.
    generation: AtomicU64,
    refused: AtomicU64,
}

impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLog")
            .field("connections", &self.len())
            .finish()
    }
}

fn hex_into(s: &str, out: &mut [u8]) -> bool {
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return false;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        match (nib(pair[0]), nib(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

fn session_key(id: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(id).into()
}

/// One parsed line: the client random, which field, the secret.
fn parse_line(line: &str) -> Result<Option<([u8; 32], usize, Secret)>, BadLine> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.split_ascii_whitespace();
    let (Some(label), Some(random), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadLine::Shape);
    };
    let field = match label {
        "CLIENT_RANDOM" => 0,
        "CLIENT_EARLY_TRAFFIC_SECRET" => 1,
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => 2,
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => 3,
        "CLIENT_TRAFFIC_SECRET_0" => 4,
        "SERVER_TRAFFIC_SECRET_0" => 5,
        // Labels of the format we have no use for (TLS 1.3 exporter secrets, ECH, RSA
        // pre-master secrets): not errors.
        "EXPORTER_SECRET" | "EARLY_EXPORTER_SECRET" | "ECH_SECRET" | "ECH_CONFIG" | "RSA" => {
            return Ok(None);
        }
        _ => return Err(BadLine::UnknownLabel),
    };
    let mut cr = [0; 32];
    if !hex_into(random, &mut cr) {
        return Err(BadLine::BadRandom);
    }
    let mut buf = [0; 48];
    let n = match (field, secret.len()) {
        (0, 96) => 48,
        (0, _) => return Err(BadLine::BadSecret),
        (_, 64) => 32,
        (_, 96) => 48,
        _ => return Err(BadLine::BadSecret),
    };
    if !hex_into(secret, &mut buf[..n]) {
        return Err(BadLine::BadSecret);
    }
    Ok(Some((cr, field, Secret::new(&buf[..n]))))
}

impl KeyLog {
    /// An empty key log.
    pub fn new() -> KeyLog {
        KeyLog::default()
    }

    /// Adds the lines of `text` (whole lines; the caller keeps a partial last line for later).
    /// `first_line` is the number of the first line in its file, for the report.
    pub fn add_text(&self, text: &str, first_line: u64) -> AddReport {
        let mut report = AddReport::default();
        let mut added = false;
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (i, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(None) => {}
                Ok(Some((cr, field, secret))) => {
                    report.good += 1;
                    if map.len() >= MAX_CONNECTIONS && !map.contains_key(&cr) {
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let e = map.entry(cr).or_default();
                    let slot = match field {
                        0 => &mut e.master,
                        1 => &mut e.client_early,
                        2 => &mut e.client_handshake,
                        3 => &mut e.server_handshake,
                        4 => &mut e.client_app,
                        _ => &mut e.server_app,
                    };
                    if *slot != Some(secret) {
                        *slot = Some(secret);
                        added = true;
                    }
                }
                Err(why) => {
                    report.bad_count += 1;
                    if report.bad.len() < MAX_BAD_REPORTED {
                        report.bad.push((first_line + i as u64, why));
                    }
                }
            }
        }
        drop(map);
        if added {
            self.generation.fetch_add(1, Ordering::Release);
        }
        report
    }

    /// The secrets logged for `client_random`.
    pub fn lookup(&self, client_random: &[u8; 32]) -> Option<Secrets> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(client_random).copied()
    }

    /// Remembers that the TLS 1.2 session named `id` (a session id or ticket) has `master`.
    pub fn learn_session(&self, id: &[u8], master: Secret) {
        if id.is_empty() {
            return;
        }
        let key = session_key(id);
        let mut m = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        if m.len() < MAX_CONNECTIONS || m.contains_key(&key) {
            m.insert(key, master);
        }
    }

    /// The master secret of the TLS 1.2 session named `id`, if a connection taught it.
    pub fn session(&self, id: &[u8]) -> Option<Secret> {
        if id.is_empty() {
            return None;
        }
        let m = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        m.get(&session_key(id)).copied()
    }

    /// Changes whenever a line adds a secret.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Connections (client randoms) known.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no secret is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines not taken because [`MAX_CONNECTIONS`] client randoms were known.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn lines_of_every_label_are_kept_by_client_random() {
        let s32 = "ab".repeat(32);
        let s48 = "cd".repeat(48);
        let text = format!(
            "# comment\n\nCLIENT_RANDOM {CR} {s48}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {CR} {s32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {CR} {s48}\nCLIENT_TRAFFIC_SECRET_0 {CR} {s32}\n\
             SERVER_TRAFFIC_SECRET_0 {CR} {s32}\nEXPORTER_SECRET {CR} {s32}\n"
        );
        let log = KeyLog::new();
        let g0 = log.generation();
        let r = log.add_text(&text, 1);
        assert_eq!((r.good, r.bad_count), (5, 0));
        assert_ne!(log.generation(), g0);
        let mut cr = [0; 32];
        assert!(hex_into(CR, &mut cr));
        let s = log.lookup(&cr).expect("known");
        assert_eq!(s.master.map(|m| m.bytes().len()), Some(48));
        assert_eq!(s.server_handshake.map(|m| m.bytes()[0]), Some(0xcd));
        assert_eq!(s.client_app.map(|m| m.bytes().len()), Some(32));
        assert!(s.client_early.is_none());
        // The same lines again add nothing: the generation stays.
        let g1 = log.generation();
        log.add_text(&text, 1);
        assert_eq!(log.generation(), g1);
    }

    #[test]
    fn bad_lines_are_reported_by_number_and_the_good_ones_kept() {
        let s32 = "ab".repeat(32);
        let text = format!(
            "CLIENT_RANDOM {CR}\nNOPE {CR} {s32}\nCLIENT_TRAFFIC_SECRET_0 zz{} {s32}\n\
             CLIENT_RANDOM {CR} {s32}\nSERVER_TRAFFIC_SECRET_0 {CR} {s32}\n",
            &CR[2..]
        );
        let log = KeyLog::new();
        let r = log.add_text(&text, 10);
        assert_eq!(r.good, 1);
        assert_eq!(
            r.bad,
            vec![
                (10, BadLine::Shape),
                (11, BadLine::UnknownLabel),
                (12, BadLine::BadRandom),
                (13, BadLine::BadSecret)
            ]
        );
        // No secret in any debug output.
        let dbg = format!("{log:?} {:?}", log.lookup(&[0; 32]));
        assert!(!dbg.contains("abab"), "{dbg}");
    }
}

//! One TLS connection, passively: records framed per direction, the hellos read, keys taken
//! from the key log, records opened, plaintext handed on in order.
//!
//! ```text
//! handle_data(dir, ts, bytes) -> records (5-byte header + fragment, reassembled across
//!   segments, many per segment) -> plaintext hellos (ClientHello, ServerHello: version, suite,
//!   randoms, SNI, ALPN, HelloRetryRequest, resumption) -> keys (keylog::KeyLog by client
//!   random) -> crypto::RecordKeys::open_at -> TLS 1.3 handshake messages (Finished,
//!   KeyUpdate: key changes) | application data -> PlainSink::plaintext(dir, ts, bytes)
//! ```
//!
//! Rules:
//! - Records that cannot be opened yet (the keys are not in the key log yet, or a client's
//!   records come before the ServerHello that says how to open them) wait in a buffer of
//!   bounded size, with the time each chunk arrived, and are opened when the keys come; past
//!   the bound the connection stays encrypted (`NoKey`).
//! - A record that does not authenticate is counted (`tls_bad_record`) and handled as a gap
//!   of the plaintext: its sequence number is used up, the next record opens.
//! - A TCP gap inside a record whose end is known drops that record only. A gap that swallows
//!   a record header leaves the direction hunting: the next plausible record header is tried
//!   with the sequence numbers the lost bytes could have used (the record's authentication
//!   tag says which is right); found, decryption resumes (`tls_resync`), else the direction
//!   is lost (`tls_lost`).
//! - TLS 1.3 early data is counted; it is opened when the key log has its secret, else it is
//!   plaintext lost.

use std::sync::Arc;

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extensions,
    parse_tls_message_handshake, parse_tls_server_hello_extensions,
};
use types::{Dir, Nanos};

use super::crypto::{RecordKeys, Suite, TAG, suite};
use super::keylog::{KeyLog, Secrets};
use crate::anomaly::AnomalyKind;

/// Largest record: 2^14 bytes of plaintext plus TLS 1.2's allowance for expansion.
const MAX_FRAGMENT: usize = (1 << 14) + 2048;
/// Largest hello message buffered (ClientHello, ServerHello, EncryptedExtensions).
const MAX_HELLO: usize = 1 << 16;
/// Bytes searched for a record header after a gap before the direction is declared lost.
const HUNT_WINDOW: usize = 1 << 17;
/// Sequence numbers tried per candidate record after a gap.
const MAX_SEQ_TRIES: u64 = 256;

/// SHA-256("HelloRetryRequest"): the random of a ServerHello that is a HelloRetryRequest
/// (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Bounds of the TLS layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLimits {
    /// Bytes of one connection buffered while its keys are not known yet (both directions).
    pub max_pending: usize,
}

impl Default for TlsLimits {
    fn default() -> Self {
        TlsLimits {
            max_pending: 4 << 20,
        }
    }
}

/// Where the plaintext goes: the HTTP layers.
pub trait PlainSink {
    /// The next plaintext bytes of direction `d`, from records that arrived at `ts`.
    fn plaintext(&mut self, d: Dir, ts: Nanos, bytes: &[u8]);
    /// Plaintext of direction `d` was lost: `len` bytes if known exactly.
    fn lost(&mut self, d: Dir, len: Option<u64>);
    /// Something the TLS layer noticed.
    fn anomaly(&mut self, kind: AnomalyKind);
}

/// How far a connection got, and why it stayed encrypted when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsState {
    /// The handshake is in progress (or the capture ended in it).
    Handshake,
    /// Records are being opened.
    Decrypting,
    /// The key log has no secrets for the connection's client random.
    NoKey,
    /// The version or cipher suite is one grpctap does not decrypt.
    Unsupported,
    /// The capture joined the connection after its handshake.
    HandshakeNotSeen,
    /// Bytes were lost where decryption could not resume (in the handshake, or a gap no
    /// record after could be aligned with).
    Lost,
}

impl TlsState {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            TlsState::Handshake => "handshake",
            TlsState::Decrypting => "decrypted",
            TlsState::NoKey => "no_key",
            TlsState::Unsupported => "unsupported",
            TlsState::HandshakeNotSeen => "handshake_not_seen",
            TlsState::Lost => "lost",
        }
    }
}

/// What is known of a TLS connection. Holds no key material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Negotiated version (0x0304 TLS 1.3, 0x0303 TLS 1.2, ...).
    pub version: Option<u16>,
    /// Negotiated cipher suite.
    pub suite: Option<u16>,
    /// Server name the client asked for (printable ASCII only, at most 255 bytes).
    pub sni: Option<Box<str>>,
    /// ALPN protocols the client offered, comma-separated.
    pub alpn_offered: Option<Box<str>>,
    /// ALPN protocol the server chose (TLS 1.3: from EncryptedExtensions, so only when
    /// decrypted).
    pub alpn: Option<Box<str>>,
    /// The server asked for another ClientHello (TLS 1.3 HelloRetryRequest).
    pub hello_retry: bool,
    /// The session was resumed (TLS 1.3 PSK, TLS 1.2 session id or ticket).
    pub resumed: bool,
    /// TLS 1.3 early data records the client sent (0-RTT).
    pub early_data_records: u64,
    /// Records opened.
    pub records: u64,
    /// Records that did not authenticate.
    pub bad_records: u64,
    /// Bytes (record bytes, headers included) each way, by `Dir::index`; gaps not included.
    pub bytes: [u64; 2],
    /// Of those, bytes not decrypted (never opened: no key, unsupported, lost, waiting).
    pub encrypted_bytes: [u64; 2],
}

impl TlsInfo {
    /// "1.3", "1.2", ... for a version number.
    pub fn version_name(v: u16) -> &'static str {
        match v {
            0x0304 => "1.3",
            0x0303 => "1.2",
            0x0302 => "1.1",
            0x0301 => "1.0",
            0x0300 => "ssl3",
            _ => "unknown",
        }
    }
}

/// What a direction's records are, at this point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before encryption: hellos in the clear.
    Plain,
    /// Encrypted records with keys in `keys`.
    Open,
    /// Encrypted records that cannot be opened yet: bytes go to `pending`.
    Waiting,
    /// After a gap: looking for a record header to resume at.
    Hunting,
    /// Nothing more is decrypted; bytes are counted.
    Dead,
}

/// Message scanner for a handshake byte stream: finds message boundaries, keeps the body of
/// the messages asked for (bounded), skips the others.
#[derive(Debug, Default)]
struct HsScan {
    head: [u8; 4],
    head_len: u8,
    left: usize,
    keep: bool,
    body: Vec<u8>,
}

impl HsScan {
    /// Feeds `bytes`; `f(type, whole message or None when not kept)` per finished message.
    fn feed(
        &mut self,
        mut bytes: &[u8],
        want: impl Fn(u8) -> bool,
        mut f: impl FnMut(u8, Option<&[u8]>),
    ) {
        while !bytes.is_empty() {
            if self.head_len < 4 {
                let n = (4 - usize::from(self.head_len)).min(bytes.len());
                let at = usize::from(self.head_len);
                self.head[at..at + n].copy_from_slice(&bytes[..n]);
                self.head_len += u8::try_from(n).unwrap_or(0);
                bytes = &bytes[n..];
                if self.head_len < 4 {
                    return;
                }
                self.left = usize::from(self.head[1]) << 16
                    | usize::from(self.head[2]) << 8
                    | usize::from(self.head[3]);
                self.keep = want(self.head[0]) && self.left <= MAX_HELLO;
                self.body.clear();
                if self.keep {
                    self.body.extend_from_slice(&self.head);
                }
            }
            let n = self.left.min(bytes.len());
            if self.keep {
                self.body.extend_from_slice(&bytes[..n]);
            }
            self.left -= n;
            bytes = &bytes[n..];
            if self.left == 0 {
                self.head_len = 0;
                let kept = self.keep.then_some(self.body.as_slice());
                f(self.head[0], kept);
                if self.body.capacity() > 4096 {
                    self.body = Vec::new();
                }
            }
        }
    }
}

/// One direction's record layer.
#[derive(Debug)]
struct Half {
    mode: Mode,
    /// The record being assembled: header, then fragment.
    rec: Vec<u8>,
    /// Bytes of the rest of a record cut by a gap still to skip.
    skip: usize,
    keys: Option<RecordKeys>,
    /// Keys to use from the next record on (TLS 1.3: after Finished or KeyUpdate).
    next: Option<RecordKeys>,
    /// TLS 1.3 early data keys (client only).
    early: Option<RecordKeys>,
    /// The client's early data phase is over (its first handshake record opened).
    early_over: bool,
    /// Bytes waiting for keys, and (arrival time, length) of each chunk.
    pending: Vec<u8>,
    pending_ts: Vec<(Nanos, usize)>,
    /// Bytes searched after a gap, and the first sequence number the next record may have.
    hunt: Vec<u8>,
    hunt_pos: usize,
    hunt_seq: u64,
    hunt_span: u64,
    /// Plaintext handshake stream (hellos) and the decrypted TLS 1.3 one.
    plain_hs: HsScan,
    enc_hs: HsScan,
}

impl Half {
    fn new() -> Half {
        Half {
            mode: Mode::Plain,
            rec: Vec::new(),
            skip: 0,
            keys: None,
            next: None,
            early: None,
            early_over: false,
            pending: Vec::new(),
            pending_ts: Vec::new(),
            hunt: Vec::new(),
            hunt_pos: 0,
            hunt_seq: 0,
            hunt_span: 0,
            plain_hs: HsScan::default(),
            enc_hs: HsScan::default(),
        }
    }

    fn memory(&self) -> usize {
        self.rec.capacity()
            + self.pending.capacity()
            + self.pending_ts.capacity() * 16
            + self.hunt.capacity()
            + self.plain_hs.body.capacity()
            + self.enc_hs.body.capacity()
    }
}

/// Hello facts gathered before keys can be made.
#[derive(Debug, Default)]
struct Hellos {
    client_random: Option<[u8; 32]>,
    client_session: Option<([u8; 32], u8)>,
    /// The session ticket the client offered (TLS 1.2 resumption).
    client_ticket: Option<Vec<u8>>,
    /// The session id the server gave.
    server_session: Option<([u8; 32], u8)>,
    /// TLS 1.2 master secret, once known (to learn the sessions it can resume).
    master: Option<super::keylog::Secret>,
    early_offered: bool,
    server_random: Option<[u8; 32]>,
    suite: Option<Suite>,
    tls13: bool,
    server_hello: bool,
}

/// A TLS connection being followed. The client's bytes are direction `client`.
#[derive(Debug)]
pub struct TlsSession {
    client: Dir,
    keylog: Arc<KeyLog>,
    limits: TlsLimits,
    halves: [Half; 2],
    hellos: Hellos,
    /// The key log generation last looked at while waiting for keys.
    seen_gen: Option<u64>,
    info: TlsInfo,
    state: TlsState,
}

/// True when `data` (the first bytes a direction carried) starts a TLS ClientHello record.
pub fn looks_like_client_hello(data: &[u8]) -> bool {
    data.len() >= 6 && data[0] == 22 && data[1] == 3 && data[2] <= 4 && data[5] == 1
}

/// True when `data` (a direction's first bytes, joined mid-way) starts with a plausible TLS
/// record header.
pub fn looks_like_record(data: &[u8]) -> bool {
    data.len() >= 5
        && (20..=23).contains(&data[0])
        && data[1] == 3
        && data[2] <= 4
        && usize::from(u16::from_be_bytes([data[3], data[4]])) <= MAX_FRAGMENT
}

fn printable(b: &[u8], max: usize) -> Option<Box<str>> {
    let s: String = b
        .iter()
        .take(max)
        .map(|&c| {
            if (0x21..0x7f).contains(&c) {
                char::from(c)
            } else {
                '?'
            }
        })
        .collect();
    (!s.is_empty()).then(|| s.into_boxed_str())
}

fn alpn_list(list: &[&[u8]]) -> Option<Box<str>> {
    let mut s = String::new();
    for p in list.iter().take(16) {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(&printable(p, 32)?);
    }
    (!s.is_empty()).then(|| s.into_boxed_str())
}

impl TlsSession {
    /// A session whose handshake the capture will see: `client` is the direction that
    /// carried the ClientHello.
    pub fn new(client: Dir, keylog: Arc<KeyLog>, limits: TlsLimits) -> TlsSession {
        TlsSession {
            client,
            keylog,
            limits,
            halves: [Half::new(), Half::new()],
            hellos: Hellos::default(),
            seen_gen: None,
            info: TlsInfo::default(),
            state: TlsState::Handshake,
        }
    }

    /// A session joined after its handshake: counted, never decrypted.
    pub fn joined(client: Dir, keylog: Arc<KeyLog>) -> TlsSession {
        let mut s = TlsSession::new(client, keylog, TlsLimits::default());
        s.state = TlsState::HandshakeNotSeen;
        for h in &mut s.halves {
            h.mode = Mode::Dead;
        }
        s
    }

    /// What is known of the connection.
    pub fn info(&self) -> &TlsInfo {
        &self.info
    }

    /// How far it got.
    pub fn state(&self) -> TlsState {
        self.state
    }

    /// Bytes of state held (record, pending and hunt buffers).
    pub fn memory(&self) -> usize {
        self.halves.iter().map(Half::memory).sum()
    }

    /// True while records wait for keys the key log does not have yet.
    pub fn waiting(&self) -> bool {
        self.halves.iter().any(|h| h.mode == Mode::Waiting)
    }

    /// The capture ended or the connection closed: the key log is looked at once more (keys
    /// written late), then records still waiting for keys stay encrypted.
    pub fn finish<P: PlainSink + ?Sized>(&mut self, out: &mut P) {
        if self.waiting() {
            self.retry_keys(Nanos::ZERO, out);
        }
        if self.state == TlsState::Handshake
            && self.hellos.server_hello
            && self.halves.iter().all(|h| h.keys.is_none())
        {
            self.state = TlsState::NoKey;
        }
        for (i, h) in self.halves.iter_mut().enumerate() {
            if h.mode == Mode::Waiting {
                self.info.encrypted_bytes[i] += h.pending.len() as u64;
                h.pending = Vec::new();
                h.pending_ts = Vec::new();
                h.mode = Mode::Dead;
                if self.state == TlsState::Handshake || self.state == TlsState::Decrypting {
                    self.state = TlsState::NoKey;
                }
            }
        }
    }

    /// Bytes of direction `d`, in order.
    pub fn handle_data<P: PlainSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        data: &[u8],
        out: &mut P,
    ) {
        self.info.bytes[d.index()] += data.len() as u64;
        self.retry_keys(ts, out);
        self.feed(d, ts, data, out);
    }

    /// `len` bytes of direction `d` were lost.
    pub fn handle_gap<P: PlainSink + ?Sized>(&mut self, d: Dir, len: u64, out: &mut P) {
        // Lost bytes are neither carried nor encrypted: the capture layer counts them as gaps.
        let i = d.index();
        let h = &mut self.halves[i];
        match h.mode {
            Mode::Dead => {}
            Mode::Plain | Mode::Waiting => {
                // The hellos or the waiting records lost bytes: where records start after
                // them is not known without keys, and the handshake may be incomplete.
                self.info.encrypted_bytes[i] += h.pending.len() as u64;
                h.pending = Vec::new();
                h.pending_ts = Vec::new();
                h.mode = Mode::Dead;
                self.state = TlsState::Lost;
                out.anomaly(AnomalyKind::TlsLost);
                out.lost(d, None);
            }
            Mode::Hunting => {
                h.hunt_span = h.hunt_span.saturating_add(len / 22 + 1);
                // The bytes searched so far are no longer contiguous with what follows.
                h.hunt.clear();
                h.hunt_pos = 0;
            }
            Mode::Open => {
                let Some(keys) = h.keys.as_mut() else {
                    return;
                };
                let have = h.rec.len();
                let whole =
                    (have >= 5).then(|| 5 + usize::from(u16::from_be_bytes([h.rec[3], h.rec[4]])));
                match whole {
                    Some(whole) if (len as u128) < (whole - have) as u128 => {
                        // The gap ends inside this record: skip the rest of it, then records
                        // line up again. The record's number is used up.
                        h.skip = whole - have - usize::try_from(len).unwrap_or(0);
                        h.rec.clear();
                        keys.seq += 1;
                        out.lost(d, None);
                    }
                    _ => {
                        // Record headers were lost: hunt. The records the gap held used at
                        // most one sequence number per 22 bytes (the smallest record).
                        let cut = u64::from(have > 0);
                        h.rec.clear();
                        h.hunt.clear();
                        h.hunt_pos = 0;
                        h.hunt_seq = keys.seq + cut;
                        h.hunt_span = len / 22 + 1;
                        h.mode = Mode::Hunting;
                        out.lost(d, None);
                    }
                }
            }
        }
    }

    /// Looks for keys again when the key log changed while records were waiting.
    fn retry_keys<P: PlainSink + ?Sized>(&mut self, ts: Nanos, out: &mut P) {
        if !self.halves.iter().any(|h| h.mode == Mode::Waiting) {
            return;
        }
        let g = self.keylog.generation();
        if self.seen_gen == Some(g) {
            return;
        }
        self.seen_gen = Some(g);
        self.make_keys(out);
        for d in [self.client, self.client.reverse()] {
            if self.halves[d.index()].mode == Mode::Waiting && self.can_open(d) {
                let mode = if self.hellos.server_hello {
                    Mode::Open
                } else {
                    Mode::Plain
                };
                self.halves[d.index()].mode = mode;
                self.drain(d, ts, out);
            }
        }
    }

    /// True once direction `d` has what it needs to open its records.
    fn can_open(&self, d: Dir) -> bool {
        let h = &self.halves[d.index()];
        h.keys.is_some()
    }

    /// Feeds the bytes waiting in `d`'s buffer again, each chunk with its own time.
    fn drain<P: PlainSink + ?Sized>(&mut self, d: Dir, _now: Nanos, out: &mut P) {
        let h = &mut self.halves[d.index()];
        let bytes = std::mem::take(&mut h.pending);
        let chunks = std::mem::take(&mut h.pending_ts);
        let mut at = 0;
        for (ts, len) in chunks {
            let end = (at + len).min(bytes.len());
            self.feed(d, ts, &bytes[at..end], out);
            at = end;
        }
    }

    /// Records of `d` out of `data`.
    fn feed<P: PlainSink + ?Sized>(&mut self, d: Dir, ts: Nanos, mut data: &[u8], out: &mut P) {
        let i = d.index();
        while !data.is_empty() {
            let h = &mut self.halves[i];
            match h.mode {
                Mode::Dead => {
                    self.info.encrypted_bytes[i] += data.len() as u64;
                    return;
                }
                Mode::Waiting => {
                    if h.pending.len() + data.len() > self.limits.max_pending / 2 {
                        // Past the bound: the connection stays encrypted.
                        self.info.encrypted_bytes[i] += (h.pending.len() + data.len()) as u64;
                        h.pending = Vec::new();
                        h.pending_ts = Vec::new();
                        h.mode = Mode::Dead;
                        if matches!(self.state, TlsState::Handshake | TlsState::Decrypting) {
                            self.state = TlsState::NoKey;
                        }
                        out.lost(d, None);
                        return;
                    }
                    h.pending.extend_from_slice(data);
                    h.pending_ts.push((ts, data.len()));
                    return;
                }
                Mode::Hunting => {
                    data = self.hunt(d, ts, data, out);
                    continue;
                }
                Mode::Plain | Mode::Open => {}
            }
            if h.skip > 0 {
                let n = h.skip.min(data.len());
                h.skip -= n;
                self.info.encrypted_bytes[i] += n as u64;
                data = &data[n..];
                continue;
            }
            // Header.
            if h.rec.len() < 5 {
                let n = (5 - h.rec.len()).min(data.len());
                h.rec.extend_from_slice(&data[..n]);
                data = &data[n..];
                if h.rec.len() < 5 {
                    return;
                }
                if !looks_like_record(&h.rec) {
                    // Not a record where one must start: the stream is not (or no longer)
                    // TLS we can follow.
                    self.info.encrypted_bytes[i] += (h.rec.len() + data.len()) as u64;
                    h.rec.clear();
                    self.lose(d, out);
                    return;
                }
            }
            let whole = 5 + usize::from(u16::from_be_bytes([h.rec[3], h.rec[4]]));
            let n = (whole - h.rec.len()).min(data.len());
            h.rec.extend_from_slice(&data[..n]);
            data = &data[n..];
            if h.rec.len() < whole {
                return;
            }
            let mut rec = std::mem::take(&mut self.halves[i].rec);
            let done = self.record(d, ts, &mut rec, out);
            rec.clear();
            let h = &mut self.halves[i];
            h.rec = rec;
            if !done {
                // The record was put aside to wait for keys; so is the rest.
                continue;
            }
        }
    }

    /// The direction can no longer be followed.
    fn lose<P: PlainSink + ?Sized>(&mut self, d: Dir, out: &mut P) {
        let h = &mut self.halves[d.index()];
        h.mode = Mode::Dead;
        if self.state != TlsState::NoKey && self.state != TlsState::Unsupported {
            self.state = TlsState::Lost;
        }
        out.anomaly(AnomalyKind::TlsLost);
        out.lost(d, None);
    }

    /// One whole record of `d` (header and fragment in `rec`). False: it was put aside to
    /// wait (the direction is now `Waiting`).
    fn record<P: PlainSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        rec: &mut [u8],
        out: &mut P,
    ) -> bool {
        let i = d.index();
        let ctype = rec[0];
        let mode = self.halves[i].mode;
        if mode == Mode::Plain {
            match ctype {
                22 => {
                    self.plain_handshake(d, &rec[5..], out);
                    return true;
                }
                20 => {
                    // ChangeCipherSpec: TLS 1.2 encrypts from the next record on; TLS 1.3
                    // sends it only for middleboxes.
                    if self.hellos.server_hello && !self.hellos.tls13 {
                        self.halves[i].mode = Mode::Open;
                        if self.halves[i].keys.is_none() {
                            self.halves[i].mode = Mode::Waiting;
                        }
                    }
                    return true;
                }
                23 if self.hellos.server_hello && self.hellos.tls13 => {
                    self.halves[i].mode = Mode::Open;
                }
                23 => {
                    // The client's first encrypted records came before the ServerHello was
                    // read (early data, or the other direction runs behind): wait for it.
                    return self.wait(d, ts, rec);
                }
                _ => {
                    self.info.encrypted_bytes[i] += rec.len() as u64;
                    return true;
                }
            }
        }
        if self.halves[i].mode == Mode::Waiting || self.halves[i].keys.is_none() {
            return self.wait(d, ts, rec);
        }
        if self.hellos.tls13 && ctype == 20 {
            return true;
        }
        let header: [u8; 5] = [rec[0], rec[1], rec[2], rec[3], rec[4]];
        let h = &mut self.halves[i];
        let Some(keys) = h.keys.as_ref() else {
            return true;
        };
        let seq = keys.seq;
        let is_client = d == self.client;
        // Early data: the client's records before its first handshake record, under the
        // early secret (tried first while the phase lasts, with a copy to fall back on).
        if is_client && self.hellos.tls13 && self.hellos.early_offered && !h.early_over {
            let mut copy = rec[5..].to_vec();
            if let Some(opened) = keys.open_at(seq, &header, &mut copy) {
                h.early_over = true;
                rec[5..].copy_from_slice(&copy);
                return self.opened(d, ts, rec, opened, out);
            }
            self.info.early_data_records += 1;
            if let Some(early) = h.early.as_mut() {
                let eseq = early.seq;
                if let Some(opened) = early.open_at(eseq, &header, &mut rec[5..]) {
                    early.seq += 1;
                    self.info.records += 1;
                    if opened.content_type == 23 {
                        out.plaintext(d, ts, &rec[5 + opened.start..5 + opened.end]);
                    }
                    return true;
                }
            }
            self.info.encrypted_bytes[i] += rec.len() as u64;
            out.lost(d, None);
            return true;
        }
        match keys.open_at(seq, &header, &mut rec[5..]) {
            Some(opened) => {
                if is_client {
                    h.early_over = true;
                }
                self.opened(d, ts, rec, opened, out)
            }
            None => {
                // Counted; its plaintext is a gap (exactly its length for TLS 1.2, whose
                // records carry no padding).
                if let Some(k) = h.keys.as_mut() {
                    k.seq += 1;
                }
                self.info.bad_records += 1;
                self.info.encrypted_bytes[i] += rec.len() as u64;
                out.anomaly(AnomalyKind::TlsBadRecord);
                let exact = (!self.hellos.tls13).then(|| {
                    let explicit = match self.hellos.suite.map(|s| s.aead) {
                        Some(super::crypto::Aead::ChaCha20Poly1305) => 0,
                        _ => 8,
                    };
                    (rec.len() - 5).saturating_sub(explicit + TAG) as u64
                });
                // A bad handshake record (TLS 1.3 Finished, KeyUpdate) may have carried a
                // key change: the next records would not open; the hunt finds out.
                out.lost(d, if ctype == 23 { exact } else { None });
                true
            }
        }
    }

    /// A record opened: its plaintext handed on, or its handshake messages read.
    fn opened<P: PlainSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        rec: &mut [u8],
        o: super::crypto::Opened,
        out: &mut P,
    ) -> bool {
        let i = d.index();
        self.info.records += 1;
        if self.state == TlsState::Handshake {
            self.state = TlsState::Decrypting;
        }
        let h = &mut self.halves[i];
        if let Some(k) = h.keys.as_mut() {
            k.seq += 1;
        }
        let body = &rec[5 + o.start..5 + o.end];
        match o.content_type {
            23 => out.plaintext(d, ts, body),
            22 if self.hellos.tls13 => {
                let mut finished = false;
                let mut update = false;
                let mut alpn = None;
                h.enc_hs.feed(
                    body,
                    |t| t == 8,
                    |t, msg| match t {
                        20 => finished = true,
                        24 => update = true,
                        8 => {
                            if let Some(m) = msg.filter(|m| m.len() >= 6) {
                                alpn = encrypted_extensions_alpn(&m[6..]);
                            }
                        }
                        _ => {}
                    },
                );
                if alpn.is_some() {
                    self.info.alpn = alpn;
                }
                if finished {
                    match h.next.take() {
                        Some(next) => h.keys = Some(next),
                        None => {
                            // The key log had the handshake secrets only.
                            h.keys = None;
                            h.mode = Mode::Dead;
                            self.state = TlsState::NoKey;
                        }
                    }
                }
                if update && let Some(next) = h.keys.as_ref().and_then(RecordKeys::updated) {
                    h.keys = Some(next);
                }
            }
            _ => {}
        }
        true
    }

    /// Puts `rec` (and what follows it in this direction) aside until keys come.
    fn wait(&mut self, d: Dir, ts: Nanos, rec: &[u8]) -> bool {
        let h = &mut self.halves[d.index()];
        h.mode = Mode::Waiting;
        h.pending.extend_from_slice(rec);
        h.pending_ts.push((ts, rec.len()));
        false
    }

    /// A plaintext handshake record's fragment.
    fn plain_handshake<P: PlainSink + ?Sized>(&mut self, d: Dir, frag: &[u8], out: &mut P) {
        let is_client = d == self.client;
        let mut client_hello = None;
        let mut server_hello = None;
        let mut ticket = None;
        {
            let h = &mut self.halves[d.index()];
            h.plain_hs.feed(
                frag,
                |t| t == 1 || t == 2 || t == 4,
                |t, msg| {
                    if let Some(m) = msg {
                        match t {
                            1 if is_client => client_hello = Some(m.to_vec()),
                            2 if !is_client => server_hello = Some(m.to_vec()),
                            // TLS 1.2 NewSessionTicket: lifetime (4), ticket (2 + n).
                            4 if !is_client && m.len() >= 10 => {
                                let n = usize::from(u16::from_be_bytes([m[8], m[9]]));
                                ticket = m.get(10..10 + n).map(<[u8]>::to_vec);
                            }
                            _ => {}
                        }
                    }
                },
            );
        }
        if let (Some(t), Some(master)) = (ticket, self.hellos.master) {
            self.keylog.learn_session(&t, master);
        }
        if let Some(m) = client_hello {
            self.client_hello(&m);
        }
        if let Some(m) = server_hello {
            self.server_hello(&m, out);
        }
    }

    fn client_hello(&mut self, msg: &[u8]) {
        let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
            parse_tls_message_handshake(msg)
        else {
            return;
        };
        if let Ok(r) = <[u8; 32]>::try_from(ch.random) {
            self.hellos.client_random = Some(r);
        }
        if let Some(sid) = ch.session_id.filter(|s| !s.is_empty() && s.len() <= 32) {
            let mut b = [0; 32];
            b[..sid.len()].copy_from_slice(sid);
            self.hellos.client_session = Some((b, u8::try_from(sid.len()).unwrap_or(0)));
        }
        let Some(ext) = ch.ext else { return };
        let Ok((_, exts)) = parse_tls_client_hello_extensions(ext) else {
            return;
        };
        for e in exts {
            match e {
                TlsExtension::SNI(names) => {
                    if let Some((_, name)) = names.first() {
                        self.info.sni = printable(name, 255);
                    }
                }
                TlsExtension::ALPN(list) => self.info.alpn_offered = alpn_list(&list),
                TlsExtension::EarlyData(_) => self.hellos.early_offered = true,
                TlsExtension::SessionTicket(t) if !t.is_empty() && t.len() <= MAX_HELLO => {
                    self.hellos.client_ticket = Some(t.to_vec());
                }
                _ => {}
            }
        }
    }

    fn server_hello<P: PlainSink + ?Sized>(&mut self, msg: &[u8], out: &mut P) {
        let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) =
            parse_tls_message_handshake(msg)
        else {
            return;
        };
        let Ok(random) = <[u8; 32]>::try_from(sh.random) else {
            return;
        };
        let mut version = sh.version.0;
        let mut psk = false;
        let mut alpn = None;
        if let Some(ext) = sh.ext
            && let Ok((_, exts)) = parse_tls_server_hello_extensions(ext)
        {
            for e in exts {
                match e {
                    TlsExtension::SupportedVersions(v) => {
                        if let Some(v) = v.first() {
                            version = v.0;
                        }
                    }
                    TlsExtension::PreSharedKey(_) => psk = true,
                    TlsExtension::ALPN(list) => alpn = alpn_list(&list),
                    TlsExtension::Unknown(t, b) if t.0 == 43 && b.len() == 2 => {
                        version = u16::from_be_bytes([b[0], b[1]]);
                    }
                    _ => {}
                }
            }
        }
        self.info.version = Some(version);
        self.info.suite = Some(sh.cipher.0);
        if random == HRR_RANDOM {
            // HelloRetryRequest: another ClientHello and the real ServerHello follow.
            self.info.hello_retry = true;
            return;
        }
        self.hellos.server_random = Some(random);
        self.hellos.server_hello = true;
        self.hellos.tls13 = version == 0x0304;
        if alpn.is_some() {
            self.info.alpn = alpn;
        }
        if let Some(sid) = sh.session_id.filter(|s| !s.is_empty() && s.len() <= 32) {
            let mut b = [0; 32];
            b[..sid.len()].copy_from_slice(sid);
            self.hellos.server_session = Some((b, u8::try_from(sid.len()).unwrap_or(0)));
        }
        self.info.resumed = if self.hellos.tls13 {
            psk
        } else {
            match (self.hellos.client_session, sh.session_id) {
                (Some((b, n)), Some(s)) => &b[..usize::from(n)] == s,
                _ => false,
            }
        };
        let supported = suite(sh.cipher.0).filter(|s| s.tls13 == self.hellos.tls13);
        if version < 0x0303 || supported.is_none() {
            self.state = TlsState::Unsupported;
            for h in &mut self.halves {
                h.mode = Mode::Dead;
            }
            return;
        }
        self.hellos.suite = supported;
        self.make_keys(out);
        // The client's records that waited for this hello.
        let c = self.client;
        if self.halves[c.index()].mode == Mode::Waiting && self.can_open(c) {
            self.halves[c.index()].mode = Mode::Plain;
            let ts = self.halves[c.index()]
                .pending_ts
                .first()
                .map(|p| p.0)
                .unwrap_or_default();
            self.drain(c, ts, out);
        }
    }

    /// Makes the keys of both directions from the key log, when it has them.
    fn make_keys<P: PlainSink + ?Sized>(&mut self, _out: &mut P) {
        let (Some(suite), Some(cr), Some(sr)) = (
            self.hellos.suite,
            self.hellos.client_random,
            self.hellos.server_random,
        ) else {
            return;
        };
        if self.halves.iter().any(|h| h.keys.is_some()) {
            return;
        }
        let secrets = self.keylog.lookup(&cr).unwrap_or_default();
        // A resumed TLS 1.2 session reuses the master secret of the one it resumes: stacks
        // log none for it, so it comes from the connection that made the session (by its
        // ticket or session id).
        let master = secrets.master.or_else(|| {
            if suite.tls13 || !self.info.resumed {
                return None;
            }
            let by_ticket = self
                .hellos
                .client_ticket
                .as_deref()
                .and_then(|t| self.keylog.session(t));
            let by_id = self
                .hellos
                .server_session
                .and_then(|(b, n)| self.keylog.session(&b[..usize::from(n)]));
            by_ticket.or(by_id)
        });
        let (c, s) = (self.client.index(), self.client.reverse().index());
        if suite.tls13 {
            let Secrets {
                client_early,
                client_handshake,
                server_handshake,
                client_app,
                server_app,
                ..
            } = secrets;
            let k = |x: Option<super::keylog::Secret>| x.and_then(|x| RecordKeys::tls13(suite, x));
            let (Some(ch), Some(sh)) = (k(client_handshake), k(server_handshake)) else {
                return;
            };
            self.halves[c].keys = Some(ch);
            self.halves[s].keys = Some(sh);
            self.halves[c].next = k(client_app);
            self.halves[s].next = k(server_app);
            self.halves[c].early = k(client_early);
        } else if let Some(master) = master {
            let Some((ck, sk)) = RecordKeys::tls12(suite, &master, &cr, &sr) else {
                return;
            };
            self.halves[c].keys = Some(ck);
            self.halves[s].keys = Some(sk);
            self.hellos.master = Some(master);
            if let Some((b, n)) = self.hellos.server_session {
                self.keylog.learn_session(&b[..usize::from(n)], master);
            }
        }
    }

    /// After a gap: searches `data` for the next record that opens. Returns what is left of
    /// `data` for the framer.
    fn hunt<'a, P: PlainSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        data: &'a [u8],
        out: &mut P,
    ) -> &'a [u8] {
        let i = d.index();
        let h = &mut self.halves[i];
        let room = (HUNT_WINDOW + 5 + MAX_FRAGMENT).saturating_sub(h.hunt.len());
        let take = data.len().min(room);
        h.hunt.extend_from_slice(&data[..take]);
        let rest = &data[take..];
        let Some(keys) = h.keys.as_ref() else {
            self.info.encrypted_bytes[i] += take as u64;
            self.lose(d, out);
            return &[];
        };
        let mut at = h.hunt_pos;
        let buf = &h.hunt;
        let mut found = None;
        let mut scratch = Vec::new();
        while at + 5 <= buf.len() {
            let hd = &buf[at..at + 5];
            let len = usize::from(u16::from_be_bytes([hd[3], hd[4]]));
            if hd[0] == 23 && hd[1] == 3 && hd[2] == 3 && (TAG..=MAX_FRAGMENT).contains(&len) {
                if at + 5 + len > buf.len() {
                    break; // the rest of this candidate is still to come
                }
                let header: [u8; 5] = [hd[0], hd[1], hd[2], hd[3], hd[4]];
                let frag = &buf[at + 5..at + 5 + len];
                // TLS 1.2 GCM stacks send the sequence number as the explicit nonce: tried
                // first. Then every number the lost bytes could have used.
                let span = h.hunt_span.min(MAX_SEQ_TRIES);
                let seqs = keys
                    .explicit_nonce(frag)
                    .into_iter()
                    .chain(h.hunt_seq..h.hunt_seq.saturating_add(span + 1));
                for seq in seqs {
                    scratch.clear();
                    scratch.extend_from_slice(frag);
                    if keys.open_at(seq, &header, &mut scratch).is_some() {
                        found = Some((at, seq));
                        break;
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            at += 1;
        }
        match found {
            Some((at, seq)) => {
                out.anomaly(AnomalyKind::TlsResync);
                self.info.encrypted_bytes[i] += at as u64;
                let h = &mut self.halves[i];
                let buf = std::mem::take(&mut h.hunt);
                h.hunt_pos = 0;
                if let Some(k) = h.keys.as_mut() {
                    k.seq = seq;
                }
                h.mode = Mode::Open;
                h.rec.clear();
                self.feed(d, ts, &buf[at..], out);
                rest
            }
            None => {
                let h = &mut self.halves[i];
                h.hunt_pos = at;
                if h.hunt.len() >= HUNT_WINDOW {
                    self.info.encrypted_bytes[i] += h.hunt.len() as u64;
                    h.hunt = Vec::new();
                    h.hunt_pos = 0;
                    self.lose(d, out);
                    return &[];
                }
                rest
            }
        }
    }
}

/// The ALPN protocol in a TLS 1.3 EncryptedExtensions body (after its 2-byte length).
fn encrypted_extensions_alpn(mut ext: &[u8]) -> Option<Box<str>> {
    while ext.len() >= 4 {
        let t = u16::from_be_bytes([ext[0], ext[1]]);
        let n = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        let body = ext.get(4..4 + n)?;
        if t == 16 && body.len() >= 3 {
            let l = usize::from(body[2]);
            return printable(body.get(3..3 + l)?, 32);
        }
        ext = &ext[4 + n..];
    }
    None
}

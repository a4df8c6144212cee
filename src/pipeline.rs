//! Stream events in, decoder per TCP connection, every output through one fan-out.

use std::collections::HashMap;
use std::sync::Arc;

use capture::{CloseReason, ConnId, Dir, EventKind, Nanos, RoleSource, StreamEvent, StreamSink};
use decoder::output::Conns;
use decoder::reflection::SchemaStore;
use decoder::{ConnDecoder, DecoderLimits, Sink as _};

use crate::fanout::Fanout;

/// Per-connection state the pipeline keeps beside the decoder.
struct Conn {
    dec: ConnDecoder,
    closed: [bool; 2],
    /// The connection ended on the wire (FIN or RST), not by the tap's own expiry.
    ended_on_wire: bool,
    /// The direction whose FIN or RST came first: its sender ended the connection.
    closer: Option<Dir>,
    /// Its decoder state when last measured (`ConnDecoder::memory`).
    mem: usize,
}

/// The connections being decoded.
#[derive(Default)]
pub(crate) struct ConnTable {
    /// Connection ids are ours (sequential per shard), so a fast hash is safe here.
    map: HashMap<ConnId, Conn, foldhash::fast::FixedState>,
}

impl Conns for ConnTable {
    fn for_each_conn(&self, f: &mut dyn FnMut(&ConnDecoder)) {
        for c in self.map.values() {
            f(&c.dec);
        }
    }
}

/// Bytes of messages kept, across all connections, to infer the methods of calls whose `:path`
/// was lost (64 MiB: 512 such calls in flight at once keep their first messages).
const KEEP_FOR_INFERENCE: usize = 64 << 20;

/// Capture events in, decoder calls out.
pub(crate) struct Pipeline {
    pub(crate) conns: ConnTable,
    limits: DecoderLimits,
    /// The schemas every connection uses, growing with server reflection seen in the capture.
    pub(crate) store: Arc<SchemaStore>,
    /// Bytes of messages kept to infer methods, across all connections.
    keep: Arc<decoder::KeepBudget>,
    /// Bytes open calls keep for output (metadata, messages), across all connections.
    state: Arc<decoder::KeepBudget>,
    /// Every output.
    pub(crate) out: Fanout,
    /// Time of the first and the newest stream event.
    pub(crate) first_ts: Option<Nanos>,
    pub(crate) last_ts: Nanos,
    /// Decoder state of every connection together, and its bound.
    mem: usize,
    max_mem: usize,
    /// TLS secrets every connection looks its keys up in.
    keylog: Arc<decoder::tls::keylog::KeyLog>,
    /// Reads the key log files once more (keys an application wrote just now), before a TLS
    /// connection still waiting for its keys is closed.
    pub(crate) refresh_keys: Option<Box<dyn Fn()>>,
    /// DNS over TCP (port 53): the server's bytes of each such connection not yet a whole
    /// message (at most one message, 64 KiB, each).
    dns_tcp: HashMap<ConnId, Vec<u8>, foldhash::fast::FixedState>,
    /// Answers of the DNS message being read (kept for its memory).
    dns_answers: Vec<(std::net::IpAddr, String)>,
}

impl Pipeline {
    pub(crate) fn new(limits: DecoderLimits, store: Arc<SchemaStore>, out: Fanout) -> Pipeline {
        Pipeline {
            conns: ConnTable::default(),
            limits,
            store,
            keep: decoder::KeepBudget::new(KEEP_FOR_INFERENCE),
            state: decoder::KeepBudget::new(limits.max_kept_state),
            out,
            first_ts: None,
            last_ts: Nanos::ZERO,
            mem: 0,
            max_mem: limits.max_decoder_state,
            keylog: Arc::default(),
            refresh_keys: None,
            dns_tcp: HashMap::default(),
            dns_answers: Vec::new(),
        }
    }

    /// Decrypts TLS connections with the secrets of `keylog`.
    pub(crate) fn with_keylog(mut self, keylog: Arc<decoder::tls::keylog::KeyLog>) -> Pipeline {
        self.keylog = keylog;
        self
    }

    /// A connection's state changed (`c`, measured again): the total follows; past the bound
    /// the largest connections shed their tables and buffers until the total is back under
    /// nine tenths of it (so one shed is not followed by another at the next packet).
    #[inline]
    fn measure(total: &mut usize, c: &mut Conn) {
        let now = c.dec.memory();
        *total = *total - c.mem.min(*total) + now;
        c.mem = now;
    }

    #[cold]
    fn shed(&mut self) {
        let target = self.max_mem / 10 * 9;
        while self.mem > target {
            let Some((_, c)) = self.conns.map.iter_mut().max_by_key(|(_, c)| c.mem) else {
                return;
            };
            c.dec.shed(&mut self.out);
            let now = c.dec.memory();
            if now >= c.mem {
                // Nothing more to let go (what is left is open calls).
                return;
            }
            self.mem = self.mem - (c.mem - now).min(self.mem);
            c.mem = now;
        }
    }

    fn forget(&mut self, c: &Conn) {
        self.mem -= c.mem.min(self.mem);
    }

    /// DNS over TCP from the server: length-prefixed messages (RFC 1035 4.2.2), read where they
    /// lie in the connection's buffer. (A separate table: the connection's decoder is dropped as
    /// soon as its bytes are not HTTP.)
    fn dns_tcp_data(&mut self, id: ConnId, bytes: &[u8]) {
        let Some(buf) = self.dns_tcp.get_mut(&id) else {
            return;
        };
        buf.extend_from_slice(bytes);
        let mut at = 0;
        while let Some(len) = buf
            .get(at..at + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        {
            let Some(msg) = buf.get(at + 2..at + 2 + len) else {
                break;
            };
            dns_message(msg, &mut self.dns_answers, &mut self.out);
            at += 2 + len;
        }
        buf.drain(..at);
        // A message is at most 64 KiB + its prefix: the buffer stays within that.
        if buf.len() > (64 << 10) + 2 {
            self.dns_tcp.remove(&id);
        }
    }
}

/// A DNS message (without TCP's length prefix): its answers name addresses.
fn dns_message(msg: &[u8], answers: &mut Vec<(std::net::IpAddr, String)>, out: &mut Fanout) {
    answers.clear();
    decoder::dns::answers(msg, answers);
    for (addr, name) in answers.iter() {
        out.dns_name(*addr, name);
    }
}

impl StreamSink for Pipeline {
    /// A UDP datagram from port 53.
    fn on_dns(&mut self, _ts: Nanos, _from: std::net::SocketAddr, payload: &[u8]) {
        dns_message(payload, &mut self.dns_answers, &mut self.out);
    }

    fn on_event(&mut self, ev: StreamEvent<'_>) {
        let ts = ev.ts;
        self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        let id = ev.conn;
        match ev.kind {
            EventKind::Open(info) => {
                if info.server.port() == 53 && self.dns_tcp.len() < 1024 {
                    self.dns_tcp.insert(id, Vec::new());
                }
                let dec = ConnDecoder::new(
                    id,
                    (info.client, info.server),
                    ts,
                    info.roles != RoleSource::Guess,
                    self.limits,
                )
                .with_schema_store(self.store.clone())
                .with_keylog(self.keylog.clone())
                .with_keep_budget(self.keep.clone())
                .with_state_budget(self.state.clone());
                self.conns.map.insert(
                    id,
                    Conn {
                        dec,
                        closed: [false; 2],
                        ended_on_wire: false,
                        closer: None,
                        mem: 0,
                    },
                );
            }
            EventKind::Data(bytes) => {
                if ev.dir == capture::Dir::ToClient && !self.dns_tcp.is_empty() {
                    self.dns_tcp_data(id, bytes);
                }
                if let Some(c) = self.conns.map.get_mut(&id) {
                    c.dec.handle_data(ev.dir, ts, bytes, &mut self.out);
                    if c.dec.is_dead() {
                        if let Some(c) = self.conns.map.remove(&id) {
                            self.forget(&c);
                        }
                    } else {
                        Self::measure(&mut self.mem, c);
                        if self.mem > self.max_mem {
                            self.shed();
                        }
                    }
                }
            }
            EventKind::Gap { len } => {
                if let Some(c) = self.conns.map.get_mut(&id) {
                    c.dec.handle_gap(ev.dir, ts, len, &mut self.out);
                    Self::measure(&mut self.mem, c);
                    if self.mem > self.max_mem {
                        self.shed();
                    }
                }
            }
            EventKind::Close { reason, .. } => {
                let Some(c) = self.conns.map.get_mut(&id) else {
                    return;
                };
                c.closed[ev.dir.index()] = true;
                c.ended_on_wire |= matches!(
                    reason,
                    CloseReason::Fin | CloseReason::Rst | CloseReason::Reused
                );
                if matches!(reason, CloseReason::Fin | CloseReason::Rst) {
                    c.closer = c.closer.or(Some(ev.dir));
                }
                if c.closed != [true, true] {
                    return;
                }
                self.dns_tcp.remove(&id);
                if let Some(mut c) = self.conns.map.remove(&id) {
                    self.forget(&c);
                    if c.dec.wants_keys()
                        && let Some(refresh) = self.refresh_keys.as_ref()
                    {
                        refresh();
                    }
                    if c.ended_on_wire {
                        c.dec.handle_closed(ts, c.closer, &mut self.out);
                    } else {
                        c.dec.finish(&mut self.out);
                    }
                }
            }
        }
    }
}

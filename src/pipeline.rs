//! Wiring: capture's stream events drive one HTTP/2 decoder per TCP connection; finished calls
//! go to the aggregator and the call writer.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use capture::{CloseReason, EventKind, RoleSource, StreamEvent, StreamSink};
use decoder::aggregate::Aggregator;
use decoder::{AnomalyKind, CallRecord, CallSink, ConnDecoder, ConnEvent, DecoderLimits, Side};

use crate::calls_json::CallJson;

/// Per-connection state the pipeline keeps beside the decoder.
struct Conn {
    dec: ConnDecoder,
    closed: [bool; 2],
    /// The connection ended on the wire (FIN or RST), not by the tap's own expiry.
    ended_on_wire: bool,
    /// Payload bytes each way (client to server first).
    bytes: [u64; 2],
    /// The UI has heard of it (once it turned out to be HTTP/2).
    announced: bool,
    client: std::net::SocketAddr,
    server: std::net::SocketAddr,
    opened: u64,
}

/// What decoding found besides calls.
#[derive(Debug, Default, Clone)]
pub(crate) struct DecodeStats {
    pub(crate) http2_connections: u64,
    pub(crate) other_connections: u64,
    pub(crate) pings: BTreeMap<&'static str, u64>,
    pub(crate) goaways: BTreeMap<String, u64>,
    pub(crate) anomalies: BTreeMap<&'static str, u64>,
    pub(crate) calls_unknown_method: u64,
    /// Messages `--bodies` could not read (decompression bombs, invalid data, cut messages).
    pub(crate) payload_errors: u64,
    /// SETTINGS values seen, by "side:NAME" (bounded: a hostile peer can send many).
    pub(crate) settings: BTreeMap<String, std::collections::BTreeSet<u32>>,
}

/// Distinct SETTINGS keys and values per key kept in the summary.
const MAX_SETTINGS: usize = 64;

/// Receives decoder output.
pub(crate) struct Outputs {
    pub(crate) agg: Aggregator,
    pub(crate) metrics: Option<exporter::Recorder>,
    /// Decode message bodies into call records (`--bodies`).
    pub(crate) bodies: Option<crate::calls_json::Bodies>,
    pub(crate) stats: DecodeStats,
    pub(crate) calls: Option<Box<dyn Write>>,
    pub(crate) write_error: Option<std::io::Error>,
    pub(crate) first_ts: Option<u64>,
    pub(crate) last_ts: u64,
    /// The terminal UI, when it runs.
    pub(crate) ui: Option<tui::feed::Feeder>,
    /// `--calls` records carry metadata (`--metadata`; the UI keeps it for itself otherwise).
    pub(crate) json_metadata: bool,
}

impl CallSink for Outputs {
    fn call_started(&mut self, call: &CallRecord) {
        if let Some(m) = &mut self.metrics {
            m.call_started(call);
        }
    }

    fn call_ended(&mut self, call: &CallRecord) {
        // A call whose :path could not be read is named from its messages when exactly one
        // method of the schemas fits them (--bodies: decoding only when asked).
        let inferred = self.bodies.as_ref().and_then(|b| {
            let schemas = b.schemas.as_ref()?;
            if call.method.is_some() {
                return None;
            }
            let path = decoder::payload::infer_method(schemas, call, b.cap)?;
            let mut named = call.clone();
            named.method = Some(std::sync::Arc::from(path));
            named.method_confidence = decoder::Confidence::Inferred;
            Some(named)
        });
        let call = inferred.as_ref().unwrap_or(call);
        self.agg.record(call);
        if let Some(m) = &mut self.metrics {
            m.call_ended(call);
        }
        if call.method.is_none() {
            self.stats.calls_unknown_method += 1;
        }
        if let Some(ui) = self.ui.as_mut() {
            ui.push(tui::feed::UiEvent::Call(Box::new(call.clone())));
        }
        if let Some(w) = self.calls.as_mut()
            && self.write_error.is_none()
        {
            let mut json = CallJson::from(call);
            if !self.json_metadata {
                json.metadata = None;
            }
            if let Some(b) = &self.bodies {
                self.stats.payload_errors += json.decode_bodies(call, b) as u64;
            }
            let line = serde_json::to_string(&json).map_err(std::io::Error::other);
            if let Err(e) = line.and_then(|l| writeln!(w, "{l}")) {
                self.write_error = Some(e);
            }
        }
    }

    fn message(&mut self, from: decoder::Side, len: u32) {
        if let Some(m) = &mut self.metrics {
            m.message(from, len);
        }
    }

    fn conn_event(&mut self, conn: u64, event: ConnEvent) {
        if let Some(m) = &mut self.metrics {
            m.conn_event(event);
        }
        if let (Some(ui), ConnEvent::Goaway { by, code, .. }) = (self.ui.as_mut(), event) {
            ui.push(tui::feed::UiEvent::Goaway { conn, by, code });
        }
        match event {
            ConnEvent::Http2 => self.stats.http2_connections += 1,
            ConnEvent::Ping(side) => *self.stats.pings.entry(side.name()).or_default() += 1,
            ConnEvent::Goaway { by, code, .. } => {
                let key = format!(
                    "{}:{}",
                    by.name(),
                    decoder::h2::frame::error_code_name(code)
                );
                *self.stats.goaways.entry(key).or_default() += 1;
            }
            ConnEvent::Setting { by, id, value } => {
                let key = format!("{}:{}", by.name(), decoder::h2::frame::setting_name(id));
                let n = self.stats.settings.len();
                if let Some(values) = self.stats.settings.get_mut(&key) {
                    if values.len() < MAX_SETTINGS {
                        values.insert(value);
                    }
                } else if n < MAX_SETTINGS {
                    self.stats.settings.insert(key, [value].into());
                }
            }
            ConnEvent::Anomaly(AnomalyKind::NotHttp2) => self.stats.other_connections += 1,
            ConnEvent::Anomaly(kind) => *self.stats.anomalies.entry(kind.name()).or_default() += 1,
        }
    }
}

/// Capture events in, decoder calls out.
pub(crate) struct Pipeline {
    /// Connection ids are ours (sequential), so a fast hash is safe here.
    conns: HashMap<u64, Conn, foldhash::fast::FixedState>,
    limits: DecoderLimits,
    pub(crate) schemas: Option<std::sync::Arc<decoder::schema::Schemas>>,
    pub(crate) out: Outputs,
}

impl Pipeline {
    pub(crate) fn new(
        limits: DecoderLimits,
        max_methods: usize,
        calls: Option<Box<dyn Write>>,
        metrics: Option<exporter::Recorder>,
    ) -> Pipeline {
        Pipeline {
            conns: HashMap::default(),
            limits,
            schemas: None,
            out: Outputs {
                agg: Aggregator::new(max_methods),
                metrics,
                bodies: None,
                stats: DecodeStats::default(),
                calls,
                write_error: None,
                first_ts: None,
                last_ts: 0,
                ui: None,
                json_metadata: true,
            },
        }
    }

    /// Sends the UI what changed without an event (open calls, connection load, counters),
    /// and everything queued.
    pub(crate) fn ui_snapshot(&mut self, status: tui::feed::SourceStatus) {
        use tui::feed::{ConnLoad, MAX_CONN_ROWS, MAX_OPEN_ROWS, OpenRow, Snapshot};
        let Some(ui) = self.out.ui.as_mut() else {
            return;
        };
        let mut snap = Snapshot {
            now: self.out.last_ts,
            status,
            ..Snapshot::default()
        };
        for (&id, c) in &self.conns {
            if !c.announced {
                continue;
            }
            let open = c.dec.open_calls() as u64;
            snap.open_total += open;
            if snap.conns.len() < MAX_CONN_ROWS {
                snap.conns.push(ConnLoad {
                    id,
                    bytes: c.bytes,
                    open_streams: open,
                });
            }
            if snap.open.len() < MAX_OPEN_ROWS {
                c.dec.for_each_open(|o| {
                    if snap.open.len() < MAX_OPEN_ROWS {
                        snap.open.push(OpenRow::from(o));
                    }
                });
            }
        }
        snap.open
            .sort_by_key(|o| (o.start.unwrap_or(0), o.conn, o.stream_id));
        ui.push(tui::feed::UiEvent::Snapshot(Box::new(snap)));
        ui.flush();
    }

    /// A snapshot is due for the UI (it runs and its last batch went out a while ago).
    pub(crate) fn ui_due(&self) -> bool {
        self.out.ui.as_ref().is_some_and(tui::feed::Feeder::due)
    }

    /// The UI's last snapshot; then it hears nothing more (the calls still open stay open
    /// there rather than becoming unfinished when the reassembler is finished).
    pub(crate) fn ui_finish(&mut self, status: tui::feed::SourceStatus) {
        if self.out.ui.is_some() {
            self.ui_snapshot(status);
            self.out.ui = None;
        }
    }

    /// Flushes the call writer.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.out.write_error.take() {
            return Err(e);
        }
        match self.out.calls.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl StreamSink for Pipeline {
    fn on_event(&mut self, ev: StreamEvent<'_>) {
        let ts = ev.ts.0;
        self.out.first_ts.get_or_insert(ts);
        self.out.last_ts = self.out.last_ts.max(ts);
        let id = ev.conn.0;
        let d = ev.dir.index();
        match ev.kind {
            EventKind::Open(info) => {
                let dec = ConnDecoder::new(
                    id,
                    info.client,
                    info.server,
                    info.roles != RoleSource::Guess,
                    self.limits,
                )
                .with_schemas(self.schemas.clone());
                self.conns.insert(
                    id,
                    Conn {
                        dec,
                        closed: [false; 2],
                        ended_on_wire: false,
                        bytes: [0; 2],
                        announced: false,
                        client: info.client,
                        server: info.server,
                        opened: ts,
                    },
                );
            }
            EventKind::Data(bytes) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.bytes[d] += bytes.len() as u64;
                    c.dec.handle_data(d, ts, bytes, &mut self.out);
                    if !c.announced
                        && c.dec.is_http2()
                        && let Some(ui) = self.out.ui.as_mut()
                    {
                        c.announced = true;
                        ui.push(tui::feed::UiEvent::ConnOpened {
                            id,
                            client: c.client,
                            server: c.server,
                            ts: c.opened,
                        });
                    }
                    if c.dec.is_dead() {
                        self.conns.remove(&id);
                    }
                }
            }
            EventKind::Gap { len } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.dec.handle_gap(d, ts, len, &mut self.out);
                }
            }
            EventKind::Close { reason, .. } => {
                let Some(c) = self.conns.get_mut(&id) else {
                    return;
                };
                c.closed[d] = true;
                c.ended_on_wire |= matches!(
                    reason,
                    CloseReason::Fin | CloseReason::Rst | CloseReason::Reused
                );
                if c.closed != [true, true] {
                    return;
                }
                if let Some(mut c) = self.conns.remove(&id) {
                    if let (true, Some(ui)) = (c.announced, self.out.ui.as_mut()) {
                        ui.push(tui::feed::UiEvent::ConnClosed { id, bytes: c.bytes });
                    }
                    if c.ended_on_wire {
                        c.dec.handle_closed(ts, &mut self.out);
                    } else {
                        c.dec.finish(&mut self.out);
                    }
                    if !c.dec.is_http2() && !c.dec.is_dead() {
                        self.out.stats.other_connections += 1;
                    }
                }
            }
        }
    }
}

/// Side names for JSON.
pub(crate) fn side_name(s: Side) -> &'static str {
    s.name()
}

//! The connection list that `replay` prints until the HTTP/2 layer reports calls: one row per
//! TCP connection with what each direction carried.

use std::net::SocketAddr;

use capture::{
    CloseReason, ConnId, Dir, EventKind, HalfStats, Nanos, RoleSource, StreamEvent, StreamSink,
};
use decoder::tls::session::{TlsInfo, TlsState};
use serde::Serialize;

/// Rows kept; a capture with more connections is summarised in `folded`.
pub(crate) const MAX_ROWS: usize = 100_000;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HalfRow {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) gaps: u64,
    pub(crate) gap_bytes: u64,
    pub(crate) end: Option<&'static str>,
}

impl HalfRow {
    fn new() -> Self {
        HalfRow {
            packets: 0,
            bytes: 0,
            gaps: 0,
            gap_bytes: 0,
            end: None,
        }
    }
    fn set(&mut self, stats: HalfStats, reason: CloseReason) {
        self.packets = stats.packets;
        self.bytes = stats.bytes;
        self.gaps = stats.gaps;
        self.gap_bytes = stats.gap_bytes;
        self.end = Some(reason_name(reason));
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConnRow {
    pub(crate) id: u64,
    pub(crate) client: SocketAddr,
    pub(crate) server: SocketAddr,
    /// How the client/server roles were decided: syn, syn_ack or guess.
    pub(crate) roles: &'static str,
    pub(crate) start: f64,
    pub(crate) end: f64,
    pub(crate) to_server: HalfRow,
    pub(crate) to_client: HalfRow,
    /// The connection is TLS: what its handshake said and how far decryption got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls: Option<TlsRow>,
}

/// A TLS connection's facts (no key material).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TlsRow {
    /// "1.3", "1.2", ...
    pub(crate) version: Option<&'static str>,
    /// The suite's name (or its number in hex).
    pub(crate) cipher_suite: Option<String>,
    pub(crate) sni: Option<String>,
    /// ALPN the client offered, and the one the server chose.
    pub(crate) alpn_offered: Option<String>,
    pub(crate) alpn: Option<String>,
    /// `decrypted`, or why not: `no_key`, `unsupported`, `handshake_not_seen`, `lost`,
    /// `handshake` (the capture ended in it).
    pub(crate) state: &'static str,
    pub(crate) hello_retry: bool,
    pub(crate) resumed: bool,
    pub(crate) records: u64,
    pub(crate) bad_records: u64,
    pub(crate) early_data_records: u64,
    /// Bytes never decrypted, both ways.
    pub(crate) encrypted_bytes: u64,
}

impl TlsRow {
    fn new(info: &TlsInfo, state: TlsState) -> TlsRow {
        TlsRow {
            version: info.version.map(TlsInfo::version_name),
            cipher_suite: info.suite.map(|s| {
                decoder::tls::crypto::suite_name(s)
                    .map_or_else(|| format!("{s:#06x}"), str::to_owned)
            }),
            sni: info.sni.as_deref().map(str::to_owned),
            alpn_offered: info.alpn_offered.as_deref().map(str::to_owned),
            alpn: info.alpn.as_deref().map(str::to_owned),
            state: state.name(),
            hello_retry: info.hello_retry,
            resumed: info.resumed,
            records: info.records,
            bad_records: info.bad_records,
            early_data_records: info.early_data_records,
            encrypted_bytes: info.encrypted_bytes.iter().sum(),
        }
    }
}

fn reason_name(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Fin => "fin",
        CloseReason::Rst => "rst",
        CloseReason::Idle => "idle",
        CloseReason::Evicted => "evicted",
        CloseReason::Reused => "reused",
        CloseReason::EndOfCapture => "open",
    }
}

/// Collects connection rows from stream events.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    pub(crate) rows: Vec<ConnRow>,
    /// Connections past `MAX_ROWS`, counted only.
    pub(crate) folded: u64,
    first_id: Option<u64>,
}

impl Connections {
    /// Adds what the decoder reported of each TLS connection.
    pub(crate) fn set_tls(&mut self, kept: Vec<(ConnId, TlsInfo, TlsState)>) {
        for (id, info, state) in kept {
            if let Some(row) = self.row(id) {
                row.tls = Some(TlsRow::new(&info, state));
            }
        }
    }

    fn row(&mut self, id: ConnId) -> Option<&mut ConnRow> {
        let first = self.first_id?;
        let idx = usize::try_from(id.get().checked_sub(first)?).ok()?;
        self.rows.get_mut(idx)
    }
}

impl StreamSink for Connections {
    fn on_event(&mut self, ev: StreamEvent<'_>) {
        let ts = |t: Nanos| t.as_secs_f64();
        match ev.kind {
            EventKind::Open(info) => {
                if self.rows.len() >= MAX_ROWS {
                    self.folded += 1;
                    return;
                }
                self.first_id.get_or_insert(ev.conn.get());
                self.rows.push(ConnRow {
                    id: ev.conn.get(),
                    client: info.client,
                    server: info.server,
                    roles: match info.roles {
                        RoleSource::Syn => "syn",
                        RoleSource::SynAck => "syn_ack",
                        RoleSource::Guess => "guess",
                    },
                    start: ts(ev.ts),
                    end: ts(ev.ts),
                    to_server: HalfRow::new(),
                    to_client: HalfRow::new(),
                    tls: None,
                });
            }
            EventKind::Close { reason, stats } => {
                if let Some(row) = self.row(ev.conn) {
                    row.end = row.end.max(ts(ev.ts));
                    match ev.dir {
                        Dir::ToServer => row.to_server.set(stats, reason),
                        Dir::ToClient => row.to_client.set(stats, reason),
                    }
                }
            }
            EventKind::Data(_) | EventKind::Gap { .. } => {
                if let Some(row) = self.row(ev.conn) {
                    row.end = row.end.max(ts(ev.ts));
                }
            }
        }
    }
}

/// Renders the rows as an aligned table.
pub(crate) fn render_table(conns: &Connections) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let header = [
        "CLIENT",
        "SERVER",
        "PKTS>",
        "BYTES>",
        "PKTS<",
        "BYTES<",
        "GAPS",
        "GAP BYTES",
        "DURATION",
        "END",
        "TLS",
    ];
    let tls = conns.rows.iter().any(|r| r.tls.is_some());
    let mut lines: Vec<[String; 11]> = vec![header.map(String::from)];
    for r in &conns.rows {
        let client = if r.roles == "guess" {
            format!("{}?", r.client)
        } else {
            r.client.to_string()
        };
        lines.push([
            client,
            r.server.to_string(),
            r.to_server.packets.to_string(),
            r.to_server.bytes.to_string(),
            r.to_client.packets.to_string(),
            r.to_client.bytes.to_string(),
            (r.to_server.gaps + r.to_client.gaps).to_string(),
            (r.to_server.gap_bytes + r.to_client.gap_bytes).to_string(),
            format!("{:.3}s", r.end - r.start),
            format!(
                "{}/{}",
                r.to_server.end.unwrap_or("-"),
                r.to_client.end.unwrap_or("-")
            ),
            r.tls.as_ref().map_or_else(
                || "-".to_owned(),
                |t| {
                    format!(
                        "{} {}{}",
                        t.version.unwrap_or("?"),
                        t.state,
                        t.sni
                            .as_deref()
                            .map(|s| format!(" {s}"))
                            .unwrap_or_default()
                    )
                },
            ),
        ]);
    }
    if !tls {
        for l in &mut lines {
            l[10].clear();
        }
    }
    let mut widths = [0usize; 11];
    for l in &lines {
        for (w, cell) in widths.iter_mut().zip(l) {
            *w = (*w).max(cell.len());
        }
    }
    for l in &lines {
        for (i, (cell, w)) in l.iter().zip(widths).enumerate() {
            // Addresses left-aligned, numbers right-aligned.
            let sep = if i + 1 == l.len() { "" } else { "  " };
            if !(2..9).contains(&i) {
                let _ = write!(out, "{cell:<w$}{sep}");
            } else {
                let _ = write!(out, "{cell:>w$}{sep}");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    if conns.folded > 0 {
        let _ = writeln!(
            out,
            "... and {} more connections (not listed)",
            conns.folded
        );
    }
    out
}

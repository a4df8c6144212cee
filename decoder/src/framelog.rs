//! The HTTP/2 frames of one connection, in order, as a "follow stream" view shows them: each
//! frame's type, stream, flags, length, time and what it said, header blocks as their decoded
//! fields with the HPACK representation of each (indexed, literal, an entry from before the
//! capture). Bounded: the newest frames are kept, the oldest dropped (and counted) past
//! [`FrameLogLimits`]. Secrets are redacted as everywhere else ([`crate::metadata`]).

use std::collections::VecDeque;

use types::Nanos;

use crate::h2::event::{Block, FrameSeen, Side};
use crate::h2::frame::{ErrorCode, GoAway, Head, Kind, Ping, RstStream, SettingId, Settings};
use crate::h2::frame::{Priority, WindowUpdate};
use crate::hpack::{HeaderList, Rep, Text};

/// Bounds of one log.
#[derive(Debug, Clone, Copy)]
pub struct FrameLogLimits {
    /// Frames kept (the newest).
    pub max_frames: usize,
    /// Bytes of header names and values kept, over all the frames kept.
    pub max_bytes: usize,
}

impl Default for FrameLogLimits {
    fn default() -> Self {
        FrameLogLimits {
            max_frames: 10_000,
            max_bytes: 8 << 20,
        }
    }
}

/// Which frames a log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every frame of the connection.
    Connection,
    /// The frames of one stream, and those of the connection itself (stream 0) from `since` on
    /// (a call's view: its frames, and the SETTINGS, PINGs, WINDOW_UPDATEs and GOAWAYs around
    /// it).
    Stream {
        /// The stream.
        id: u32,
        /// Stream-0 frames before this are left out.
        since: Nanos,
    },
}

impl Scope {
    fn wants(self, stream: u32, ts: Nanos) -> bool {
        match self {
            Scope::Connection => true,
            Scope::Stream { id, since } => stream == id || (stream == 0 && ts >= since),
        }
    }
}

/// One field of a header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLine {
    /// The name (`<unknown e.p>` for a name from before the capture).
    pub name: String,
    /// The value as shown (redacted, base64 for `-bin`, cut when long; `None`: from before
    /// the capture).
    pub value: Option<String>,
    /// How it was represented.
    pub rep: Rep,
}

/// A decoded header block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderBlock {
    /// The fields in order.
    pub fields: Vec<HeaderLine>,
    /// Fields were dropped past the header list bound.
    pub truncated: bool,
    /// A dynamic table size update the block carried.
    pub size_update: Option<u32>,
}

/// What a frame said, beyond its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameDetail {
    /// Nothing more to say (CONTINUATION within a block, PUSH_PROMISE, ...).
    None,
    /// DATA: its data bytes (the payload less padding).
    Data {
        /// Data bytes.
        data_len: u32,
    },
    /// The frame ended a header block, decoded.
    Headers(Box<HeaderBlock>),
    /// The frame ended a header block that did not decode.
    HpackFailed,
    /// SETTINGS.
    Settings {
        /// An acknowledgement.
        ack: bool,
        /// The parameters, in order.
        values: Vec<(SettingId, u32)>,
    },
    /// RST_STREAM.
    Reset(ErrorCode),
    /// GOAWAY.
    GoAway {
        /// Last stream processed.
        last_stream: u32,
        /// Error code.
        code: ErrorCode,
        /// Debug data (cut at 200 bytes, as text).
        debug: String,
    },
    /// WINDOW_UPDATE.
    WindowUpdate(u32),
    /// PING.
    Ping {
        /// An answer.
        ack: bool,
        /// Its opaque data.
        data: [u8; 8],
    },
    /// PRIORITY.
    Priority {
        /// The stream depended on.
        depends_on: u32,
        /// Weight (1-256).
        weight: u16,
    },
    /// The payload was not read: too large, or a type HTTP/2 does not define.
    Skipped,
    /// The payload did not parse.
    Malformed,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// Sender.
    pub from: Side,
    /// When its first byte arrived.
    pub ts: Nanos,
    /// Its header (type, flags, stream, payload length).
    pub head: Head,
    /// What it said.
    pub detail: FrameDetail,
}

impl FrameRecord {
    /// The flags the frame's type defines, by name (`END_STREAM END_HEADERS`, ...).
    pub fn flag_names(&self) -> String {
        let f = self.head.flags.0;
        let names: &[(u8, &str)] = match self.head.kind {
            Kind::DATA => &[(0x1, "END_STREAM"), (0x8, "PADDED")],
            Kind::HEADERS => &[
                (0x1, "END_STREAM"),
                (0x4, "END_HEADERS"),
                (0x8, "PADDED"),
                (0x20, "PRIORITY"),
            ],
            Kind::SETTINGS | Kind::PING => &[(0x1, "ACK")],
            Kind::CONTINUATION => &[(0x4, "END_HEADERS")],
            Kind::PUSH_PROMISE => &[(0x4, "END_HEADERS"), (0x8, "PADDED")],
            _ => &[],
        };
        let mut out = String::new();
        for (bit, name) in names {
            if f & bit != 0 {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(name);
            }
        }
        out
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<FrameRecord>()
            + match &self.detail {
                FrameDetail::Headers(b) => b
                    .fields
                    .iter()
                    .map(|l| {
                        l.name.len()
                            + l.value.as_ref().map_or(0, String::len)
                            + std::mem::size_of::<HeaderLine>()
                    })
                    .sum(),
                FrameDetail::Settings { values, .. } => values.len() * 8,
                FrameDetail::GoAway { debug, .. } => debug.len(),
                _ => 0,
            }
    }
}

/// The frames kept, oldest first.
#[derive(Debug, Clone)]
pub struct FrameLog {
    scope: Scope,
    limits: FrameLogLimits,
    frames: VecDeque<FrameRecord>,
    bytes: usize,
    /// Frames of the scope dropped (the oldest) to stay within the bounds.
    pub dropped: u64,
}

impl FrameLog {
    /// An empty log of the frames of `scope`.
    pub fn new(scope: Scope, limits: FrameLogLimits) -> FrameLog {
        FrameLog {
            scope,
            limits,
            frames: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Which frames it keeps.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The frames kept, oldest first.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = &FrameRecord> + '_ {
        self.frames.iter()
    }

    /// Frames kept.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame is kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Takes one frame, if the scope wants it.
    pub fn push(&mut self, f: &FrameSeen<'_>) {
        if !self.scope.wants(f.head.stream, f.ts) {
            return;
        }
        let rec = FrameRecord {
            from: f.from,
            ts: f.ts,
            head: f.head,
            detail: detail(f),
        };
        self.bytes += rec.bytes();
        self.frames.push_back(rec);
        while self.frames.len() > self.limits.max_frames.max(1)
            || (self.bytes > self.limits.max_bytes && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.bytes().min(self.bytes);
                self.dropped += 1;
            }
        }
    }
}

fn detail(f: &FrameSeen<'_>) -> FrameDetail {
    let head = &f.head;
    match f.block {
        Block::Decoded(list) => return FrameDetail::Headers(Box::new(header_block(list))),
        Block::Failed => return FrameDetail::HpackFailed,
        Block::None => {}
    }
    if head.kind == Kind::DATA {
        return FrameDetail::Data {
            data_len: f.data_len,
        };
    }
    let known = matches!(
        head.kind,
        Kind::HEADERS
            | Kind::PRIORITY
            | Kind::RST_STREAM
            | Kind::SETTINGS
            | Kind::PUSH_PROMISE
            | Kind::PING
            | Kind::GOAWAY
            | Kind::WINDOW_UPDATE
            | Kind::CONTINUATION
    );
    if !known || (f.payload.len() as u64) < u64::from(head.len) {
        return FrameDetail::Skipped;
    }
    let p = f.payload;
    let parsed = match head.kind {
        Kind::SETTINGS => Settings::load(head, p).map(|s| FrameDetail::Settings {
            ack: s.ack,
            values: s.iter().collect(),
        }),
        Kind::RST_STREAM => RstStream::load(head, p).map(|r| FrameDetail::Reset(r.code)),
        Kind::GOAWAY => GoAway::load(head, p).map(|g| FrameDetail::GoAway {
            last_stream: g.last_stream,
            code: g.code,
            debug: String::from_utf8_lossy(&g.debug[..g.debug.len().min(200)]).into_owned(),
        }),
        Kind::WINDOW_UPDATE => {
            WindowUpdate::load(head, p).map(|w| FrameDetail::WindowUpdate(w.increment))
        }
        Kind::PING => Ping::load(head, p).map(|g| FrameDetail::Ping {
            ack: g.ack,
            data: g.data,
        }),
        Kind::PRIORITY => Priority::load(head, p).map(|x| FrameDetail::Priority {
            depends_on: x.depends_on,
            weight: u16::from(x.weight) + 1,
        }),
        _ => Ok(FrameDetail::None),
    };
    parsed.unwrap_or(FrameDetail::Malformed)
}

fn header_block(list: &HeaderList) -> HeaderBlock {
    let fields = list
        .iter()
        .map(|f| {
            let name = match f.name {
                Text::Bytes(n) => String::from_utf8_lossy(n).into_owned(),
                Text::Unknown(id) => format!("<unknown {id}>"),
            };
            let value = match f.value {
                Text::Bytes(v) => Some(crate::metadata::shown_value(&name, v, f.sensitive)),
                Text::Unknown(_) => None,
            };
            HeaderLine {
                name,
                value,
                rep: f.rep,
            }
        })
        .collect();
    HeaderBlock {
        fields,
        truncated: list.truncated,
        size_update: list.size_update,
    }
}

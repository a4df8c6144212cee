//! The frames view: the HTTP/2 frames of a call or a connection in order (a "follow stream"
//! view), each frame a line (time, direction, type, stream, flags, length, what it said) and a
//! header block's fields under it with the HPACK representation of each.

use decoder::framelog::{FrameDetail, FrameLog, FrameRecord, Scope};
use decoder::h2::frame::Kind;
use decoder::hpack::{Indexed, Indexing, Rep};
use decoder::{Nanos, Side};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::fmt;

const DIM: Style = Style::new().fg(Color::DarkGray);

/// The frames shown, as lines.
#[derive(Debug, Clone)]
pub struct FramesShown {
    /// What they are the frames of.
    pub title: String,
    /// One line per frame, the header fields of a block under it.
    pub lines: Vec<Line<'static>>,
    /// Frames listed.
    pub frames: usize,
}

/// How a field was represented, in words.
pub fn rep_text(rep: Rep) -> String {
    let table = |t: Indexed| match t {
        Indexed::Static => "static",
        Indexed::Dynamic => "dynamic",
        Indexed::Unknown => "unknown pre-capture entry",
    };
    match rep {
        Rep::Indexed { index, table: t } => format!("indexed {index} ({})", table(t)),
        Rep::Literal {
            name,
            indexing,
            huffman,
        } => {
            let rule = match indexing {
                Indexing::Incremental => "literal, incremental indexing",
                Indexing::Without => "literal, without indexing",
                Indexing::Never => "literal, never indexed",
            };
            let name = match name {
                Some((i, t)) => format!("name indexed {i} ({})", table(t)),
                None => "literal name".to_owned(),
            };
            let h = if huffman { ", huffman" } else { "" };
            format!("{rule}; {name}{h}")
        }
        Rep::Plain => "HTTP/1.1".to_owned(),
    }
}

fn arrow(from: Side) -> &'static str {
    match from {
        Side::Client => "C→S",
        Side::Server => "S→C",
    }
}

/// What a frame said, in a few words.
pub fn summary(f: &FrameRecord) -> String {
    match &f.detail {
        FrameDetail::None => String::new(),
        FrameDetail::Data { data_len } if *data_len != f.head.len => {
            format!("{data_len} data bytes (padded)")
        }
        FrameDetail::Data { data_len } => format!("{data_len} data bytes"),
        FrameDetail::Headers(b) => {
            let mut s = fmt::plural(b.fields.len() as u64, "field");
            if let Some(n) = b.size_update {
                s.push_str(&format!(", table size update {n}"));
            }
            if b.truncated {
                s.push_str(", fields past the bound dropped");
            }
            s
        }
        FrameDetail::HpackFailed => "header block did not decode (HPACK error)".to_owned(),
        FrameDetail::Settings { ack: true, .. } => String::new(),
        FrameDetail::Settings { values, .. } if values.is_empty() => "(no parameters)".into(),
        FrameDetail::Settings { values, .. } => values
            .iter()
            .map(|(id, v)| format!("{}={v}", id.name()))
            .collect::<Vec<_>>()
            .join(" "),
        FrameDetail::Reset(code) => code.name().to_owned(),
        FrameDetail::GoAway {
            last_stream,
            code,
            debug,
        } => {
            let mut s = format!("last stream {last_stream}, {}", code.name());
            if !debug.is_empty() {
                s.push_str(&format!(", \"{debug}\""));
            }
            s
        }
        FrameDetail::WindowUpdate(n) => format!("+{n}"),
        FrameDetail::Ping { data, .. } => data.iter().map(|b| format!("{b:02x}")).collect(),
        FrameDetail::Priority { depends_on, weight } => {
            format!("depends on {depends_on}, weight {weight}")
        }
        FrameDetail::Skipped => "payload not read (too large, or an unknown type)".to_owned(),
        FrameDetail::Malformed => "malformed payload".to_owned(),
    }
}

/// Time of `ts` from `origin`, to the microsecond.
fn offset(ts: Nanos, origin: Nanos) -> String {
    match ts.checked_since(origin) {
        Some(d) => format!("+{:.6}", d.as_secs_f64()),
        None => format!("-{:.6}", (origin - ts).as_secs_f64()),
    }
}

/// The lines of `log`, times from `origin` (the connection's first packet).
pub fn build(title: String, log: &FrameLog, origin: Nanos) -> FramesShown {
    let mut lines = Vec::with_capacity(log.len() + 2);
    let scope = match log.scope() {
        Scope::Connection => "every frame of the connection".to_owned(),
        Scope::Stream { id, .. } => {
            format!("the frames of stream {id}, and the connection's (stream 0) from its start")
        }
    };
    lines.push(Line::from(Span::styled(
        format!(
            "{}: {scope}; seconds from the connection's first packet",
            fmt::plural(log.len() as u64, "frame")
        ),
        DIM,
    )));
    if log.dropped > 0 {
        lines.push(Line::from(Span::styled(
            format!("{} older frames not kept", fmt::count(log.dropped)),
            Style::new().fg(Color::Yellow),
        )));
    }
    for f in log.frames() {
        let kind_style = match f.head.kind {
            Kind::HEADERS | Kind::CONTINUATION => Style::new().fg(Color::Cyan),
            Kind::RST_STREAM | Kind::GOAWAY => Style::new().fg(Color::Red),
            Kind::DATA => Style::new(),
            _ => Style::new().fg(Color::Magenta),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:>12} ", offset(f.ts, origin)), DIM),
            Span::raw(format!("{} ", arrow(f.from))),
            Span::styled(
                format!("{:<13}", f.head.kind.name()),
                kind_style.add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" s{:<5} len {:<6} ", f.head.stream, f.head.len)),
            Span::styled(
                format!("{} ", f.flag_names()),
                Style::new().fg(Color::Yellow),
            ),
            Span::raw(summary(f)),
        ]));
        if let FrameDetail::Headers(b) = &f.detail {
            for h in &b.fields {
                let value = match &h.value {
                    Some(v) => Span::raw(v.clone()),
                    None => Span::styled("<unknown: from before the capture>", DIM),
                };
                lines.push(Line::from(vec![
                    Span::raw("      "),
                    Span::styled(h.name.clone(), Style::new().fg(Color::Green)),
                    Span::raw(": "),
                    value,
                    Span::styled(format!("   [{}]", rep_text(h.rep)), DIM),
                ]));
            }
        }
    }
    FramesShown {
        title,
        lines,
        frames: log.len(),
    }
}

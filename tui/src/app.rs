//! UI state and what each key does (the update half; `view` draws).

use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::detail::{self, Decode, Detail};
use crate::filter::Filter;
use crate::model::Model;

/// The views, in Tab order (the call detail opens from Calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// One row per method.
    Methods,
    /// Recent calls and open streams.
    Calls,
    /// Connections and how services spread over servers.
    Connections,
    /// One call.
    Detail,
    /// The HTTP/2 frames of a call or a connection.
    Frames,
    /// The findings: which gRPC failure modes the traffic shows.
    Findings,
}

/// Sort columns of the Methods view, in `s` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodSort {
    /// Calls per second.
    Rate,
    /// Total calls.
    Calls,
    /// Error rate.
    Errors,
    /// p50 latency.
    P50,
    /// p90 latency.
    P90,
    /// p99 latency.
    P99,
    /// Open streams.
    Open,
    /// Method name.
    Name,
}

impl MethodSort {
    const ALL: [MethodSort; 8] = [
        MethodSort::Rate,
        MethodSort::Calls,
        MethodSort::Errors,
        MethodSort::P50,
        MethodSort::P90,
        MethodSort::P99,
        MethodSort::Open,
        MethodSort::Name,
    ];

    /// Whether the order is ascending (the smallest, or A, first) before `r` reverses it.
    pub fn ascending(self) -> bool {
        self == MethodSort::Name
    }

    /// Column title.
    pub fn name(self) -> &'static str {
        match self {
            MethodSort::Rate => "calls/s",
            MethodSort::Calls => "calls",
            MethodSort::Errors => "err%",
            MethodSort::P50 => "p50",
            MethodSort::P90 => "p90",
            MethodSort::P99 => "p99",
            MethodSort::Open => "open",
            MethodSort::Name => "method",
        }
    }
}

/// Sort orders of the Calls view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSort {
    /// Most recent first.
    Newest,
    /// Slowest first.
    Duration,
    /// By method name.
    Method,
    /// By status (errors first).
    Status,
}

impl CallSort {
    const ALL: [CallSort; 4] = [
        CallSort::Newest,
        CallSort::Duration,
        CallSort::Method,
        CallSort::Status,
    ];

    /// Whether the column it sorts by is ascending (the smallest, or A, first) before `r`
    /// reverses it: the newest first is the smallest "Ago" first.
    pub fn ascending(self) -> bool {
        matches!(self, CallSort::Newest | CallSort::Method)
    }

    /// The Calls column it sorts by.
    pub fn column(self) -> &'static str {
        match self {
            CallSort::Newest => "Ago",
            CallSort::Duration => "Duration",
            CallSort::Method => "Method",
            CallSort::Status => "Status",
        }
    }

    /// Name shown.
    pub fn name(self) -> &'static str {
        match self {
            CallSort::Newest => "newest",
            CallSort::Duration => "duration",
            CallSort::Method => "method",
            CallSort::Status => "status",
        }
    }
}

/// A row of the Methods view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodLine {
    /// A service heading (grouped mode).
    Service(Arc<str>),
    /// A method, by model index.
    Method(usize),
}

/// A row of the Calls view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLine {
    /// `model.open[i]`.
    Open(usize),
    /// `model.recent[i]`.
    Done(usize),
}

/// Choosing a range on the capture timeline (the Methods panel's sparklines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selecting {
    /// The column under the cursor: the second it starts at.
    pub cursor: u64,
    /// The other end, once marked.
    pub anchor: Option<u64>,
}

/// How the timeline was last drawn: the second its first column starts at, the seconds each
/// column spans, the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimelineCols {
    /// Second the first column starts at.
    pub start: u64,
    /// Seconds per column.
    pub step: u64,
    /// Columns.
    pub cols: u64,
}

impl TimelineCols {
    /// The start of the column holding second `sec`.
    pub fn snap(&self, sec: u64) -> u64 {
        let step = self.step.max(1);
        let last = self.start + step * self.cols.saturating_sub(1);
        (self.start + (sec.saturating_sub(self.start)) / step * step).min(last)
    }

    /// The column of second `sec`.
    pub fn col(&self, sec: u64) -> u64 {
        (self.snap(sec) - self.start) / self.step.max(1)
    }
}

/// What to take from the capture files: the packets between two addresses from one time to
/// another, into a file named after `name`.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Client address.
    pub client: std::net::SocketAddr,
    /// Server address.
    pub server: std::net::SocketAddr,
    /// The connection's first packet.
    pub from: decoder::Nanos,
    /// The last packet wanted (a call's end); none: to the connection's end.
    pub until: Option<decoder::Nanos>,
    /// The file's name, without directory or extension.
    pub name: String,
}

/// The writer's function: a line for the user, or why not.
pub type WriteFn = dyn Fn(WriteRequest) -> Result<String, String> + Send + Sync;

/// Which frames to decode again from the capture files: a connection's (from its first packet
/// to `until`), those of `scope`.
#[derive(Debug, Clone)]
pub struct FramesRequest {
    /// Client address.
    pub client: std::net::SocketAddr,
    /// Server address.
    pub server: std::net::SocketAddr,
    /// The connection's first packet.
    pub from: decoder::Nanos,
    /// The last packet wanted (a call's end); none: to the connection's end.
    pub until: Option<decoder::Nanos>,
    /// The frames kept.
    pub scope: decoder::framelog::Scope,
}

/// The frame reader's function: the frames, or why not.
pub type FramesFn =
    dyn Fn(FramesRequest) -> Result<decoder::framelog::FrameLog, String> + Send + Sync;

/// The function that finds the findings of the calls that ended from one capture time to
/// another (inclusive), decoding the files again: the findings, or why not.
pub type FindingsFn = dyn Fn((decoder::Nanos, decoder::Nanos)) -> Result<Vec<decoder::findings::Finding>, String>
    + Send
    + Sync;

/// What the UI takes from the capture files again (given by the binary, which knows them): a
/// call's or a connection's packets, written to a file, its frames, and a range's findings.
#[derive(Clone)]
pub struct CaptureFiles {
    /// Writes packets.
    pub write: std::sync::Arc<WriteFn>,
    /// Decodes frames.
    pub frames: std::sync::Arc<FramesFn>,
    /// Finds the findings of a range.
    pub findings: std::sync::Arc<FindingsFn>,
}

impl std::fmt::Debug for CaptureFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaptureFiles")
    }
}

/// Work on the capture files under way on a thread of its own.
#[derive(Debug)]
pub enum Job {
    /// Writing packets: a line for the user.
    Write(std::thread::JoinHandle<Result<String, String>>),
    /// Decoding frames, for the frames view titled so.
    Frames(
        std::thread::JoinHandle<Result<decoder::framelog::FrameLog, String>>,
        String,
        decoder::Nanos,
    ),
    /// Finding the findings of a range (seconds of capture time, as [`Model::range`]).
    Findings(
        std::thread::JoinHandle<Result<Vec<decoder::findings::Finding>, String>>,
        (u64, u64),
    ),
}

impl Job {
    fn is_finished(&self) -> bool {
        match self {
            Job::Write(h) => h.is_finished(),
            Job::Frames(h, ..) => h.is_finished(),
            Job::Findings(h, ..) => h.is_finished(),
        }
    }
}

/// The findings of a range (seconds of capture time), found from the files again, or why not.
pub type RangeFindings = (
    (u64, u64),
    Result<Arc<[decoder::findings::Finding]>, String>,
);

/// A call or a connection chosen for `W` or `f`.
struct Target {
    client: std::net::SocketAddr,
    server: std::net::SocketAddr,
    /// The connection's first packet.
    from: decoder::Nanos,
    /// The call (none: the whole connection).
    call: Option<Box<decoder::CallRecord>>,
    /// A file name for it.
    name: String,
}

/// What the mouse did on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MousePhase {
    /// Button pressed.
    Down,
    /// Moved with the button held.
    Drag,
    /// Button released.
    Up,
}

/// The whole UI state.
#[derive(Debug)]
pub struct App {
    /// What is known.
    pub model: Model,
    /// The view shown.
    pub view: View,
    /// Sort of the Methods view.
    pub method_sort: MethodSort,
    /// Sort of the Calls view.
    pub call_sort: CallSort,
    /// Reverse the Methods sort.
    pub method_reverse: bool,
    /// Reverse the Calls sort.
    pub call_reverse: bool,
    /// Methods grouped under their service.
    pub grouped: bool,
    /// Filter of the Methods view (substring of the name).
    pub method_filter: Filter,
    /// Filter of the Calls view.
    pub call_filter: Filter,
    /// The filter being typed, if any.
    pub input: Option<String>,
    /// Help shown.
    pub help: bool,
    /// Paused (a replay stops reading; live events beyond the channel are dropped).
    pub paused: bool,
    /// Selected row per list view (Methods, Calls, Connections).
    pub selected: [usize; 4],
    /// The call open in the detail view.
    pub detail: Option<Detail>,
    /// First line of the detail shown.
    pub scroll: usize,
    /// Decoding of messages for the detail view.
    pub decode: Decode,
    /// Quit asked.
    pub quit: bool,
    /// UI events dropped so far.
    pub dropped: u64,
    /// Rows as last drawn (so keys act on what the user saw).
    pub method_lines: Vec<MethodLine>,
    /// Rows as last drawn.
    pub call_lines: Vec<CallLine>,
    /// Connection ids as last drawn.
    pub conn_lines: Vec<decoder::ConnId>,
    /// Rows of the current list the screen shows at once (for PgUp/PgDn).
    pub page: usize,
    /// Scroll state of the three lists.
    pub tables: [ratatui::widgets::TableState; 4],
    /// A range being chosen on the timeline.
    pub selecting: Option<Selecting>,
    /// The ended call the detail shows (for the commands made from it).
    pub detail_call: Option<Box<decoder::CallRecord>>,
    /// A box over the view (title, text) until the next key.
    pub popup: Option<(String, String)>,
    /// Text for the terminal's clipboard (OSC 52), taken by the terminal loop.
    pub clipboard: Option<String>,
    /// Takes a call's or a connection's packets and frames again from the capture files (a
    /// replay's), when there are files.
    pub files: Option<CaptureFiles>,
    /// Work on the files under way.
    pub job: Option<Job>,
    /// The frames view's content.
    pub frames: Option<crate::frames::FramesShown>,
    /// First line of the frames view shown.
    pub frames_scroll: usize,
    /// The view the frames view goes back to.
    pub frames_back: View,
    /// The findings of the range last chosen, once found from the files.
    pub range_findings: Option<RangeFindings>,
    /// The timeline as last drawn.
    pub timeline: TimelineCols,
    /// Where the timeline's sparkline was last drawn (for the mouse): x, y, width.
    pub timeline_at: Option<(u16, u16, u16)>,
}

impl App {
    /// The sort arrow of a column: ▼ when its values go from the largest down, ▲ from the
    /// smallest up, whatever the column.
    pub fn arrow(ascending: bool, reversed: bool) -> &'static str {
        if ascending != reversed { "▲" } else { "▼" }
    }

    /// A new UI over `model`.
    pub fn new(model: Model, decode: Decode) -> App {
        App {
            model,
            view: View::Methods,
            method_sort: MethodSort::Rate,
            call_sort: CallSort::Newest,
            method_reverse: false,
            call_reverse: false,
            grouped: false,
            method_filter: Filter::default(),
            call_filter: Filter::default(),
            input: None,
            help: false,
            paused: false,
            selected: [0; 4],
            detail: None,
            scroll: 0,
            decode,
            quit: false,
            dropped: 0,
            method_lines: Vec::new(),
            call_lines: Vec::new(),
            conn_lines: Vec::new(),
            page: 10,
            tables: Default::default(),
            selecting: None,
            detail_call: None,
            popup: None,
            clipboard: None,
            files: None,
            job: None,
            frames: None,
            frames_scroll: 0,
            frames_back: View::Calls,
            range_findings: None,
            timeline: TimelineCols::default(),
            timeline_at: None,
        }
    }

    fn list_index(&self) -> Option<usize> {
        match self.view {
            View::Methods => Some(0),
            View::Calls => Some(1),
            View::Connections => Some(2),
            View::Findings => Some(3),
            View::Detail | View::Frames => None,
        }
    }

    fn list_len(&self) -> usize {
        match self.view {
            View::Methods => self.method_lines.len(),
            View::Calls => self.call_lines.len(),
            View::Connections => self.conn_lines.len(),
            View::Findings => self.findings_shown().0.len(),
            View::Detail | View::Frames => 0,
        }
    }

    /// Moves the selection (or the detail scroll) by `delta` rows.
    fn move_by(&mut self, delta: isize) {
        match self.list_index() {
            Some(i) => {
                let len = self.list_len();
                let cur = self.selected[i].min(len.saturating_sub(1));
                self.selected[i] = cur.saturating_add_signed(delta).min(len.saturating_sub(1));
            }
            None if self.view == View::Frames => {
                self.frames_scroll = self.frames_scroll.saturating_add_signed(delta);
            }
            None => self.scroll = self.scroll.saturating_add_signed(delta),
        }
    }

    fn switch(&mut self, forward: bool) {
        let order = [
            View::Methods,
            View::Calls,
            View::Connections,
            View::Findings,
        ];
        let at = order.iter().position(|v| *v == self.view).unwrap_or(1);
        let next = if forward {
            at + 1
        } else {
            at + order.len() - 1
        };
        self.view = order[next % order.len()];
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        let ctrl_u =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('u');
        if let Some(text) = self.input.as_mut() {
            match key.code {
                // Ctrl-U: the whole line goes, as in a shell.
                _ if ctrl_u => {
                    text.clear();
                    self.set_filter(String::new());
                }
                KeyCode::Enter => self.input = None,
                KeyCode::Esc => {
                    self.input = None;
                    self.set_filter(String::new());
                }
                KeyCode::Backspace => {
                    text.pop();
                    let t = text.clone();
                    self.set_filter(t);
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    let t = text.clone();
                    self.set_filter(t);
                }
                _ => {}
            }
            return;
        }
        if self.popup.take().is_some() {
            return;
        }
        if self.help {
            self.help = false;
            if matches!(key.code, KeyCode::Char('q')) {
                self.quit = true;
            }
            return;
        }
        if ctrl_u {
            self.set_filter(String::new());
            return;
        }
        if self.selecting.is_some() && self.on_select_key(key.code) {
            return;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('w') => self.model.choose_window(self.model.window.next()),
            KeyCode::Char('c') if self.view == View::Detail => self.copy_grpcurl(),
            KeyCode::Char('W') => self.write_packets(),
            KeyCode::Char('f') => self.show_frames(),
            KeyCode::Char('v') => self.start_selecting(),
            KeyCode::Char('x') => self.clear_range(),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('p') => self.paused = !self.paused,
            KeyCode::Tab => self.switch(true),
            KeyCode::BackTab => self.switch(false),
            KeyCode::Char('1') => self.view = View::Methods,
            KeyCode::Char('2') => self.view = View::Calls,
            KeyCode::Char('3') => self.view = View::Connections,
            KeyCode::Char('4') => self.view = View::Findings,
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown | KeyCode::Char(' ') => self.move_by(self.page.max(1) as isize),
            KeyCode::PageUp => self.move_by(-(self.page.max(1) as isize)),
            KeyCode::Home => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::Char('/')
                if !matches!(self.view, View::Detail | View::Frames | View::Findings) =>
            {
                let cur = match self.view {
                    View::Methods => self.method_filter.text().to_owned(),
                    _ => self.call_filter.text().to_owned(),
                };
                if self.view == View::Connections {
                    self.view = View::Calls;
                }
                self.input = Some(cur);
            }
            KeyCode::Char('s') => self.next_sort(),
            KeyCode::Char('S') | KeyCode::Char('r') => match self.view {
                View::Methods => self.method_reverse = !self.method_reverse,
                View::Calls => self.call_reverse = !self.call_reverse,
                _ => {}
            },
            KeyCode::Char('g') if self.view == View::Methods => self.grouped = !self.grouped,
            KeyCode::Enter => self.enter(),
            KeyCode::Esc => self.back(),
            _ => {}
        }
    }

    /// The call or connection `W` and `f` act on: the detail's call, the selected ended call,
    /// or the selected connection. `Err`: what to choose instead.
    fn target(&self) -> Result<Target, &'static str> {
        let call = match self.view {
            View::Detail => self.detail_call.as_deref().cloned(),
            View::Calls => match self.call_lines.get(self.selected[1]) {
                Some(CallLine::Done(i)) => self.model.recent.get(*i).map(|c| (**c).clone()),
                _ => None,
            },
            _ => None,
        };
        match (self.view, call) {
            (View::Connections, _) => {
                let c = self
                    .conn_lines
                    .get(self.selected[2])
                    .and_then(|id| self.model.conns.get(id))
                    .ok_or("choose a connection")?;
                Ok(Target {
                    client: c.client,
                    server: c.server,
                    from: c.opened,
                    call: None,
                    name: format!("grpctap-conn{}", c.id.get()),
                })
            }
            (_, Some(call)) => {
                let opened = self.model.conns.get(&call.conn).map(|c| c.opened);
                Ok(Target {
                    client: call.client,
                    server: call.server,
                    from: opened.or(call.start).unwrap_or(decoder::Nanos::ZERO),
                    name: format!("grpctap-conn{}-stream{}", call.conn.get(), call.stream_id),
                    call: Some(Box::new(call)),
                })
            }
            _ => Err("choose an ended call (Calls view, or its detail) or a connection"),
        }
    }

    /// Work on the capture files can start: none under way, and there are files. Else says why
    /// not (in a popup titled `what`) and returns none.
    fn files_for(&mut self, what: &str) -> Option<CaptureFiles> {
        if self.job.is_some() {
            self.popup = Some((
                format!(" {what} "),
                "reading the capture files: wait".into(),
            ));
            return None;
        }
        if self.files.is_none() {
            self.popup = Some((
                format!(" {what} "),
                "a replay's files are read again for this; in a live capture, write the packets with capture -w and replay them".into(),
            ));
        }
        self.files.clone()
    }

    /// The files and the call or connection to work on, or none (and a popup titled `what`
    /// says why).
    fn files_and_target(&mut self, what: &str) -> Option<(CaptureFiles, Target)> {
        let files = self.files_for(what)?;
        match self.target() {
            Ok(t) => Some((files, t)),
            Err(e) => {
                self.popup = Some((format!(" {what} "), e.into()));
                None
            }
        }
    }

    /// `W`: the packets of the call (its connection from its first packet to the call's end)
    /// or of the connection, written to a pcapng on a thread of its own; [`App::poll_job`] says
    /// when it is done.
    fn write_packets(&mut self) {
        let Some((files, t)) = self.files_and_target("write") else {
            return;
        };
        let req = WriteRequest {
            client: t.client,
            server: t.server,
            from: t.from,
            until: t.call.as_ref().and_then(|c| c.end),
            name: t.name,
        };
        self.job = Some(Job::Write(std::thread::spawn(move || (files.write)(req))));
        self.popup = Some((" write ".into(), "writing the packets ...".into()));
    }

    /// `f`: the HTTP/2 frames of the call (its stream's, and the connection's own during it) or
    /// of the connection, decoded again from the capture files on a thread of its own; the
    /// frames view opens when they are read ([`App::poll_job`]).
    fn show_frames(&mut self) {
        let Some((files, t)) = self.files_and_target("frames") else {
            return;
        };
        if t.call.as_ref().is_some_and(|c| c.http1) {
            self.popup = Some((
                " frames ".into(),
                "the call went over HTTP/1.1: it has no HTTP/2 frames".into(),
            ));
            return;
        }
        let (scope, until, title) = match &t.call {
            Some(c) => (
                decoder::framelog::Scope::Stream {
                    id: c.stream_id,
                    since: c.start.unwrap_or(t.from),
                },
                c.end,
                format!(
                    "call {} (conn {} stream {})",
                    c.method.as_deref().unwrap_or("(method unknown)"),
                    c.conn.get(),
                    c.stream_id
                ),
            ),
            None => (
                decoder::framelog::Scope::Connection,
                None,
                format!("connection {} → {}", t.client, t.server),
            ),
        };
        let req = FramesRequest {
            client: t.client,
            server: t.server,
            from: t.from,
            until,
            scope,
        };
        self.job = Some(Job::Frames(
            std::thread::spawn(move || (files.frames)(req)),
            title,
            t.from,
        ));
        self.popup = Some((" frames ".into(), "decoding the frames ...".into()));
    }

    /// The findings the Findings view shows and what they cover: the range's once found from
    /// the files, else those of the whole capture so far (sent by the feeder).
    pub fn findings_shown(&self) -> (Arc<[decoder::findings::Finding]>, String) {
        let whole = || self.model.findings.clone();
        let Some(range) = self.model.range else {
            return (
                whole(),
                "the whole capture so far (choose a range on the timeline for part of it)".into(),
            );
        };
        let name = self.model.scope_name();
        if self.files.is_none() {
            return (
                whole(),
                format!(
                    "the whole capture so far: a {name}'s findings are found by reading a replay's files again (capture -w, then replay)"
                ),
            );
        }
        match &self.range_findings {
            Some((r, Ok(f))) if *r == range => (
                f.clone(),
                format!("the calls that ended in the {name} (the files read again)"),
            ),
            Some((r, Err(e))) if *r == range => (
                whole(),
                format!("the whole capture so far: the {name} could not be read again: {e}"),
            ),
            _ => (
                Arc::from(Vec::new()),
                format!("the {name}: reading the files again ..."),
            ),
        }
    }

    /// In the Findings view with a range chosen: the range's findings, found on a thread of
    /// its own when not found yet (and no other work on the files is under way). Returns true
    /// when it started.
    fn start_range_findings(&mut self) -> bool {
        let (View::Findings, Some(range), Some(files), None) = (
            self.view,
            self.model.range,
            self.files.as_ref(),
            self.job.as_ref(),
        ) else {
            return false;
        };
        if self
            .range_findings
            .as_ref()
            .is_some_and(|(r, _)| *r == range)
        {
            return false;
        }
        const NS: u64 = 1_000_000_000;
        // The range is whole seconds, `to` not in it (as the model counts calls in it).
        let (from, to) = (
            decoder::Nanos(range.0.saturating_mul(NS)),
            decoder::Nanos(range.1.saturating_mul(NS).saturating_sub(1)),
        );
        let find = files.findings.clone();
        self.job = Some(Job::Findings(
            std::thread::spawn(move || find((from, to))),
            range,
        ));
        self.selected[3] = 0;
        true
    }

    /// When work on the files has finished: a write's line shown, the frames view opened, or a
    /// range's findings kept; a range's findings started when the Findings view wants them.
    /// Returns true when one finished or started.
    pub fn poll_job(&mut self) -> bool {
        if self.start_range_findings() {
            return true;
        }
        if !self.job.as_ref().is_some_and(Job::is_finished) {
            return false;
        }
        match self.job.take() {
            Some(Job::Write(h)) => {
                let text = match h.join() {
                    Ok(Ok(line)) => line,
                    Ok(Err(e)) => format!("not written: {e}"),
                    Err(_) => "not written: the writer failed".to_owned(),
                };
                self.popup = Some((" write (any key closes) ".into(), text));
            }
            Some(Job::Frames(h, title, origin)) => match h.join() {
                Ok(Ok(log)) => {
                    self.popup = None;
                    self.frames = Some(crate::frames::build(title, &log, origin));
                    self.frames_scroll = 0;
                    if self.view != View::Frames {
                        self.frames_back = self.view;
                    }
                    self.view = View::Frames;
                }
                Ok(Err(e)) => self.popup = Some((" frames ".into(), format!("no frames: {e}"))),
                Err(_) => {
                    self.popup = Some((" frames ".into(), "no frames: the reader failed".into()))
                }
            },
            Some(Job::Findings(h, range)) => {
                let found = match h.join() {
                    Ok(r) => r.map(Arc::from),
                    Err(_) => Err("the reader failed".to_owned()),
                };
                self.range_findings = Some((range, found));
            }
            None => return false,
        }
        true
    }

    /// `c` in the call detail: the call as a grpcurl command, shown and put on the clipboard.
    fn copy_grpcurl(&mut self) {
        let made = match &self.detail_call {
            Some(c) => detail::grpcurl(c, &self.decode),
            None => Err("the call is still open: it can be made again once it ended".to_owned()),
        };
        self.popup = Some(match made {
            Ok(cmd) => {
                self.clipboard = Some(cmd.clone());
                (
                    " grpcurl (copied to the clipboard by OSC 52; any key closes) ".to_owned(),
                    cmd,
                )
            }
            Err(e) => (" grpcurl ".to_owned(), format!("no command: {e}")),
        });
    }

    /// `v`: a cursor on the capture timeline (the Methods view, over the whole capture), at
    /// the range's start when there is one, else at the newest column.
    fn start_selecting(&mut self) {
        self.view = View::Methods;
        self.model.choose_window(crate::model::Window::Whole);
        let t = self.timeline;
        let at = match self.model.range {
            Some((from, _)) => from,
            None => t.start + t.step.max(1) * t.cols.saturating_sub(1),
        };
        self.selecting = Some(Selecting {
            cursor: t.snap(at),
            anchor: None,
        });
    }

    /// A key while choosing a range; false when it is not about the range.
    fn on_select_key(&mut self, code: KeyCode) -> bool {
        let Some(sel) = self.selecting.as_mut() else {
            return false;
        };
        let t = self.timeline;
        let step = t.step.max(1);
        match code {
            KeyCode::Left | KeyCode::Char('h') => {
                sel.cursor = t.snap(sel.cursor.saturating_sub(step))
            }
            KeyCode::Right | KeyCode::Char('l') => sel.cursor = t.snap(sel.cursor + step),
            KeyCode::Home => sel.cursor = t.start,
            KeyCode::End => sel.cursor = t.snap(u64::MAX / 2),
            KeyCode::Char('v') | KeyCode::Enter => match sel.anchor {
                None => sel.anchor = Some(sel.cursor),
                Some(a) => {
                    let (lo, hi) = (a.min(sel.cursor), a.max(sel.cursor));
                    self.set_range(Some((lo, hi + step)));
                    self.selecting = None;
                }
            },
            KeyCode::Esc => self.selecting = None,
            _ => return false,
        }
        true
    }

    /// A click (`down`) or drag on the timeline at screen column `x`: the first marks one end,
    /// a drag moves the other, the release sets the range.
    pub fn on_timeline_mouse(&mut self, x: u16, phase: MousePhase) {
        let Some((x0, _, w)) = self.timeline_at else {
            return;
        };
        if x < x0 || x >= x0 + w {
            return;
        }
        let t = self.timeline;
        let sec = t.snap(t.start + u64::from(x - x0) * t.step.max(1));
        match phase {
            MousePhase::Down => {
                self.selecting = Some(Selecting {
                    cursor: sec,
                    anchor: Some(sec),
                });
            }
            MousePhase::Drag => {
                if let Some(s) = self.selecting.as_mut() {
                    s.cursor = sec;
                }
            }
            MousePhase::Up => {
                if let Some(s) = self.selecting.take()
                    && let Some(a) = s.anchor
                {
                    let (lo, hi) = (a.min(sec), a.max(sec));
                    self.set_range(Some((lo, hi + t.step.max(1))));
                }
            }
        }
    }

    /// Every view shows only the calls that ended in `range` (seconds), or all.
    pub fn set_range(&mut self, range: Option<(u64, u64)>) {
        self.model.range = range;
        self.selected = [0; 4];
    }

    /// `x`: back to every call.
    fn clear_range(&mut self) {
        self.selecting = None;
        self.set_range(None);
    }

    fn set_filter(&mut self, text: String) {
        match self.view {
            View::Methods => {
                self.method_filter = Filter::parse(&text);
                self.selected[0] = 0;
            }
            _ => {
                self.call_filter = Filter::parse(&text);
                self.selected[1] = 0;
            }
        }
    }

    fn next_sort(&mut self) {
        match self.view {
            View::Methods => {
                let i = MethodSort::ALL
                    .iter()
                    .position(|s| *s == self.method_sort)
                    .unwrap_or(0);
                self.method_sort = MethodSort::ALL[(i + 1) % MethodSort::ALL.len()];
            }
            View::Calls => {
                let i = CallSort::ALL
                    .iter()
                    .position(|s| *s == self.call_sort)
                    .unwrap_or(0);
                self.call_sort = CallSort::ALL[(i + 1) % CallSort::ALL.len()];
            }
            _ => {}
        }
    }

    fn enter(&mut self) {
        match self.view {
            View::Methods => {
                let Some(line) = self.method_lines.get(self.selected[0]) else {
                    return;
                };
                let text = match line {
                    MethodLine::Method(i) => {
                        format!("method:{}", self.model.methods()[*i].name)
                    }
                    MethodLine::Service(s) => format!("method:/{s}/"),
                };
                self.call_filter = Filter::parse(&text);
                self.selected[1] = 0;
                self.view = View::Calls;
            }
            View::Calls => {
                let Some(line) = self.call_lines.get(self.selected[1]).copied() else {
                    return;
                };
                self.detail_call = match line {
                    CallLine::Open(_) => None,
                    CallLine::Done(i) => self.model.recent.get(i).cloned(),
                };
                let d = match line {
                    CallLine::Open(i) => self
                        .model
                        .open
                        .get(i)
                        .map(|o| detail::open_call(o, &self.model)),
                    CallLine::Done(i) => self
                        .model
                        .recent
                        .get(i)
                        .map(|c| detail::build(c, &self.decode)),
                };
                if let Some(d) = d {
                    self.detail = Some(d);
                    self.scroll = 0;
                    self.view = View::Detail;
                }
            }
            View::Connections => {
                let Some(id) = self.conn_lines.get(self.selected[2]) else {
                    return;
                };
                self.call_filter = Filter::parse(&format!("conn:{}", id.get()));
                self.selected[1] = 0;
                self.view = View::Calls;
            }
            View::Findings => self.open_finding(),
            View::Detail | View::Frames => {}
        }
    }

    /// Enter on a finding: the calls or the connection that show it. A finding of one
    /// connection opens its calls (`conn:`); one of a method, the method's calls, the failed
    /// ones for the kinds about failures; one of a service's servers, the Connections view and
    /// its spread of calls over servers.
    fn open_finding(&mut self) {
        use decoder::findings::Kind;
        let Some(f) = self.findings_shown().0.get(self.selected[3]).cloned() else {
            return;
        };
        let failed = matches!(
            f.kind,
            Kind::DeadlineExceeded | Kind::HttpStatusMasksErrors | Kind::BrokenProxy
        );
        let filter = match (&f.scope.conn, &f.scope.method) {
            (Some(c), _) => Some(format!("conn:{}", c.get())),
            (None, Some(m)) if failed => Some(format!("method:{m} status:error")),
            (None, Some(m)) if f.kind == Kind::LeakedStream => {
                Some(format!("method:{m} status:open"))
            }
            (None, Some(m)) => Some(format!("method:{m}")),
            (None, None) => None,
        };
        match filter {
            Some(text) => {
                self.call_filter = Filter::parse(&text);
                self.selected[1] = 0;
                self.view = View::Calls;
            }
            None => {
                // A service's servers: the connections, the busiest (or the idle one) first.
                self.view = View::Connections;
                if let Some(server) = f.scope.server
                    && let Some(i) = self
                        .conn_lines
                        .iter()
                        .position(|id| self.model.conns.get(id).is_some_and(|c| c.server == server))
                {
                    self.selected[2] = i;
                }
            }
        }
    }

    fn back(&mut self) {
        match self.view {
            View::Detail => self.view = View::Calls,
            View::Frames => self.view = self.frames_back,
            View::Calls if !self.call_filter.is_empty() => self.call_filter = Filter::default(),
            View::Methods if !self.method_filter.is_empty() => {
                self.method_filter = Filter::default();
            }
            _ => {}
        }
    }
}

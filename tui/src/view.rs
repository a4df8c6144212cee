//! Drawing: one function per view, all from the model; nothing here changes what is known.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use decoder::Nanos;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use crate::app::{App, CallLine, CallSort, MethodLine, MethodSort, TimelineCols, View};
use crate::filter::Fields;
use crate::fmt;
use crate::model::{RowStats, WINDOW_SECS};

const HIGHLIGHT: Style = Style::new().bg(Color::Blue).fg(Color::White);
const HEADER: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
const DIM: Style = Style::new().fg(Color::DarkGray);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &mut App) {
    let [top, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    tabs(frame, top, app);
    match app.view {
        View::Methods => methods(frame, body, app),
        View::Calls => calls(frame, body, app),
        View::Connections => connections(frame, body, app),
        View::Detail => detail(frame, body, app),
        View::Frames => frames(frame, body, app),
        View::Findings => findings(frame, body, app),
    }
    status_line(frame, status, app);
    hint_line(frame, hints, app);
    if app.help {
        help(frame, frame.area());
    }
    if let Some((title, text)) = &app.popup {
        popup(frame, frame.area(), title, text);
    }
}

/// A `w` x `h` area in the middle of `screen` (which holds it).
fn centered(screen: Rect, w: u16, h: u16) -> Rect {
    Rect {
        x: screen.x + (screen.width - w) / 2,
        y: screen.y + (screen.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A box in the middle of the screen, the text wrapped to it.
fn popup(frame: &mut Frame<'_>, screen: Rect, title: &str, text: &str) {
    let w = screen.width.saturating_sub(4).min(110);
    let inner_w = usize::from(w.saturating_sub(2)).max(1);
    let rows: usize = text
        .lines()
        .map(|l| l.chars().count().div_ceil(inner_w).max(1))
        .sum();
    let h = screen
        .height
        .min(u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2));
    let area = centered(screen, w, h);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(text.to_owned())
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(title.to_owned()),
            ),
        area,
    );
}

fn tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut spans = vec![Span::styled(
        " grpctap ",
        Style::new().fg(Color::Black).bg(Color::Cyan),
    )];
    // Narrow terminals get the short name of the Connections view: the sort and the filter
    // after the tabs must still fit.
    let conns = if area.width < 120 {
        "Conns"
    } else {
        "Connections"
    };
    for (key, name, view) in [
        ('1', "Methods", View::Methods),
        ('2', "Calls", View::Calls),
        ('3', conns, View::Connections),
        ('4', "Findings", View::Findings),
    ] {
        let on = app.view == view || (view == View::Calls && app.view == View::Detail);
        let style = if on {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("{key} {name}"), style));
    }
    let (sort, filter) = match app.view {
        View::Methods => (
            Some(format!(
                "sort {}{}",
                app.method_sort.name(),
                App::arrow(app.method_sort.ascending(), app.method_reverse)
            )),
            app.method_filter.text(),
        ),
        View::Calls => (
            Some(format!(
                "sort {}{}",
                app.call_sort.name(),
                App::arrow(app.call_sort.ascending(), app.call_reverse)
            )),
            app.call_filter.text(),
        ),
        _ => (None, ""),
    };
    spans.push(Span::styled(
        format!("  {}", app.model.scope_name()),
        Style::new().fg(if app.model.range.is_some() {
            Color::Yellow
        } else {
            Color::Cyan
        }),
    ));
    if let Some(s) = sort {
        spans.push(Span::styled(format!("  {s}"), DIM));
    }
    if !filter.is_empty() {
        spans.push(Span::styled(
            format!("  filter: {filter}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    if app.view == View::Methods && app.grouped {
        spans.push(Span::styled("  by service", DIM));
    }
    frame.render_widget(Line::from(spans), area);
}

/// How a list column is sized.
#[derive(Clone, Copy)]
enum Col {
    /// As wide as its widest visible cell or its title, at least this many characters: a
    /// number is never cut while there is room for it.
    Fit(u16),
    /// What the fitted columns leave, at least this many characters; flexible columns
    /// are served in order, each up to its widest cell, and the last takes the rest.
    Flex(u16),
}

/// How a cell too wide for its column is shortened: always with a visible `…`.
#[derive(Clone, Copy)]
enum Cut {
    Right,
    /// A method name: without its package first, then cut on the left.
    Method,
}

/// One cell of a list: its text and style; the list fits it to the column.
struct Text {
    text: String,
    style: Style,
}

impl Text {
    fn new(text: impl Into<String>) -> Self {
        Text {
            text: text.into(),
            style: Style::new(),
        }
    }

    fn styled(text: impl Into<String>, style: Style) -> Self {
        Text {
            text: text.into(),
            style,
        }
    }
}

/// A list view's table: header, the visible rows, the selected one highlighted, and a line
/// saying why when there are none. Column widths follow the visible cells, so a cell is
/// shown whole when the screen has room and never cut without a mark.
struct List<'a> {
    header: Vec<Text>,
    /// The visible rows, each with its own style.
    rows: Vec<(Vec<Text>, Style)>,
    cols: Vec<(Col, Cut)>,
    /// Selected row among `rows`.
    selected: Option<usize>,
    /// Shown when there is no row.
    empty: &'a str,
}

impl List<'_> {
    fn draw(self, frame: &mut Frame<'_>, area: Rect) {
        let none = self.rows.is_empty();
        let widths = column_widths(area.width, &self.cols, &self.header, &self.rows);
        let fit = |cells: Vec<Text>| -> Vec<Cell<'static>> {
            cells
                .into_iter()
                .zip(self.cols.iter().zip(&widths))
                .map(|(c, ((_, cut), w))| {
                    let w = usize::from(*w);
                    let text = match cut {
                        Cut::Right => fmt::fit_right(&c.text, w),
                        Cut::Method => fmt::fit_method(&c.text, w),
                    };
                    Cell::from(text).style(c.style)
                })
                .collect()
        };
        let header = Row::new(fit(self.header)).style(HEADER);
        let rows: Vec<Row<'_>> = self
            .rows
            .into_iter()
            .map(|(cells, style)| Row::new(fit(cells)).style(style))
            .collect();
        let constraints: Vec<Constraint> = widths.iter().map(|w| Constraint::Length(*w)).collect();
        let table = Table::new(rows, constraints)
            .header(header)
            .row_highlight_style(HIGHLIGHT);
        let mut state = TableState::default().with_selected(self.selected);
        frame.render_stateful_widget(table, area, &mut state);
        if none {
            let line = Rect {
                y: area.y.saturating_add(1),
                height: 1,
                ..area
            };
            frame.render_widget(
                Paragraph::new(self.empty).style(DIM),
                line.intersection(area),
            );
        }
    }
}

/// The width of each column in `total` characters with one space between columns: fitted
/// columns as wide as their widest cell, flexible ones from what is left; when even that
/// does not fit, flexible columns keep their minimum and the rightmost fitted ones shrink.
fn column_widths(
    total: u16,
    cols: &[(Col, Cut)],
    header: &[Text],
    rows: &[(Vec<Text>, Style)],
) -> Vec<u16> {
    let chars = |t: &Text| u16::try_from(t.text.chars().count()).unwrap_or(u16::MAX);
    let want: Vec<u16> = cols
        .iter()
        .enumerate()
        .map(|(i, (col, _))| {
            let min = match col {
                Col::Fit(m) | Col::Flex(m) => *m,
            };
            let cells = rows.iter().filter_map(|(r, _)| r.get(i)).map(chars);
            header
                .get(i)
                .map(chars)
                .into_iter()
                .chain(cells)
                .fold(min, u16::max)
        })
        .collect();
    let gaps = u16::try_from(cols.len().saturating_sub(1)).unwrap_or(u16::MAX);
    let avail = total.saturating_sub(gaps);
    let mut widths = want.clone();
    let flex_min = |from: usize| -> u16 {
        cols.iter()
            .skip(from)
            .map(|(c, _)| match c {
                Col::Flex(m) => *m,
                Col::Fit(_) => 0,
            })
            .fold(0u16, u16::saturating_add)
    };
    let fixed = cols
        .iter()
        .zip(&want)
        .filter(|((c, _), _)| matches!(c, Col::Fit(_)))
        .map(|(_, w)| *w)
        .fold(0u16, u16::saturating_add);
    let mut left = avail.saturating_sub(fixed);
    let last_flex = cols.iter().rposition(|(c, _)| matches!(c, Col::Flex(_)));
    for (i, (col, _)) in cols.iter().enumerate() {
        if let Col::Flex(min) = col {
            let later = flex_min(i + 1);
            let w = if Some(i) == last_flex {
                left.max(*min)
            } else {
                want[i].min(left.saturating_sub(later)).max(*min)
            };
            widths[i] = w;
            left = left.saturating_sub(w);
        }
    }
    // Too narrow for everything: the rightmost columns give way, down to nothing.
    let mut over = widths
        .iter()
        .fold(0u16, |a, w| a.saturating_add(*w))
        .saturating_sub(avail);
    for w in widths.iter_mut().rev() {
        if over == 0 {
            break;
        }
        let give = (*w).min(over);
        *w -= give;
        over -= give;
    }
    widths
}

/// The first row to show so that `selected` is visible in `height` rows.
fn scroll_to(state: &mut TableState, selected: usize, height: usize, len: usize) -> usize {
    let height = height.max(1);
    let selected = selected.min(len.saturating_sub(1));
    let mut offset = state.offset().min(len.saturating_sub(1));
    if selected < offset {
        offset = selected;
    } else if selected >= offset + height {
        offset = selected + 1 - height;
    }
    *state.offset_mut() = offset;
    offset
}

fn cmp_opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
}

fn cmp_rows(sort: MethodSort, reverse: bool, a: &RowStats, b: &RowStats) -> Ordering {
    let by = match sort {
        MethodSort::Rate => b.rate.partial_cmp(&a.rate).unwrap_or(Ordering::Equal),
        MethodSort::Calls => b.calls.cmp(&a.calls),
        MethodSort::Errors => cmp_opt(b.error_ratio, a.error_ratio).then(b.errors.cmp(&a.errors)),
        MethodSort::P50 => cmp_opt(b.latency[0], a.latency[0]),
        MethodSort::P90 => cmp_opt(b.latency[1], a.latency[1]),
        MethodSort::P99 => cmp_opt(b.latency[2], a.latency[2]),
        MethodSort::Open => b.open.cmp(&a.open),
        MethodSort::Name => Ordering::Equal,
    };
    let by = if reverse { by.reverse() } else { by };
    let name = if reverse && sort == MethodSort::Name {
        b.name.cmp(&a.name)
    } else {
        a.name.cmp(&b.name)
    };
    by.then(name)
}

/// The Methods rows in order, with their cheap figures (and latency for all when sorting by
/// it: the rest is worked out for the rows on screen only).
fn method_rows(app: &mut App) -> Vec<(MethodLine, RowStats)> {
    let n = app.model.methods().len();
    let (sort, reverse) = (app.method_sort, app.method_reverse);
    let by_latency = matches!(sort, MethodSort::P50 | MethodSort::P90 | MethodSort::P99);
    let mut rows: Vec<(usize, RowStats)> = Vec::with_capacity(n);
    for i in 0..n {
        if !app.method_filter.matches_name(&app.model.methods()[i].name) {
            continue;
        }
        let mut r = app.model.method_row(i);
        if by_latency {
            r.latency = app.model.method_latency(i);
        }
        rows.push((i, r));
    }
    rows.sort_by(|a, b| cmp_rows(sort, reverse, &a.1, &b.1));
    if !app.grouped {
        return rows
            .into_iter()
            .map(|(i, r)| (MethodLine::Method(i), r))
            .collect();
    }
    let mut services: BTreeMap<Arc<str>, Vec<(usize, RowStats)>> = BTreeMap::new();
    for (i, r) in rows {
        let s = app.model.methods()[i].service.clone();
        services.entry(s).or_default().push((i, r));
    }
    let mut groups: Vec<(RowStats, Vec<(usize, RowStats)>)> = services
        .into_iter()
        .map(|(s, members)| {
            let idx: Vec<usize> = members.iter().map(|m| m.0).collect();
            let mut row = app.model.service_row(&s, &idx);
            if by_latency {
                row.latency = app.model.service_latency(&idx);
            }
            (row, members)
        })
        .collect();
    groups.sort_by(|a, b| cmp_rows(sort, reverse, &a.0, &b.0));
    let mut out = Vec::new();
    for (srow, members) in groups {
        out.push((MethodLine::Service(srow.name.clone()), srow));
        out.extend(members.into_iter().map(|(i, r)| (MethodLine::Method(i), r)));
    }
    out
}

/// Fills in latency and top errors of one row.
fn complete_row(app: &mut App, line: &MethodLine, r: &mut RowStats) {
    match line {
        MethodLine::Method(i) => {
            r.latency = app.model.method_latency(*i);
            r.top_errors = app.model.top_errors(&[*i]);
        }
        MethodLine::Service(_) => {
            let members = members(app, line);
            r.latency = app.model.service_latency(&members);
            r.top_errors = app.model.top_errors(&members);
        }
    }
}

fn methods(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let mut rows = method_rows(app);
    app.method_lines = rows.iter().map(|r| r.0.clone()).collect();
    let panel_h = if area.height >= 17 { 9 } else { 0 };
    let [table_area, panel] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(panel_h)]).areas(area);
    let wide = area.width >= 110;
    let sel = app.selected[0].min(rows.len().saturating_sub(1));
    app.selected[0] = sel;
    let height = usize::from(table_area.height.saturating_sub(1));
    app.page = height;
    let offset = scroll_to(&mut app.tables[0], sel, height, rows.len());
    for k in (offset..rows.len())
        .take(height)
        .chain(std::iter::once(sel))
    {
        if let Some((line, r)) = rows.get_mut(k) {
            let line = line.clone();
            complete_row(app, &line, r);
        }
    }
    let now_sec = app.model.now_sec();
    let arrow = App::arrow(app.method_sort.ascending(), app.method_reverse);
    let mut titles: Vec<(MethodSort, &str)> = vec![
        (MethodSort::Name, "Method"),
        (MethodSort::Rate, "Calls/s"),
        (MethodSort::Calls, "Calls"),
        (MethodSort::Errors, "Err%"),
        (MethodSort::P50, "p50"),
    ];
    if wide {
        titles.push((MethodSort::P90, "p90"));
    }
    titles.push((MethodSort::P99, "p99"));
    titles.push((MethodSort::Open, "Open"));
    let mut header: Vec<Text> = titles
        .iter()
        .map(|(s, t)| {
            if *s == app.method_sort {
                Text::styled(
                    format!("{t}{arrow}"),
                    HEADER.add_modifier(Modifier::UNDERLINED),
                )
            } else {
                Text::new(*t)
            }
        })
        .collect();
    header.push(Text::new(format!("Last {WINDOW_SECS}s")));
    if wide {
        header.push(Text::new("Top errors"));
    }
    let mut cols = vec![
        (Col::Flex(20), Cut::Method),
        (Col::Fit(8), Cut::Right),
        (Col::Fit(6), Cut::Right),
        (Col::Fit(6), Cut::Right),
        (Col::Fit(8), Cut::Right),
    ];
    if wide {
        cols.push((Col::Fit(8), Cut::Right));
    }
    cols.extend([
        (Col::Fit(8), Cut::Right),
        (Col::Fit(5), Cut::Right),
        (Col::Fit(10), Cut::Right),
    ]);
    if wide {
        cols.push((Col::Flex(10), Cut::Right));
    }
    let visible = rows.iter().skip(offset).take(height);
    let body: Vec<(Vec<Text>, Style)> = visible
        .map(|(line, r)| {
            let (name, style) = match line {
                MethodLine::Service(_) => (
                    r.name.to_string(),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                MethodLine::Method(_) if app.grouped => {
                    let short = decoder::grpc::split_path(&r.name)
                        .map_or(r.name.to_string(), |(_, m)| m.to_owned());
                    (format!("  {short}"), Style::new())
                }
                MethodLine::Method(_) => (r.name.to_string(), Style::new()),
            };
            let err_style = match r.error_ratio {
                Some(e) if e > 0.0 => Style::new().fg(Color::Red),
                _ => Style::new(),
            };
            let hist = match line {
                MethodLine::Method(i) => app.model.methods()[*i].series.history(now_sec, 10, false),
                MethodLine::Service(_) => Vec::new(),
            };
            let mut cells = vec![
                Text::new(name),
                Text::new(fmt::rate(r.rate)),
                Text::new(fmt::count(r.calls)),
                Text::styled(fmt::percent(r.error_ratio), err_style),
                Text::new(fmt::opt_duration(r.latency[0])),
            ];
            if wide {
                cells.push(Text::new(fmt::opt_duration(r.latency[1])));
            }
            cells.push(Text::new(fmt::opt_duration(r.latency[2])));
            cells.push(Text::new(r.open.to_string()));
            cells.push(Text::styled(
                fmt::spark(&hist),
                Style::new().fg(Color::Green),
            ));
            if wide {
                let top: Vec<String> = r
                    .top_errors
                    .iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect();
                cells.push(Text::styled(top.join(", "), Style::new().fg(Color::Red)));
            }
            (cells, style)
        })
        .collect();
    let empty = if app.method_filter.is_empty() {
        "no calls yet"
    } else {
        "no method matches the filter"
    };
    let selected = (!rows.is_empty()).then_some(sel - offset);
    let list = List {
        header,
        rows: body,
        cols,
        selected,
        empty,
    };
    list.draw(frame, table_area);
    if panel_h > 0
        && let Some((line, r)) = rows.get(sel)
    {
        method_panel(frame, panel, app, line, r);
    }
}

/// The members of a Methods line: the method, or a service's methods that pass the filter.
fn members(app: &App, line: &MethodLine) -> Vec<usize> {
    match line {
        MethodLine::Method(i) => vec![*i],
        MethodLine::Service(s) => app
            .model
            .methods()
            .iter()
            .enumerate()
            .filter(|(_, m)| &m.service == s && app.method_filter.matches_name(&m.name))
            .map(|(i, _)| i)
            .collect(),
    }
}

/// A latency histogram drawn `width` columns wide: the counts per column (columns split the
/// range from the smallest to the largest value evenly on a log scale), and the column of each
/// of p50, p90, p99.
pub(crate) fn latency_columns(
    h: &decoder::aggregate::Histogram,
    q: &[Option<Duration>; 3],
    width: usize,
) -> (Vec<u64>, [Option<usize>; 3]) {
    let n = width.max(1);
    let mut cols = vec![0u64; n];
    let (Some(lo), Some(hi)) = (h.quantile(0.0), h.max()) else {
        return (cols, [None; 3]);
    };
    let (lo, hi) = (
        lo.as_secs_f64().max(1e-9).ln(),
        hi.as_secs_f64().max(1e-9).ln(),
    );
    let span = (hi - lo).max(1e-9);
    let col = |d: Duration| -> usize {
        let x = (d.as_secs_f64().max(1e-9).ln() - lo) / span;
        // x is within 0..=1 up to rounding.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let c = (x * (n - 1) as f64).round().max(0.0) as usize;
        c.min(n - 1)
    };
    for (low, n) in h.buckets() {
        if n > 0 {
            let c = col(low);
            cols[c] += n;
        }
    }
    let marks = q.map(|d| d.map(col));
    (cols, marks)
}

fn method_panel(frame: &mut Frame<'_>, area: Rect, app: &mut App, line: &MethodLine, r: &RowStats) {
    let members = members(app, line);
    let hist = app.model.latency_histogram(&members);
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Span::styled(format!(" {} ", r.name), HEADER));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let now_sec = app.model.now_sec();
    let label_w = 16;
    let width = usize::from(inner.width.saturating_sub(label_w)).max(1);
    // Over the whole capture (or a range, or while choosing one): the capture's timeline, a
    // column per few slots; else a column a second.
    let whole = app.model.window == crate::model::Window::Whole
        || app.model.range.is_some()
        || app.selecting.is_some();
    let timeline = whole
        .then(|| app.model.timeline.start())
        .flatten()
        .map(|start| {
            let res = app.model.timeline.res();
            let slots = (now_sec / res).saturating_sub(start / res) + 1;
            let per_col = slots.div_ceil(width as u64).max(1);
            TimelineCols {
                start,
                step: per_col * res,
                cols: slots.div_ceil(per_col),
            }
        });
    app.timeline = timeline.unwrap_or_default();
    app.timeline_at = timeline.map(|t| {
        (
            inner.x + label_w,
            inner.y,
            u16::try_from(t.cols).unwrap_or(u16::MAX),
        )
    });
    let app: &App = app;
    let (calls, errors) = match timeline {
        Some(t) => {
            let n = usize::try_from(t.cols).unwrap_or(0);
            let (mut c, mut e) = (vec![0; n], vec![0; n]);
            for &i in &members {
                app.model.methods()[i]
                    .timeline
                    .add_to_columns(t.start, t.step, &mut c, &mut e);
            }
            (c, e)
        }
        None => {
            let (mut c, mut e) = (vec![0; width.min(crate::model::HISTORY_SECS)], Vec::new());
            e.resize(c.len(), 0);
            for &i in &members {
                let s = &app.model.methods()[i].series;
                for (k, v) in s.history(now_sec, width, false).iter().enumerate() {
                    c[k] += v;
                }
                for (k, v) in s.history(now_sec, width, true).iter().enumerate() {
                    e[k] += v;
                }
            }
            (c, e)
        }
    };
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .split(inner);
    if let Some(t) = timeline {
        // Under the timeline: the range, and while choosing one the cursor and the marked end.
        let [l, m] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(1)]).areas(rows[2]);
        let n = usize::try_from(t.cols).unwrap_or(0);
        let mut under = vec![' '; n];
        let first = app.model.timeline.start().unwrap_or(0);
        let label = if let Some(sel) = app.selecting {
            if let Some(a) = sel.anchor {
                let (lo, hi) = (t.col(a.min(sel.cursor)), t.col(a.max(sel.cursor)));
                for c in lo..=hi {
                    if let Some(u) = under.get_mut(usize::try_from(c).unwrap_or(usize::MAX)) {
                        *u = '─';
                    }
                }
            }
            if let Some(u) = under.get_mut(usize::try_from(t.col(sel.cursor)).unwrap_or(usize::MAX))
            {
                *u = '▲';
            }
            format!("at +{}s", sel.cursor.saturating_sub(first))
        } else if let Some((from, to)) = app.model.range {
            for c in t.col(from)..=t.col(to.saturating_sub(1)) {
                if let Some(u) = under.get_mut(usize::try_from(c).unwrap_or(usize::MAX)) {
                    *u = '━';
                }
            }
            "range (x: clear)".to_owned()
        } else {
            format!("v: range {}s/col", t.step)
        };
        frame.render_widget(Paragraph::new(label).style(DIM), l);
        frame.render_widget(
            Paragraph::new(Span::styled(
                under.into_iter().collect::<String>(),
                Style::new().fg(Color::Yellow),
            )),
            m,
        );
    }
    {
        // The window's latency as a histogram, p50 / p90 / p99 marked under it.
        let [l, s] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(1)]).areas(rows[3]);
        let w = usize::from(s.width).max(1);
        let (cols, marks) = latency_columns(&hist, &r.latency, w);
        let range = match (hist.quantile(0.0), hist.max()) {
            (Some(a), Some(b)) => {
                format!("lat {}-{}", fmt::duration_short(a), fmt::duration_short(b))
            }
            _ => "latency".to_owned(),
        };
        frame.render_widget(Paragraph::new(range).style(DIM), l);
        let max = cols.iter().copied().max().unwrap_or(0);
        frame.render_widget(
            Sparkline::default()
                .data(cols.as_slice())
                .max(max.max(1))
                .style(Style::new().fg(Color::Cyan)),
            s,
        );
        let [ml, m] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(1)]).areas(rows[4]);
        let mut under = vec![' '; w];
        for (k, at) in marks.into_iter().enumerate() {
            if let Some(c) = at {
                under[c] = ['5', '9', '!'][k];
            }
        }
        let under: String = under.into_iter().collect();
        frame.render_widget(Paragraph::new("5 9 ! p50 90 99").style(DIM), ml);
        frame.render_widget(
            Paragraph::new(Span::styled(under, Style::new().fg(Color::Yellow))),
            m,
        );
    }
    // A column is a second, or on the timeline `step` seconds.
    let (cl, el) = if timeline.is_some() {
        ("calls", "errors")
    } else {
        ("calls/s", "errors/s")
    };
    for (k, (label, data, color)) in [(cl, &calls, Color::Green), (el, &errors, Color::Red)]
        .into_iter()
        .enumerate()
    {
        let [l, s] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(1)]).areas(rows[k]);
        let max = data.iter().copied().max().unwrap_or(0);
        frame.render_widget(
            Paragraph::new(format!("{label} max {}", fmt::count(max))).style(DIM),
            l,
        );
        frame.render_widget(
            Sparkline::default()
                .data(data.as_slice())
                .max(max.max(1))
                .style(Style::new().fg(color)),
            s,
        );
    }
    let top: Vec<String> = r
        .top_errors
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let errs = if top.is_empty() {
        String::new()
    } else {
        format!(" ({})", top.join(", "))
    };
    frame.render_widget(
        Paragraph::new(if app.model.range.is_some() {
            format!("in the range: {} calls, {} errors", r.calls, r.errors)
        } else {
            format!(
                "since the start: {} calls, {} errors{errs}",
                r.calls, r.errors
            )
        }),
        rows[5],
    );
    frame.render_widget(
        Paragraph::new(format!(
            "{}: {} calls/s, errors {}, p50 {} p90 {} p99 {}, {} open",
            app.model.scope_name(),
            fmt::rate(r.rate),
            fmt::percent(r.error_ratio),
            fmt::opt_duration(r.latency[0]),
            fmt::opt_duration(r.latency[1]),
            fmt::opt_duration(r.latency[2]),
            r.open
        ))
        .style(DIM),
        rows[6],
    );
}

/// Sort key of a call line.
struct CallKey<'a> {
    line: CallLine,
    open: bool,
    time: u64,
    duration: u64,
    method: &'a str,
    status: u32,
}

fn call_lines(app: &App) -> Vec<CallLine> {
    let m = &app.model;
    let now = m.now;
    let mut keys: Vec<CallKey<'_>> = Vec::new();
    // In a range, only the calls that ended in it: none of the open ones.
    let open = if m.range.is_some() {
        &[][..]
    } else {
        &m.open[..]
    };
    for (i, o) in open.iter().enumerate() {
        let f = Fields {
            method: o.method.as_deref(),
            status: None,
            open: true,
            error: false,
            message: None,
            client: o.client,
            server: o.server,
            authority: o.authority.as_deref(),
            conn: o.conn.get(),
        };
        if app.call_filter.matches(&f) {
            keys.push(CallKey {
                line: CallLine::Open(i),
                open: true,
                time: o.start.unwrap_or(Nanos::ZERO).0,
                duration: o.start.map_or(u64::MAX, |s| now.0.saturating_sub(s.0)),
                method: o.method.as_deref().unwrap_or(""),
                status: 0,
            });
        }
    }
    for (i, c) in m.recent.iter().enumerate() {
        let f = Fields::of(c, false);
        if m.in_range(c) && app.call_filter.matches(&f) {
            keys.push(CallKey {
                line: CallLine::Done(i),
                open: false,
                time: c.end.or(c.start).unwrap_or(Nanos::ZERO).0,
                duration: c
                    .duration()
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                method: c.method.as_deref().unwrap_or(""),
                status: c.status.map_or(u32::MAX, |s| s.0),
            });
        }
    }
    // Ties keep the newest first (later in `recent`), then open before finished.
    let by = |a: &CallKey<'_>, b: &CallKey<'_>| -> Ordering {
        let primary = match app.call_sort {
            CallSort::Newest => b.open.cmp(&a.open).then(b.time.cmp(&a.time)),
            CallSort::Duration => b.duration.cmp(&a.duration),
            CallSort::Method => a.method.cmp(b.method),
            CallSort::Status => {
                let rank = |k: &CallKey<'_>| {
                    if k.open {
                        0
                    } else if k.status == 0 {
                        1
                    } else {
                        2
                    }
                };
                rank(b).cmp(&rank(a)).then(a.status.cmp(&b.status))
            }
        };
        let primary = if app.call_reverse {
            primary.reverse()
        } else {
            primary
        };
        primary.then(b.time.cmp(&a.time))
    };
    keys.sort_by(by);
    keys.into_iter().map(|k| k.line).collect()
}

fn ago(now: Nanos, ts: Option<Nanos>) -> String {
    match ts {
        Some(t) if t <= now => fmt::duration_short(now - t),
        Some(_) => "0".to_owned(),
        None => "?".to_owned(),
    }
}

fn calls(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let lines = call_lines(app);
    let wide = area.width >= 110;
    let with_server = area.width >= 100;
    let sel = app.selected[1].min(lines.len().saturating_sub(1));
    app.selected[1] = sel;
    let height = usize::from(area.height.saturating_sub(1));
    app.page = height;
    let offset = scroll_to(&mut app.tables[1], sel, height, lines.len());
    let m = &app.model;
    let sorted = app.call_sort.column();
    let arrow = App::arrow(app.call_sort.ascending(), app.call_reverse);
    let mut header: Vec<Text> = ["Ago", "Method", "Status", "Duration", "Msgs↑↓"]
        .into_iter()
        .map(|t| {
            if t == sorted {
                Text::styled(
                    format!("{t}{arrow}"),
                    HEADER.add_modifier(Modifier::UNDERLINED),
                )
            } else {
                Text::new(t)
            }
        })
        .collect();
    let mut cols = vec![
        (Col::Fit(6), Cut::Right),
        (Col::Flex(18), Cut::Method),
        (Col::Fit(11), Cut::Right),
        (Col::Fit(8), Cut::Right),
        (Col::Fit(6), Cut::Right),
    ];
    if with_server {
        header.push(Text::new("Server"));
        cols.push((Col::Fit(15), Cut::Right));
    }
    if wide {
        header.extend([Text::new("Client"), Text::new("Message")]);
        // The message takes what the method does not need.
        cols.extend([(Col::Fit(15), Cut::Right), (Col::Flex(10), Cut::Right)]);
    }
    let rows: Vec<(Vec<Text>, Style)> = lines
        .iter()
        .skip(offset)
        .take(height)
        .map(|line| match *line {
            CallLine::Open(i) => {
                let o = &m.open[i];
                let cyan = Style::new().fg(Color::Cyan);
                let mut cells = vec![
                    Text::new("now"),
                    Text::new(o.method.as_deref().unwrap_or("<unknown>")),
                    Text::styled("open", cyan),
                    Text::styled(ago(m.now, o.start), cyan),
                    Text::new(format!("{}/{}", o.req_msgs, o.resp_msgs)),
                ];
                if with_server {
                    cells.push(Text::new(o.server.to_string()));
                }
                if wide {
                    cells.extend([Text::new(o.client.to_string()), Text::new("")]);
                }
                (cells, Style::new())
            }
            CallLine::Done(i) => {
                let c = &m.recent[i];
                // Inferred names and statuses are marked `~` (docs/tui.md).
                let inferred = |conf| {
                    if conf == decoder::Confidence::Inferred {
                        "~"
                    } else {
                        ""
                    }
                };
                let status = match (c.status, c.error_unknown_code) {
                    (Some(s), _) => format!("{}{}", s.name(), inferred(c.status_confidence)),
                    (None, true) if c.status_source == decoder::StatusSource::DeadlineNear => {
                        "DEADLINE|CANCEL~".to_owned()
                    }
                    (None, true) => "ERROR~".to_owned(),
                    (None, false) => c.status_source.name().to_owned(),
                };
                let color = match c.is_error() {
                    Some(false) => Color::Green,
                    Some(true) => Color::Red,
                    None => Color::Yellow,
                };
                let method = match c.method_label() {
                    Some(l) => format!("{}{l}", inferred(c.method_confidence)),
                    None => "<unknown>".to_owned(),
                };
                let mut cells = vec![
                    Text::new(ago(m.now, c.end.or(c.start))),
                    Text::new(method),
                    Text::styled(status, Style::new().fg(color)),
                    Text::new(fmt::opt_duration(c.duration())),
                    Text::new(format!("{}/{}", c.req.msgs, c.resp.msgs)),
                ];
                if with_server {
                    cells.push(Text::new(c.server.to_string()));
                }
                if wide {
                    cells.extend([
                        Text::new(c.client.to_string()),
                        Text::new(c.grpc_message.clone().unwrap_or_default()),
                    ]);
                }
                (cells, Style::new())
            }
        })
        .collect();
    let empty = if app.call_filter.is_empty() {
        "no calls yet"
    } else {
        "no call matches the filter"
    };
    let selected = (!lines.is_empty()).then_some(sel - offset);
    let list = List {
        header,
        rows,
        cols,
        selected,
        empty,
    };
    list.draw(frame, area);
    app.call_lines = lines;
}

fn connections(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let m = &app.model;
    // In a range: the connections with calls that ended in it, and those calls.
    let in_range: Option<std::collections::HashMap<decoder::ConnId, (u64, u64)>> =
        m.range.map(|_| {
            let mut by = std::collections::HashMap::new();
            for c in m.recent.iter().filter(|c| m.in_range(c)) {
                let e: &mut (u64, u64) = by.entry(c.conn).or_default();
                e.0 += 1;
                e.1 += u64::from(crate::model::is_error(c));
            }
            by
        });
    let counts = |c: &crate::model::ConnInfo| match &in_range {
        Some(by) => by.get(&c.id).copied().unwrap_or((0, 0)),
        None => (c.calls, c.errors),
    };
    let mut conns: Vec<&crate::model::ConnInfo> = m
        .conns
        .values()
        .filter(|c| in_range.as_ref().is_none_or(|by| by.contains_key(&c.id)))
        .collect();
    conns.sort_by(|a, b| {
        a.closed
            .cmp(&b.closed)
            .then(b.open_streams.cmp(&a.open_streams))
            .then(b.calls.cmp(&a.calls))
            .then(a.id.cmp(&b.id))
    });
    app.conn_lines = conns.iter().map(|c| c.id).collect();
    let sel = app.selected[2].min(conns.len().saturating_sub(1));
    let height = usize::from(top.height.saturating_sub(1));
    let offset = scroll_to(&mut app.tables[2], sel, height, conns.len());
    // A TLS column only when some connection is TLS.
    let tls = conns.iter().any(|c| c.tls.is_some());
    // A Name column only when some server has one (DNS, or an :authority that is a name).
    let named = conns.iter().any(|c| m.server_name(c.server).is_some());
    // A PING RTT column only when some connection had a PING answered.
    let pinged = conns.iter().any(|c| c.ping_rtt.is_some());
    let mut cols = vec![
        (Col::Fit(2), Cut::Right),
        (Col::Flex(15), Cut::Right),
        (Col::Flex(15), Cut::Right),
        (Col::Fit(6), Cut::Right),
        (Col::Fit(4), Cut::Right),
        (Col::Fit(6), Cut::Right),
        (Col::Fit(5), Cut::Right),
        (Col::Fit(11), Cut::Right),
        (Col::Fit(6), Cut::Right),
    ];
    if named {
        cols.insert(3, (Col::Flex(4), Cut::Right));
    }
    if pinged {
        cols.push((Col::Fit(6), Cut::Right));
    }
    if tls {
        cols.push((Col::Flex(16), Cut::Right));
    }
    let rows: Vec<(Vec<Text>, Style)> = conns
        .iter()
        .skip(offset)
        .take(height)
        .map(|c| {
            let (calls, errors) = counts(c);
            let errs = if errors > 0 {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            let goaway = if c.goaways > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            let mut cells = vec![
                Text::new(c.id.get().to_string()),
                Text::new(c.client.to_string()),
                Text::new(c.server.to_string()),
                Text::new(ago(m.now, Some(c.opened))),
                Text::new(c.open_streams.to_string()),
                Text::new(fmt::count(calls)),
                Text::styled(fmt::count(errors), errs),
                Text::new(format!(
                    "{}/{}",
                    fmt::bytes_short(c.bytes[0]),
                    fmt::bytes_short(c.bytes[1])
                )),
                Text::styled(c.goaways.to_string(), goaway),
            ];
            if named {
                cells.insert(
                    3,
                    Text::new(
                        m.server_name(c.server)
                            .map_or("-".to_owned(), |n| n.to_string()),
                    ),
                );
            }
            if pinged {
                cells.push(Text::new(
                    c.ping_rtt
                        .map_or_else(|| "-".to_owned(), |(d, _)| fmt::duration_short(d)),
                ));
            }
            if tls {
                cells.push(Text::new(c.tls.as_ref().map_or_else(
                    || "-".to_owned(),
                    |t| {
                        let v = decoder::tls::session::TlsInfo::version_name(t.version);
                        format!("{v} {}", t.sni.as_deref().unwrap_or(""))
                    },
                )));
            }
            (cells, if c.closed { DIM } else { Style::new() })
        })
        .collect();
    let mut header: Vec<Text> = [
        "Id",
        "Client",
        "Server",
        "Age",
        "Open",
        "Calls",
        "Errs",
        "Bytes ↑/↓",
        "GOAWAY",
    ]
    .into_iter()
    .map(Text::new)
    .collect();
    if named {
        header.insert(3, Text::new("Name"));
    }
    if pinged {
        header.push(Text::new("RTT"));
    }
    if tls {
        header.push(Text::new("TLS"));
    }
    let list = List {
        header,
        rows,
        cols,
        selected: (!conns.is_empty()).then_some(sel - offset),
        empty: "no connection yet",
    };
    list.draw(frame, top);
    spread(frame, bottom, app);
}

/// The findings (most severe first) and, below, the selected one's evidence and fix.
fn findings(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let [caption, top, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(60),
        Constraint::Percentage(40),
    ])
    .areas(area);
    let (all, covers) = app.findings_shown();
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!("Findings of {covers}"),
            DIM,
        ))),
        caption,
    );
    let sel = app.selected[3].min(all.len().saturating_sub(1));
    let height = usize::from(top.height.saturating_sub(1));
    let offset = scroll_to(&mut app.tables[3], sel, height, all.len());
    let sev_style = |s: decoder::findings::Severity| match s {
        decoder::findings::Severity::Critical => Style::new().fg(Color::Red),
        decoder::findings::Severity::Warning => Style::new().fg(Color::Yellow),
        decoder::findings::Severity::Info => Style::new().fg(Color::Cyan),
    };
    let rows: Vec<(Vec<Text>, Style)> = all
        .iter()
        .skip(offset)
        .take(height)
        .map(|f| {
            (
                vec![
                    Text::styled(f.severity.name().to_owned(), sev_style(f.severity)),
                    Text::new(f.kind.name().to_owned()),
                    Text::new(finding_scope(f)),
                    Text::new(f.summary.clone()),
                ],
                Style::new(),
            )
        })
        .collect();
    List {
        header: ["Severity", "Kind", "Where", "What"]
            .into_iter()
            .map(Text::new)
            .collect(),
        rows,
        cols: vec![
            (Col::Fit(8), Cut::Right),
            (Col::Fit(12), Cut::Right),
            (Col::Flex(16), Cut::Right),
            (Col::Flex(20), Cut::Right),
        ],
        selected: (!all.is_empty()).then_some(sel - offset),
        empty: "no finding (yet): docs/findings.md says what each needs",
    }
    .draw(frame, top);
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        " Evidence (Enter: the calls that show it) ",
        HEADER,
    ));
    let mut lines = Vec::new();
    if let Some(f) = all.get(sel) {
        let first = app.model.first.unwrap_or(Nanos::ZERO);
        let at = |t: Nanos| match t.checked_since(first) {
            Some(d) => format!("+{:.1}s", d.as_secs_f64()),
            None => "-".to_owned(),
        };
        lines.push(Line::from(f.summary.clone()));
        lines.push(Line::from(Span::styled(
            format!(
                "{} to {}, certainty {}",
                at(f.from),
                at(f.to),
                f.certainty.name()
            ),
            DIM,
        )));
        let evidence = f.evidence_words();
        lines.push(Line::from(evidence.join("  ")));
        lines.push(Line::from(vec![
            Span::styled("fix: ", HEADER),
            Span::raw(f.advice().to_owned()),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        bottom,
    );
}

/// Where a finding is, in a few words.
fn finding_scope(f: &decoder::findings::Finding) -> String {
    let s = &f.scope;
    let mut parts = Vec::new();
    if let Some(m) = &s.method {
        parts.push(m.to_string());
    } else if let Some(sv) = &s.service {
        parts.push(sv.clone());
    }
    if let Some(c) = s.conn {
        parts.push(format!("conn {}", c.get()));
    }
    if let Some(a) = s.server.filter(|_| s.method.is_none()) {
        parts.push(a.to_string());
    }
    parts.join(", ")
}

fn spread(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let m = &app.model;
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        " Calls per server address, by service ",
        HEADER,
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut services: Vec<&Arc<str>> = m.spread.keys().collect();
    services.sort();
    let mut open_conns: std::collections::HashMap<std::net::SocketAddr, usize> =
        std::collections::HashMap::new();
    for c in m.conns.values().filter(|c| !c.closed) {
        *open_conns.entry(c.server).or_default() += 1;
    }
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {:<21} {:>5} {:>6} {:<15} {:>7}",
            "Server", "Open conns", "Calls", "Share", "Calls/s"
        ),
        HEADER,
    ))];
    for s in services {
        let servers = &m.spread[s];
        // (address, calls since the start or in the range, calls in the window)
        let mut list: Vec<(&std::net::SocketAddr, u64, u64)> = servers
            .iter()
            .map(|(a, x)| {
                let (calls, recent) = m.spread_calls(x);
                (a, calls, recent)
            })
            .filter(|(_, calls, _)| m.range.is_none() || *calls > 0)
            .collect();
        if list.is_empty() {
            continue;
        }
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let total: u64 = list.iter().map(|x| x.1).sum();
        let recent_total: u64 = list.iter().map(|x| x.2).sum();
        lines.push(Line::from(vec![
            Span::styled(s.to_string(), Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(
                format!(
                    "  {}, {}",
                    fmt::plural(list.len() as u64, "server"),
                    fmt::plural(total, "call")
                ),
                DIM,
            ),
        ]));
        for &(addr, calls, recent) in &list {
            let share = calls as f64 / total.max(1) as f64;
            let open_conns = open_conns.get(addr).copied().unwrap_or(0);
            let note = if recent == 0 && recent_total > 0 {
                Span::styled(" idle", Style::new().fg(Color::Yellow))
            } else if list.len() > 1 && recent == recent_total && recent_total > 0 {
                Span::styled(" takes every call", Style::new().fg(Color::Yellow))
            } else {
                Span::raw("")
            };
            // share is within 0..=1, so the bar is at most 10 wide.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bar = "█".repeat((share * 10.0).round() as usize);
            lines.push(Line::from(vec![
                Span::raw(format!(
                    "  {:<21} {:>10} {:>6} ",
                    addr.to_string(),
                    open_conns,
                    fmt::count(calls)
                )),
                Span::styled(format!("{bar:<10}"), Style::new().fg(Color::Green)),
                Span::raw(format!(
                    " {:>3.0}% {:>7}",
                    share * 100.0,
                    fmt::rate(m.rate(recent))
                )),
                note,
                Span::styled(
                    m.server_name(*addr)
                        .map_or(String::new(), |n| format!("  {n}")),
                    DIM,
                ),
            ]));
        }
    }
    if m.spread.is_empty() {
        lines.push(Line::from(Span::styled("no calls yet", DIM)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn detail(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let Some(d) = &app.detail else {
        return;
    };
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        " Call detail (Esc: back, j/k: scroll) ",
        HEADER,
    ));
    let inner = block.inner(area);
    app.page = usize::from(inner.height);
    // Rows the lines take once wrapped (a little more with word wrapping: slack of 3).
    let w = usize::from(inner.width.max(1));
    let rows: usize = d.lines.iter().map(|l| l.width().div_ceil(w).max(1)).sum();
    app.scroll = app.scroll.min((rows + 3).saturating_sub(app.page));
    let scroll = u16::try_from(app.scroll).unwrap_or(u16::MAX);
    frame.render_widget(
        Paragraph::new(d.lines.clone())
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

/// The frames view: only the lines on screen are drawn (a connection's log holds thousands),
/// each cut at the screen's width.
fn frames(frame: &mut Frame<'_>, area: Rect, app: &mut App) {
    let Some(f) = &app.frames else {
        return;
    };
    let block = Block::default().borders(Borders::TOP).title(Span::styled(
        format!(" Frames of {} (Esc: back, j/k: scroll) ", f.title),
        HEADER,
    ));
    let inner = block.inner(area);
    app.page = usize::from(inner.height);
    app.frames_scroll = app
        .frames_scroll
        .min(f.lines.len().saturating_sub(app.page));
    let shown: Vec<Line<'_>> = f
        .lines
        .iter()
        .skip(app.frames_scroll)
        .take(app.page)
        .cloned()
        .collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
}

fn status_line(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let s = &app.model.status;
    let warn = |n: u64| {
        if n > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        }
    };
    let items = [
        ("pkts", s.packets, Style::new()),
        ("drops", s.drops, warn(s.drops)),
        ("gaps", s.gaps, warn(s.gaps)),
        (
            "anom",
            s.anomalies,
            if s.anomalies > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        ),
        ("calls", app.model.calls, Style::new()),
        ("open", app.model.open_total, Style::new()),
        ("ui-drop", app.dropped, warn(app.dropped)),
    ];
    let mut counters = Vec::new();
    let mut used = 0;
    for (name, n, style) in items {
        let v = fmt::count(n);
        used += name.len() + v.len() + 2;
        counters.push(Span::styled(format!(" {name} "), DIM));
        counters.push(Span::styled(v, style));
    }
    let mut state = String::new();
    if let Some((done, total)) = s.progress
        && total > 0
        && !s.done
    {
        let frac = (done as f64 / total as f64).clamp(0.0, 1.0);
        // 100 % only once the replay is over (its last packet may still wait for its time).
        state.push_str(&format!(" {:.0}%", (100.0 * frac).min(99.0)));
        if let Some(f) = s.pace
            && frac > 0.0
            && f > 0.0
        {
            // The capture time still to come, at the rate the bytes went so far, paced.
            let left = app.model.capture_secs() * (1.0 - frac) / frac / f;
            state.push_str(&format!(
                " ~{} left",
                fmt::duration_short(Duration::from_secs_f64(left.clamp(0.0, 1e7)))
            ));
        }
    }
    if s.done {
        state.push_str(" done");
    }
    if let Some(f) = s.pace {
        // As `--speed` says it (`Speed`'s Display).
        state.push_str(&format!(" {f}x"));
    }
    let paused = if app.paused { " PAUSED " } else { "" };
    let room =
        usize::from(area.width).saturating_sub(used + state.chars().count() + paused.len() + 2);
    let mut spans = vec![Span::styled(
        format!(" {}{state} ", fmt::fit_left(&s.source, room.max(8))),
        Style::new().fg(Color::Black).bg(Color::Gray),
    )];
    spans.extend(counters);
    if app.paused {
        spans.push(Span::styled(
            paused,
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

fn hint_line(frame: &mut Frame<'_>, area: Rect, app: &App) {
    if let Some(text) = &app.input {
        let line = Line::from(vec![
            Span::styled("/", HEADER),
            Span::raw(text.clone()),
            Span::styled("█", Style::new().fg(Color::Gray)),
            Span::styled(
                "  Enter: keep  Esc / Ctrl-U: clear  (method: status: server: client: conn:)",
                DIM,
            ),
        ]);
        frame.render_widget(line, area);
        return;
    }
    let hints: &[(&str, &str)] = match app.view {
        _ if app.selecting.is_some_and(|s| s.anchor.is_none()) => &[
            ("←/→ h/l", "move"),
            ("Home/End", "first / last"),
            ("v", "mark this end"),
            ("Esc", "cancel"),
        ],
        _ if app.selecting.is_some() => &[
            ("←/→ h/l", "move"),
            ("v/Enter", "set the range"),
            ("Esc", "cancel"),
        ],
        View::Findings => &[
            ("q", "quit"),
            ("Tab", "view"),
            ("Enter", "the calls that show it"),
            ("↑/↓", "choose"),
            ("p", "pause"),
            ("?", "help"),
        ],
        View::Frames => &[
            ("Esc", "back"),
            ("j/k", "scroll"),
            ("PgDn", "page"),
            ("Home/End", "first / last"),
            ("q", "quit"),
        ],
        View::Detail => &[
            ("Esc", "back"),
            ("c", "grpcurl"),
            ("f", "frames"),
            ("W", "write"),
            ("j/k", "scroll"),
            ("PgDn", "page"),
            ("q", "quit"),
            ("?", "help"),
        ],
        View::Methods => &[
            ("q", "quit"),
            ("Tab", "view"),
            ("Enter", "calls"),
            ("/", "filter"),
            ("s", "sort"),
            ("g", "group"),
            ("w", "window"),
            ("v", "range"),
            ("p", "pause"),
            ("?", "help"),
        ],
        _ => &[
            ("q", "quit"),
            ("Tab", "view"),
            ("Enter", "open"),
            ("/", "filter"),
            ("s", "sort"),
            ("w", "window"),
            ("p", "pause"),
            ("?", "help"),
        ],
    };
    let mut spans = Vec::new();
    for (k, v) in hints {
        spans.push(Span::styled(
            format!(" {k}"),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(format!(" {v}"), DIM));
    }
    frame.render_widget(Line::from(spans), area);
}

const HELP: &[(&str, &str)] = &[
    ("Tab, Shift-Tab, 1-4", "next / previous view, or go to one"),
    ("↑ ↓ j k PgUp PgDn", "move; Home / End: first / last"),
    (
        "Enter",
        "open: method, conn, finding → calls; call → detail",
    ),
    ("Esc, Ctrl-U", "back; clear the filter"),
    ("/", "filter, every word must match:"),
    ("", "method:M status:error|ok|open|NAME"),
    ("", "server:A client:A conn:ID, or any text"),
    ("s / S", "next sort column / reverse (▼ largest first)"),
    ("w", "window: last 10s, 1m, 5m, whole capture"),
    ("v, x", "choose a range on the timeline / clear it"),
    ("c", "call detail: copy as a grpcurl command"),
    ("W, f", "call / connection: write its packets (pcapng),"),
    ("", "list its HTTP/2 frames (HPACK as sent)"),
    ("g", "Methods: group by service"),
    ("p", "pause (a replay stops reading)"),
    ("?", "this help (any key closes it)"),
    ("q, Ctrl-C", "quit"),
];

fn help(frame: &mut Frame<'_>, screen: Rect) {
    let w = screen.width.min(76);
    let h = screen
        .height
        .min(u16::try_from(HELP.len()).unwrap_or(20) + 4);
    let area = centered(screen, w, h);
    frame.render_widget(Clear, area);
    let mut lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<23}"), Style::new().fg(Color::Cyan)),
                Span::raw(*v),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "Rates, errors and latency: over the window in the header (w).",
        DIM,
    )));
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        area,
    );
}

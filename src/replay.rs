//! `grpctap replay`: read capture files in order through one reassembler and report.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use capture::{CaptureStats, FileSource, Reassembler};
use serde::Serialize;

use crate::cli::ReplayArgs;
use crate::connections::{Connections, render_table};
use crate::pipeline::Pipeline;
use crate::summary;
use decoder::DecoderLimits;

/// How one input file went.
#[derive(Debug, Serialize)]
pub(crate) struct FileReport {
    pub(crate) path: String,
    pub(crate) packets: u64,
    /// Why reading stopped before the end, if it did.
    pub(crate) error: Option<String>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    files: &'a [FileReport],
    capture: CaptureJson,
    connections: &'a [crate::connections::ConnRow],
    connections_not_listed: u64,
}

/// The capture counters, named as in docs/cli.md.
#[derive(Serialize)]
struct CaptureJson {
    packets: u64,
    bytes: u64,
    non_tcp: u64,
    unsupported_link: u64,
    truncated: u64,
    malformed: u64,
    ip_fragments: u64,
    ip_reassembled: u64,
    ip_fragments_dropped: u64,
    tcp_segments: u64,
    tcp_bytes: u64,
    out_of_order: u64,
    retransmitted: u64,
    overlap_conflicts: u64,
    out_of_window: u64,
    stray_segments: u64,
    gaps: u64,
    gap_bytes: u64,
    connections_opened: u64,
    connections_closed: u64,
    connections_expired: u64,
    connections_evicted: u64,
    connections_reused: u64,
}

impl From<&CaptureStats> for CaptureJson {
    fn from(s: &CaptureStats) -> Self {
        CaptureJson {
            packets: s.packets,
            bytes: s.bytes,
            non_tcp: s.non_tcp,
            unsupported_link: s.unsupported_link,
            truncated: s.truncated,
            malformed: s.malformed,
            ip_fragments: s.ip_fragments,
            ip_reassembled: s.ip_reassembled,
            ip_fragments_dropped: s.ip_fragments_dropped,
            tcp_segments: s.tcp_segments,
            tcp_bytes: s.tcp_bytes,
            out_of_order: s.out_of_order,
            retransmitted: s.retransmitted,
            overlap_conflicts: s.overlap_conflicts,
            out_of_window: s.out_of_window,
            stray_segments: s.stray_segments,
            gaps: s.gaps,
            gap_bytes: s.gap_bytes,
            connections_opened: s.conns_opened,
            connections_closed: s.conns_closed,
            connections_expired: s.conns_expired,
            connections_evicted: s.conns_evicted,
            connections_reused: s.conns_reused,
        }
    }
}

/// Reads every file into `reasm`, events to `sink` (the caller finishes the reassembler).
/// Returns one report per file, and whether `before_packet` stopped the replay; a file that
/// fails is reported and the next one is still read. `show_progress`: a progress line on
/// stderr when it is a terminal (not under the UI, which owns the terminal).
/// Called with each packet's time, before the packet is handled; returning false stops the
/// replay there.
pub(crate) type BeforePacket<'a, S> =
    &'a mut dyn FnMut(u64, &CaptureStats, &FileAt<'_>, &mut S) -> bool;

/// Where a replay is: the file being read, bytes read of it and its size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileAt<'a> {
    pub(crate) path: &'a Path,
    pub(crate) done: u64,
    pub(crate) total: u64,
}

pub(crate) fn replay_files<S: capture::StreamSink>(
    files: &[impl AsRef<Path>],
    reasm: &mut Reassembler,
    sink: &mut S,
    max_block: usize,
    show_progress: bool,
    before_packet: BeforePacket<'_, S>,
) -> (Vec<FileReport>, bool) {
    let mut progress = Progress::new(show_progress);
    let mut reports = Vec::with_capacity(files.len());
    let mut stopped = false;
    for path in files {
        if stopped {
            break;
        }
        let path = path.as_ref();
        let mut report = FileReport {
            path: path.display().to_string(),
            packets: 0,
            error: None,
        };
        match FileSource::open(path, max_block) {
            Err(e) => report.error = Some(e.to_string()),
            Ok(mut src) => loop {
                if report.packets.is_multiple_of(16_384) {
                    progress.show(&src);
                }
                let (done, total) = src.progress();
                match src.next_packet() {
                    Ok(Some(pkt)) => {
                        let at = FileAt { path, done, total };
                        if !before_packet(pkt.ts.0, reasm.stats(), &at, sink) {
                            stopped = true;
                            break;
                        }
                        report.packets += 1;
                        reasm.handle_packet(&pkt, sink);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        report.error = Some(e.to_string());
                        break;
                    }
                }
            },
        }
        reports.push(report);
    }
    progress.clear();
    (reports, stopped)
}

/// A progress line on stderr for long files, only when stderr is a terminal.
struct Progress {
    on: bool,
    last: std::time::Instant,
    shown: bool,
}

impl Progress {
    fn new(on: bool) -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: on && std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
            shown: false,
        }
    }

    fn show(&mut self, src: &FileSource) {
        if !self.on || self.last.elapsed() < std::time::Duration::from_millis(250) {
            return;
        }
        self.last = std::time::Instant::now();
        let (done, total) = src.progress();
        let pct = if total > 0 {
            100.0 * done as f64 / total as f64
        } else {
            0.0
        };
        let width = 30usize;
        // pct is in 0..=100, so this is at most `width`.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let filled = ((pct / 100.0) * width as f64) as usize;
        eprint!(
            "\r{} [{}{}] {:5.1}% {:.0}/{:.0} MB",
            src.path().display(),
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            pct,
            done as f64 / 1e6,
            total as f64 / 1e6
        );
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

fn capture_counters(s: &CaptureStats, drops: u64) -> exporter::CaptureCounters {
    exporter::CaptureCounters {
        packets: s.packets,
        bytes: s.bytes,
        drops,
        gaps: s.gaps,
        gap_bytes: s.gap_bytes,
        truncated: s.truncated,
    }
}

/// Sends every event to the decoder pipeline and, when asked, the connection list.
struct Tee<'a> {
    pipeline: &'a mut Pipeline,
    conns: Option<&'a mut Connections>,
}

impl capture::StreamSink for Tee<'_> {
    fn on_event(&mut self, ev: capture::StreamEvent<'_>) {
        if let Some(c) = self.conns.as_mut() {
            c.on_event(ev);
        }
        self.pipeline.on_event(ev);
    }
}

/// Opens PATH for writing, `-` meaning stdout.
fn writer(path: &Path) -> anyhow::Result<Box<dyn std::io::Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout())));
    }
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut w = writer(path)?;
    serde_json::to_writer_pretty(&mut w, value)?;
    writeln!(w)?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What the decoder keeps of each call: metadata for `--metadata` and the UI, messages for
/// `--bodies` and (fewer, shorter) for the UI.
pub(crate) fn decoder_limits(metadata: bool, bodies: bool, tui: bool) -> DecoderLimits {
    DecoderLimits {
        capture_metadata: metadata || tui,
        bodies_per_call: match (bodies, tui) {
            (true, _) => 64,
            (false, true) => 16,
            (false, false) => 0,
        },
        body_bytes: if bodies { 4 << 20 } else { 256 << 10 },
        ..DecoderLimits::default()
    }
}

/// Where packets come from.
#[allow(clippy::large_enum_variant)] // one per run, never moved after
pub(crate) enum Input {
    /// `args.files`, in order.
    Files,
    /// A live interface, until asked to stop (or for `duration`).
    #[cfg(feature = "live")]
    Live {
        src: capture::live::LiveSource,
        duration: Option<std::time::Duration>,
        /// `-w`: the packets also go to pcapng files.
        write: Option<capture::write::PcapngWriter>,
        /// Go on as this user once everything is open (started as root).
        drop_to: Option<String>,
    },
}

pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    run_input(args, Input::Files)
}

/// Decodes `input` into every output `args` asks for.
pub(crate) fn run_input(args: &ReplayArgs, input: Input) -> anyhow::Result<ExitCode> {
    let limits = args.out.limits.to_limits();
    let max_block = limits.max_block_size;
    let dash = Path::new("-");
    let to_stdout = [
        &args.out.calls,
        &args.out.summary_json,
        &args.connections_json,
        &args.out.metrics_text,
    ]
    .iter()
    .filter(|p| p.as_deref() == Some(dash))
    .count();
    anyhow::ensure!(
        !(args.tui && to_stdout > 0),
        "--tui draws on stdout: write --calls, --summary-json, --connections-json or --metrics-text to a file"
    );
    anyhow::ensure!(
        to_stdout <= 1,
        "only one of --calls, --summary-json, --connections-json, --metrics-text can write to stdout"
    );
    let calls = args.out.calls.as_deref().map(writer).transpose()?;
    let dec_limits = decoder_limits(args.out.metadata, args.out.bodies, args.tui);
    let mut registry = prometheus_client::registry::Registry::default();
    let want_metrics =
        args.out.metrics.is_some() || args.out.metrics_text.is_some() || args.openmetrics.is_some();
    let recorder = want_metrics.then(|| {
        let config = exporter::ExporterConfig {
            server_label: args.out.metrics_server_label,
            ..Default::default()
        };
        exporter::Recorder::new(exporter::Metrics::new(&mut registry), config)
    });
    let registry = std::sync::Arc::new(registry);
    let server = match &args.out.metrics {
        Some(addr) => {
            let s = exporter::server::MetricsServer::start(addr, registry.clone())
                .context("starting the metrics server")?;
            eprintln!("grpctap: serving metrics on http://{}/metrics", s.addr());
            Some(s)
        }
        None => None,
    };
    let sources = args.out.schemas.sources();
    // --bodies and the UI always need schemas: google.rpc.Status decodes rich errors without
    // any.
    let schemas = (!sources.is_empty() || args.out.bodies || args.tui).then(|| {
        let (schemas, errors) = decoder::schema::Schemas::load(&sources);
        for e in &errors {
            eprintln!("grpctap: schema {e} (left out)");
        }
        std::sync::Arc::new(schemas)
    });
    let mut recorder = recorder;
    if let (Some(r), Some(s)) = (recorder.as_mut(), &schemas) {
        let methods: Vec<(&str, decoder::CallType)> = s
            .methods()
            .into_iter()
            .map(|(p, m)| (p, m.call_type))
            .collect();
        r.use_schemas(&methods, args.out.metrics_precreate);
    }
    let mut pipeline = Pipeline::new(dec_limits, args.out.max_methods, calls, recorder);
    pipeline.schemas = schemas.clone();
    pipeline.out.json_metadata = args.out.metadata;
    // Everything that needs root is open (interface, output files, metrics port): go on as
    // the unprivileged user before the UI starts.
    #[cfg(feature = "live")]
    if let Input::Live {
        drop_to: Some(user),
        ..
    } = &input
    {
        drop_privileges(user)?;
    }
    let watch = if args.tui {
        let decode = tui::detail::Decode {
            schemas: schemas.clone(),
            cap: args.out.max_decompressed,
        };
        let (watch, feeder) = crate::watch::start(args.out.max_methods, decode, args.speed)?;
        pipeline.out.ui = Some(feeder);
        Some(watch)
    } else {
        None
    };
    let shared = watch.as_ref().map(|w| w.shared.clone());
    let ui_speed = watch
        .as_ref()
        .map(crate::watch::Watch::speed)
        .unwrap_or_default();
    let mut pace = crate::watch::Pace::new(args.speed);
    pipeline.out.bodies = args.out.bodies.then(|| crate::calls_json::Bodies {
        schemas,
        cap: args.out.max_decompressed,
    });
    let mut conns =
        (args.connections || args.connections_json.is_some()).then(Connections::default);
    let mut reasm = Reassembler::new(limits);
    let started = std::time::Instant::now();
    // Packets the kernel or libpcap dropped (live capture).
    #[allow(unused_mut)] // only a live capture changes it
    let mut drops = 0u64;
    // Lines for stderr once the UI is gone (live capture).
    #[allow(unused_mut)]
    let mut notes: Vec<String> = Vec::new();
    let (reports, stopped) = {
        let mut tee = Tee {
            pipeline: &mut pipeline,
            conns: conns.as_mut(),
        };
        let mut backfill = args
            .openmetrics
            .as_ref()
            .map(|_| exporter::backfill::Backfill::new(args.openmetrics_step, 50_000_000));
        let (reports, stopped) = match input {
            Input::Files => {
                let files = args.files.len();
                let mut packets = 0u64;
                let mut before =
                    |ts: u64, stats: &CaptureStats, at: &FileAt<'_>, tee: &mut Tee<'_>| {
                        packets += 1;
                        let mut tick = || {
                            if tee.pipeline.ui_due() {
                                let status = crate::watch::replay_status(
                                    Some(at),
                                    files,
                                    stats,
                                    &tee.pipeline.out.stats,
                                    ui_speed.clone(),
                                    false,
                                );
                                tee.pipeline.ui_snapshot(status);
                            }
                        };
                        if packets.is_multiple_of(256) {
                            tick();
                        }
                        if !pace.wait(ts, shared.as_deref(), &mut tick) {
                            return false;
                        }
                        if let Some(b) = backfill.as_mut().filter(|b| b.due(ts)) {
                            if let Some(m) = tee.pipeline.out.metrics.as_mut() {
                                m.set_capture(capture_counters(stats, 0));
                            }
                            b.sample(ts, &registry);
                        }
                        true
                    };
                let (reports, stopped) = replay_files(
                    &args.files,
                    &mut reasm,
                    &mut tee,
                    max_block,
                    !args.tui,
                    &mut before,
                );
                if tee.pipeline.out.ui.is_some() {
                    let last = args.files.last().map(|p| FileAt {
                        path: p,
                        done: 0,
                        total: 0,
                    });
                    let status = crate::watch::replay_status(
                        last.as_ref(),
                        files,
                        reasm.stats(),
                        &tee.pipeline.out.stats,
                        ui_speed.clone(),
                        true,
                    );
                    tee.pipeline.ui_finish(status);
                }
                (reports, stopped)
            }
            #[cfg(feature = "live")]
            Input::Live {
                mut src,
                duration,
                mut write,
                drop_to: _,
            } => {
                let stop = match &shared {
                    Some(s) => s.quit.clone(),
                    None => quit_on_signals()?,
                };
                let io = LiveIo {
                    stop: &stop,
                    duration,
                    write: &mut write,
                    drops: &mut drops,
                    notes: &mut notes,
                };
                live_loop(&mut src, io, &mut reasm, &mut tee)
            }
        };
        reasm.finish(&mut tee);
        if let (Some(b), Some(path)) = (backfill.as_mut(), &args.openmetrics) {
            if let Some(m) = tee.pipeline.out.metrics.as_mut() {
                m.set_capture(capture_counters(reasm.stats(), drops));
            }
            b.finish(&registry);
            let mut w = writer(path)?;
            b.write(&mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        (reports, stopped)
    };
    if let Some(w) = watch {
        w.wait()?;
    }
    for n in &notes {
        eprintln!("grpctap: {n}");
    }
    if stopped {
        eprintln!(
            "grpctap: replay stopped before the end, as asked: the figures cover the {} packets read",
            reasm.stats().packets
        );
    }
    pipeline.flush().context("writing calls")?;
    if let Some(m) = &mut pipeline.out.metrics {
        m.set_capture(capture_counters(reasm.stats(), drops));
    }
    if let Some(path) = &args.out.metrics_text {
        let mut w = writer(path)?;
        w.write_all(exporter::server::render(&registry, false).as_bytes())?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.out.stats {
        let secs = started.elapsed().as_secs_f64();
        let s = reasm.stats();
        let calls = pipeline.out.agg.total.calls + pipeline.out.agg.total.unfinished;
        eprintln!(
            "grpctap: {} packets, {:.1} MB in {:.3} s: {:.1} MB/s, {:.0} packets/s, {} calls; peak RSS {:.1} MiB",
            s.packets,
            s.bytes as f64 / 1e6,
            secs,
            s.bytes as f64 / 1e6 / secs,
            s.packets as f64 / secs,
            calls,
            capture::stats::peak_rss_kib() as f64 / 1024.0
        );
    }
    for r in &reports {
        if let Some(e) = &r.error {
            eprintln!(
                "grpctap: {e} ({} packets read before it were processed)",
                r.packets
            );
        }
    }
    let stats = reasm.stats();
    let out = &pipeline.out;
    let span_s = summary::span(out.first_ts, out.last_ts);
    if let Some(path) = &args.out.summary_json {
        write_json(path, &summary::to_json(&out.agg, stats, &out.stats, span_s))?;
    }
    if let (Some(path), Some(conns)) = (&args.connections_json, &conns) {
        let report = JsonReport {
            files: &reports,
            capture: stats.into(),
            connections: &conns.rows,
            connections_not_listed: conns.folded,
        };
        write_json(path, &report)?;
    }
    if to_stdout == 0 {
        let mut w = std::io::stdout().lock();
        w.write_all(summary::render_table(&out.agg, stats, &out.stats, span_s).as_bytes())?;
        if let (true, Some(conns)) = (args.connections, &conns) {
            writeln!(w)?;
            w.write_all(render_table(conns).as_bytes())?;
            writeln!(w, "\n{}", summary_line(stats))?;
        }
    }
    if let Some(server) = server {
        match args.metrics_linger {
            Some(secs) => std::thread::sleep(std::time::Duration::from_secs(secs)),
            None => {
                eprintln!("grpctap: replay done; still serving metrics (Ctrl-C to stop)");
                loop {
                    std::thread::park();
                }
            }
        }
        server.stop();
    }
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        n if n == reports.len() && reports.iter().all(|r| r.packets == 0) => ExitCode::from(2),
        _ => ExitCode::from(1),
    })
}

/// Switches the whole process (every thread) to `user`: its groups, group and user id.
#[cfg(feature = "live")]
fn drop_privileges(user: &str) -> anyhow::Result<()> {
    use nix::unistd::{Gid, User, geteuid, setgid, setgroups, setuid};
    let u = User::from_name(user)
        .with_context(|| format!("looking up user {user}"))?
        .with_context(|| format!("--user {user}: no such user"))?;
    setgroups(&[Gid::from_raw(u.gid.as_raw())])
        .and_then(|()| setgid(u.gid))
        .and_then(|()| setuid(u.uid))
        .with_context(|| format!("switching to user {user}"))?;
    anyhow::ensure!(geteuid() == u.uid, "still not user {user} after switching");
    Ok(())
}

/// A flag SIGINT, SIGTERM and SIGHUP set (the UI sets its own when it runs).
#[cfg(feature = "live")]
fn quit_on_signals() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, flag.clone()).context("signal handler")?;
    }
    Ok(flag)
}

/// What a live loop reads and writes besides packets.
#[cfg(feature = "live")]
struct LiveIo<'a> {
    stop: &'a std::sync::atomic::AtomicBool,
    duration: Option<std::time::Duration>,
    write: &'a mut Option<capture::write::PcapngWriter>,
    drops: &'a mut u64,
    /// Lines for stderr, printed once the UI has given the terminal back.
    notes: &'a mut Vec<String>,
}

/// Reads a live interface until `stop` (or `duration`), reading the kernel's drop counters
/// every second, writing the packets out when asked (`-w`).
#[cfg(feature = "live")]
fn live_loop(
    src: &mut capture::live::LiveSource,
    io: LiveIo<'_>,
    reasm: &mut Reassembler,
    tee: &mut Tee<'_>,
) -> (Vec<FileReport>, bool) {
    let LiveIo {
        stop,
        duration,
        write,
        drops,
        notes,
    } = io;
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let mut report = FileReport {
        path: format!("interface {}", src.iface()),
        packets: 0,
        error: None,
    };
    let mut last_stats = Instant::now();
    let status = |reasm: &Reassembler, tee: &Tee<'_>, drops: u64, iface: &str, done: bool| {
        crate::watch::live_status(iface, reasm.stats(), &tee.pipeline.out.stats, drops, done)
    };
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed)
            || duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        match src.next_packet(Duration::from_millis(100)) {
            Ok(Some(pkt)) => {
                report.packets += 1;
                if let Some(w) = write.as_mut()
                    && let Err(e) = w.write(&pkt)
                {
                    // The capture goes on; only the file stops.
                    notes.push(format!("writing packets: {e}; no more were written"));
                    *write = None;
                }
                reasm.handle_packet(&pkt, tee);
            }
            Ok(None) => {}
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            let s = src.stats();
            *drops = s.dropped + s.if_dropped;
            if let Some(m) = tee.pipeline.out.metrics.as_mut() {
                m.set_capture(capture_counters(reasm.stats(), *drops));
            }
        }
        if tee.pipeline.ui_due() {
            let st = status(reasm, tee, *drops, src.iface(), false);
            tee.pipeline.ui_snapshot(st);
        }
    }
    let s = src.stats();
    *drops = s.dropped + s.if_dropped;
    if let Some(w) = write.as_mut() {
        notes.push(match w.flush() {
            Ok(()) => format!(
                "packets written to {}",
                w.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("writing packets: {e}"),
        });
    }
    let st = status(reasm, tee, *drops, src.iface(), true);
    tee.pipeline.ui_finish(st);
    notes.push(format!(
        "{}: {} packets received by the filter, {} dropped by the kernel, {} by the interface",
        src.iface(),
        s.received,
        s.dropped,
        s.if_dropped
    ));
    (vec![report], false)
}

fn summary_line(s: &CaptureStats) -> String {
    format!(
        "capture: {} packets, {} bytes; {} connections ({} closed, {} still open, {} expired, {} evicted); \
         tcp: {} segments, {} payload bytes, {} out of order, {} retransmitted, {} gaps ({} bytes); \
         skipped: {} non-TCP, {} truncated, {} malformed, {} unsupported link",
        s.packets,
        s.bytes,
        s.conns_opened,
        s.conns_closed,
        s.conns_opened - s.conns_closed - s.conns_expired - s.conns_evicted - s.conns_reused,
        s.conns_expired,
        s.conns_evicted,
        s.tcp_segments,
        s.tcp_bytes,
        s.out_of_order,
        s.retransmitted,
        s.gaps,
        s.gap_bytes,
        s.non_tcp,
        s.truncated,
        s.malformed,
        s.unsupported_link,
    )
}

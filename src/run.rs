//! One run, whatever the input: builds every output the arguments ask for, reads the source
//! through the capture layer and the decoder (the one input loop), then hands over to
//! [`crate::report`].

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use capture::input::{Next, PacketSource};
use capture::{CaptureStats, Nanos, Reassembler};
use decoder::DecoderLimits;
use decoder::output::Tick;

use crate::cli::ReplayArgs;
use crate::connections::Connections;
use crate::decode::{Decode, health};
use crate::fanout::Fanout;
use crate::files::writer;
use crate::pipeline::Pipeline;
use crate::summary::Summary;

/// What a verb adds to the arguments: how the run may be stopped and what happens once
/// everything is open.
#[derive(Default)]
pub(crate) struct RunOptions {
    /// Stop after this much wall time (live capture).
    pub(crate) duration: Option<Duration>,
    /// Set by a signal handler (live capture without the UI).
    pub(crate) stop: Option<Arc<AtomicBool>>,
    /// Runs once every input and output is open, before the UI starts (dropping privileges).
    pub(crate) when_open: Option<Box<dyn FnOnce() -> anyhow::Result<()>>>,
    /// Lines for stderr, printed after the UI has given the terminal back.
    pub(crate) notes: Vec<String>,
    /// Packets this says no to are skipped before anything else sees them (`replay FILE...
    /// FILTER`, a BPF filter).
    pub(crate) keep: Option<crate::bpf::PacketFilter>,
    /// The BPF filter `keep` was made from (the UI makes it again to read the files again).
    pub(crate) keep_expr: Option<String>,
    /// TLS secrets (from `--tls-keylog` and the capture's Decryption Secrets Blocks).
    pub(crate) keylog: Arc<decoder::tls::keylog::KeyLog>,
    /// The `--tls-keylog` files, read again before a connection waiting for keys is closed.
    pub(crate) key_files: Option<crate::keylog::KeyFiles>,
    /// The capture files a replay reads (the UI reads them again for a call's packets); none
    /// for a live capture or standard input.
    pub(crate) files: Vec<std::path::PathBuf>,
}

/// What the decoder keeps of each call: metadata for `--metadata` and the UI, messages for
/// `--bodies` and (fewer, shorter) for the UI.
pub(crate) fn decoder_limits(metadata: bool, bodies: bool, tui: bool, cap: usize) -> DecoderLimits {
    DecoderLimits {
        capture_metadata: metadata || tui,
        // --bodies keeps every message within the per-call byte budget; the UI the first
        // few of each call.
        bodies_per_call: match (bodies, tui) {
            (true, _) => usize::MAX,
            (false, true) => 16,
            (false, false) => 0,
        },
        body_bytes: if bodies { 4 << 20 } else { 256 << 10 },
        // Calls whose :path was lost are named from their messages whenever schemas are given
        // (without schemas there is nothing to fit them to).
        infer_methods: Some(cap),
        ..DecoderLimits::default()
    }
}

/// Sends every event to the decoder pipeline and, when asked, the connection list.
pub(crate) struct Tee<'a> {
    pub(crate) pipeline: &'a mut Pipeline,
    pub(crate) conns: Option<&'a mut Connections>,
}

impl capture::StreamSink for Tee<'_> {
    fn on_event(&mut self, ev: capture::StreamEvent<'_>) {
        if let Some(c) = self.conns.as_mut() {
            c.on_event(ev);
        }
        self.pipeline.on_event(ev);
    }

    fn on_dns(&mut self, ts: capture::Nanos, from: std::net::SocketAddr, payload: &[u8]) {
        self.pipeline.on_dns(ts, from, payload);
    }
}

/// Decodes `src` into every output `args` asks for, then reports.
pub(crate) fn run<S: PacketSource>(
    args: &ReplayArgs,
    src: &mut S,
    mut opts: RunOptions,
) -> anyhow::Result<ExitCode> {
    let limits = args.out.limits.to_limits();
    let to_stdout = args.outputs_to_stdout();
    anyhow::ensure!(
        !(args.tui && to_stdout > 0),
        "--tui draws on stdout: write --calls, --summary-json, --connections-json or --metrics-text to a file"
    );
    anyhow::ensure!(
        to_stdout <= 1,
        "only one of --calls, --messages, --summary-json, --connections-json, --metrics-text can write to stdout"
    );
    decoder::metadata::add_secret_parts(&args.out.secret_header);
    if args.out.calls.is_none() && !args.tui && args.out.messages.is_none() {
        for (on, flag) in [
            (args.out.metadata, "--metadata"),
            (args.out.bodies, "--bodies"),
        ] {
            if on {
                eprintln!(
                    "grpctap: {flag} shows in --calls records and the UI: add --calls PATH (or --tui)"
                );
            }
        }
    }
    let calls = args.out.calls.as_deref().map(writer).transpose()?;
    let messages = args.out.messages.as_deref().map(writer).transpose()?;
    let mut dec_limits = DecoderLimits {
        max_kept_state: args.out.limits.max_kept_bytes,
        max_decoder_state: args.out.limits.max_decoder_bytes,
        body_budget: args.out.bodies_max_bytes,
        ..decoder_limits(
            args.out.metadata,
            args.out.bodies,
            args.tui,
            args.out.max_decompressed,
        )
    };
    if args.out.otlp_message_events {
        dec_limits.message_times = 128;
    }
    if args.out.messages.is_some() {
        // Every message is handed on whole (to the 4 MiB bound), as --bodies keeps them.
        dec_limits.stream_bodies = true;
        dec_limits.body_bytes = dec_limits.body_bytes.max(4 << 20);
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let want_metrics =
        args.out.metrics.is_some() || args.out.metrics_text.is_some() || args.openmetrics.is_some();
    let mut recorder = want_metrics.then(|| {
        let config = exporter::ExporterConfig {
            server_label: args.out.metrics_server_label,
            protocol_label: args.out.metrics_protocol_label,
            max_methods: args.out.max_methods,
        };
        let sides = exporter::Sides {
            server: args.out.metrics_side != "client",
            client: args.out.metrics_side != "server",
        };
        let names = args.out.metrics_names.as_str();
        let metrics = exporter::Metrics::with_names(
            &mut registry,
            sides,
            names != "otel",
            names != "go-grpc",
        );
        exporter::Recorder::new(metrics, config)
    });
    // Counted also on the Prometheus endpoint, so its registry takes them now.
    let otlp_stats = Arc::new(exporter::otlp::OtlpStats::default());
    if want_metrics
        && (args.out.otlp.is_some() || std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some())
    {
        otlp_stats.register(&mut registry);
    }
    let registry = Arc::new(registry);
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
    for (flag, paths) in [
        ("--proto-path", &sources.proto_paths),
        ("--proto", &sources.protos),
        ("--descriptor-set", &sources.descriptor_sets),
    ] {
        if let Some(p) = paths.iter().find(|p| !p.exists()) {
            anyhow::bail!("{flag} {}: no such file or directory", p.display());
        }
    }
    // --bodies and the UI always need schemas: google.rpc.Status decodes rich errors without
    // any.
    let schemas = (!sources.is_empty() || args.out.bodies || args.tui).then(|| {
        let (schemas, errors) = crate::schemas::load(&sources);
        for e in &errors {
            eprintln!("grpctap: schema {e} (left out)");
        }
        Arc::new(schemas)
    });
    if let (Some(r), Some(s)) = (recorder.as_mut(), &schemas) {
        let methods: Vec<(&str, decoder::CallType)> = s
            .methods()
            .into_iter()
            .map(|(p, m)| {
                let ty = decoder::CallType::from_streaming(m.client_streaming, m.server_streaming);
                (p, ty)
            })
            .collect();
        r.use_schemas(&methods, args.out.metrics_precreate);
    }
    // Server reflection seen in the capture adds to them (docs/architecture.md).
    let store = decoder::reflection::SchemaStore::new(schemas);
    // Everything that needs root is open (interface, output files, metrics port).
    if let Some(f) = opts.when_open.take() {
        f()?;
    }
    let watch = if args.tui {
        let decode = tui::detail::Decode {
            store: Some(store.clone()),
            cap: args.out.max_decompressed,
            proto_paths: sources.proto_paths.clone(),
        };
        // A replay's files can be read again for the packets of a call or a connection (not
        // standard input, nor a live capture).
        let paths = std::mem::take(&mut opts.files);
        let files = (!src.is_live()
            && !paths.is_empty()
            && paths.iter().all(|p| p.as_os_str() != "-"))
        .then(|| {
            let how = crate::extract::Redecode {
                limits: dec_limits,
                capture: limits.clone(),
                keylog: opts.keylog.clone(),
                store: store.clone(),
                call_filter: args.out.call_filter.clone().unwrap_or_default(),
                keep: opts.keep_expr.clone(),
                max_methods: args.out.max_methods,
                findings: findings_maker(args, &store),
            };
            crate::extract::capture_files(paths, std::env::current_dir().unwrap_or_default(), how)
        });
        Some(crate::watch::start(
            args.out.max_methods,
            decode,
            args.speed,
            files,
        )?)
    } else {
        None
    };
    let mut out = Fanout::default();
    out.filter_calls(
        decoder::filter::Filter::parse(args.out.call_filter.as_deref().unwrap_or("")),
        (args.from, args.to),
    );
    let maker = findings_maker(args, &store);
    let findings = || maker.as_ref().map(|m| m());
    out.push(Summary::new(args.out.max_methods).with_findings(findings()));
    if let Some(r) = recorder {
        // The exporter's own engine: `grpctap_findings` is refreshed as the capture goes on.
        out.push(r.with_findings(findings()));
    }
    let otlp = exporter::otlp::OtlpConfig::from_env(
        args.out.otlp.as_deref(),
        &args.out.otlp_header,
        &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
    )
    .map(|mut cfg| {
        cfg.side = match args.out.metrics_side.as_str() {
            "client" => exporter::otlp::SpanSide::Client,
            "both" => exporter::otlp::SpanSide::Both,
            _ => exporter::otlp::SpanSide::Server,
        };
        cfg.max_methods = args.out.max_methods;
        exporter::otlp::Otlp::start(cfg, otlp_stats.clone())
    });
    let otlp_report = otlp
        .as_ref()
        .map(|o| (o.stats(), o.config().traces_url.clone()));
    if let Some(o) = otlp {
        out.push(o);
    }
    if let Some(w) = calls {
        let bodies = args.out.bodies.then(|| crate::calls_json::Bodies {
            store: store.clone(),
            cap: args.out.max_decompressed,
        });
        out.push(crate::calls_json::JsonLines::new(
            w,
            args.out.metadata,
            bodies,
        ));
    }
    if let Some(w) = messages {
        let bodies = crate::calls_json::Bodies {
            store: store.clone(),
            cap: args.out.max_decompressed,
        };
        out.push(crate::calls_json::MessageLines::new(w, bodies));
    }
    let (watch, shared) = match watch {
        Some((w, feeder)) => {
            out.push(feeder.with_findings(findings()));
            let shared = w.shared.clone();
            (Some(w), Some(shared))
        }
        None => (None, None),
    };
    let mut conns =
        (args.connections || args.connections_json.is_some()).then(Connections::default);
    if conns.is_some() {
        out.tls_kept = Some(Vec::new());
    }
    let mut pipeline = Pipeline::new(dec_limits, store, out).with_keylog(opts.keylog.clone());
    let workers = crate::threads::workers(Some(args.out.limits.threads));
    // The UI reads its open calls from the decoders, the connection list and message lines
    // follow every stream event, the OpenMetrics backfill samples at packet times: those
    // decode on this thread.
    let one_thread =
        args.tui || conns.is_some() || args.out.messages.is_some() || args.openmetrics.is_some();
    let mut sharded = (workers > 1 && !one_thread)
        .then(|| {
            crate::threads::Sharded::start(crate::threads::Setup {
                workers,
                limits: limits.clone(),
                dec_limits,
                store: pipeline.store.clone(),
                keylog: opts.keylog.clone(),
                key_files: opts.key_files.clone().filter(|f| !f.is_empty()),
                messages: pipeline.out.wants_messages(),
                lines: pipeline
                    .out
                    .get_mut::<crate::calls_json::JsonLines>()
                    .map(|j| j.lines.clone()),
                live: src.is_live().then(|| src.kernel_buffer()),
            })
        })
        .transpose()?;
    if let Some(files) = opts.key_files.take().filter(|f| !f.is_empty()) {
        pipeline.refresh_keys = Some(Box::new(move || files.refresh()));
    }
    let mut reasm = Reassembler::new(limits);
    let mut backfill = args
        .openmetrics
        .as_ref()
        .map(|_| exporter::backfill::Backfill::new(args.openmetrics_step, 50_000_000));
    let started = Instant::now();
    let stop = opts
        .stop
        .clone()
        .or_else(|| shared.as_ref().map(|s| s.quit.clone()));
    let pace = crate::watch::Pace::new(if src.is_live() {
        crate::cli::Speed::Max
    } else {
        args.speed
    });
    let mut input = Input {
        pace,
        shared: shared.as_deref(),
        stop: stop.as_deref(),
        deadline: opts.duration.map(|d| started + d),
        backfill: backfill.as_mut(),
        registry: &registry,
        progress: crate::progress::Progress::new(!args.tui && !src.is_live()),
        name: String::new(),
        name_of: usize::MAX,
        drops: 0,
        keep: opts.keep.take(),
    };
    let (outcome, stats, drops) = match sharded.as_mut() {
        None => input.read_all(
            &mut Direct {
                reasm: &mut reasm,
                tee: Tee {
                    pipeline: &mut pipeline,
                    conns: conns.as_mut(),
                },
            },
            src,
        ),
        Some(sh) => input.read_all(
            &mut crate::threads::ShardedDecode {
                clock: &mut reasm,
                sh,
                pipeline: &mut pipeline,
            },
            src,
        ),
    };
    if let Some(dropped) = sharded.as_ref().map(|sh| sh.queue_drops).filter(|&d| d > 0) {
        opts.notes.push(format!(
            "{dropped} packets dropped: a decoding thread's queue was full (fewer --threads, or a filter, lighten the load)"
        ));
    }
    if let (Some(c), Some(kept)) = (conns.as_mut(), pipeline.out.tls_kept.take()) {
        c.set_tls(kept);
    }
    opts.notes.extend(src.finish());
    if let (Some(b), Some(path)) = (backfill.as_mut(), &args.openmetrics) {
        if let Some(r) = pipeline.out.get_mut::<exporter::Recorder>() {
            r.set_capture(health(&stats, drops));
        }
        b.finish(&registry);
        let mut w = writer(path)?;
        b.write(&mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(w) = watch {
        w.wait()?;
    }
    for n in &opts.notes {
        eprintln!("grpctap: {n}");
    }
    let learned = pipeline.store.learned();
    if learned.files > 0 || learned.waiting > 0 {
        eprintln!(
            "grpctap: schemas from server reflection in the capture: {} files ({} services: {}){}",
            learned.files,
            learned.services.len(),
            learned.services.join(", "),
            match learned.waiting {
                0 => String::new(),
                n => format!(
                    "; {n} files left out (their dependencies never came, or they did not build)"
                ),
            }
        );
    }
    if outcome == Outcome::Stopped && !src.is_live() && !crate::files::stdout_closed() {
        eprintln!(
            "grpctap: replay stopped before the end, as asked: the figures cover the {} packets read",
            stats.packets
        );
    }
    pipeline.out.finish().context("writing calls")?;
    if let Some((stats, url)) = &otlp_report {
        eprintln!(
            "grpctap: otlp: {} spans sent to {url}, {} dropped ({} requests given up, {} retries); {} metric exports",
            stats.spans_sent.get(),
            stats.spans_dropped.get(),
            stats.failed_requests.get(),
            stats.retries.get(),
            stats.metric_exports.get(),
        );
    }
    if let Some(r) = pipeline.out.get_mut::<exporter::Recorder>() {
        r.set_capture(health(&stats, drops));
    }
    crate::report::report(
        args,
        crate::report::Done {
            pipeline: &mut pipeline,
            stats: &stats,
            conns: conns.as_ref(),
            inputs: src.reports(),
            registry: &registry,
            started,
            server,
            otlp: otlp_report.map(|(s, _)| s),
        },
    )
}

/// The run's findings engine maker (none: `--no-findings`).
fn findings_maker(
    args: &ReplayArgs,
    store: &Arc<decoder::reflection::SchemaStore>,
) -> Option<crate::extract::FindingsMaker> {
    if args.out.no_findings {
        return None;
    }
    let mut t = decoder::findings::Thresholds::default();
    for spec in &args.out.finding_threshold {
        // Checked when the arguments were parsed.
        let _ = t.set(spec);
    }
    let store = store.clone();
    Some(Arc::new(move || {
        decoder::findings::Findings::new(t).with_idempotency(crate::schemas::idempotency(&store))
    }))
}

/// Read and total bytes, when the input has a size (a pipe has none).
fn sized(bytes: Option<(u64, Option<u64>)>) -> Option<(u64, u64)> {
    let (done, total) = bytes?;
    Some((done, total?))
}

/// How reading ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Every packet was read.
    End,
    /// Asked to stop (q, a signal, --duration).
    Stopped,
    /// The source failed.
    Failed(String),
}

/// One thread: the capture layer and the decoders here.
struct Direct<'a, 't> {
    reasm: &'a mut Reassembler,
    tee: Tee<'t>,
}

impl Decode for Direct<'_, '_> {
    fn time_of(&mut self, ts: Nanos) -> Nanos {
        self.reasm.time_of(ts)
    }

    #[inline]
    fn packet(&mut self, pkt: &capture::Packet<'_>) {
        self.reasm.handle_packet(pkt, &mut self.tee);
    }

    fn out(&mut self) -> &mut Fanout {
        &mut self.tee.pipeline.out
    }

    fn reached(&mut self, to: Nanos) {
        let p = &mut self.tee.pipeline;
        p.last_ts = p.last_ts.max(to);
    }

    /// The live views see the calls still open as open; then the capture layer ends them.
    fn end(&mut self, source: &str, drops: u64) -> (CaptureStats, u64) {
        self.tick(source, drops, None, true);
        self.reasm.finish(&mut self.tee);
        (*self.reasm.stats(), drops)
    }

    fn tick(&mut self, source: &str, drops: u64, progress: Option<(u64, u64)>, done: bool) {
        let p = &mut self.tee.pipeline;
        let t = Tick {
            now: p.last_ts,
            first: p.first_ts,
            health: health(self.reasm.stats(), drops),
            source,
            progress,
            done,
            conns: &p.conns,
        };
        if done {
            p.out.end_of_input(&t);
        } else {
            p.out.tick(&t);
        }
    }
}

/// The input loop's state: written once for files and live capture.
struct Input<'a> {
    pace: crate::watch::Pace,
    shared: Option<&'a tui::feed::Shared>,
    stop: Option<&'a AtomicBool>,
    deadline: Option<Instant>,
    backfill: Option<&'a mut exporter::backfill::Backfill>,
    registry: &'a prometheus_client::registry::Registry,
    progress: crate::progress::Progress,
    /// The source's name, for the input it had when last asked.
    name: String,
    name_of: usize,
    drops: u64,
    keep: Option<crate::bpf::PacketFilter>,
}

/// Packets between two ticks of the outputs.
const TICK_PACKETS: u64 = 256;
/// How often a live capture reads the kernel's drop counters.
const DROPS_EVERY: Duration = Duration::from_secs(1);

impl Input<'_> {
    fn tick(&self, dec: &mut impl Decode, progress: Option<(u64, u64)>, done: bool) {
        dec.tick(&self.name, self.drops, progress, done);
    }

    /// Reads `src` to its end into `dec`, then ends the input there: the run's outcome, the
    /// capture counters and the packets dropped.
    fn read_all<S: PacketSource>(
        &mut self,
        dec: &mut impl Decode,
        src: &mut S,
    ) -> (Outcome, CaptureStats, u64) {
        let outcome = self.read(dec, src);
        let kernel = if src.is_live() { src.drops() } else { 0 };
        let (stats, drops) = dec.end(&self.name, kernel);
        (outcome, stats, drops)
    }

    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
            || crate::files::stdout_closed()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Reads `src` to its end (generic, so a file source's packets come without a virtual call).
    fn read<S: PacketSource>(&mut self, dec: &mut impl Decode, src: &mut S) -> Outcome {
        let live = src.is_live();
        let mut packets = 0u64;
        let mut last_drops = Instant::now();
        let mut last_tick = Instant::now();
        let mut pos = src.position();
        let mut first_seen = false;
        loop {
            if self.stopping() {
                self.progress.clear();
                return Outcome::Stopped;
            }
            // A replay refreshes its outputs every few hundred packets; a live capture by the
            // clock too, as packets may trickle.
            let due = packets.is_multiple_of(TICK_PACKETS)
                || (live
                    && packets.is_multiple_of(4)
                    && last_tick.elapsed() >= Duration::from_millis(50));
            if due {
                last_tick = Instant::now();
                pos = src.position();
                if pos.input != self.name_of {
                    self.name = src.name();
                    self.name_of = pos.input;
                }
                if live && last_drops.elapsed() >= DROPS_EVERY {
                    last_drops = Instant::now();
                    self.drops = src.drops();
                }
                if packets.is_multiple_of(16_384) {
                    self.progress.show(&self.name, pos.bytes);
                }
                self.tick(dec, sized(pos.bytes), false);
            }
            let pkt = match src.next_packet() {
                Ok(Next::Packet(p)) => p,
                Ok(Next::Idle) => {
                    self.tick(dec, sized(pos.bytes), false);
                    continue;
                }
                Ok(Next::End) => break,
                Err(e) => {
                    self.progress.clear();
                    return Outcome::Failed(e);
                }
            };
            packets += 1;
            if let Some(keep) = self.keep.as_mut()
                && !keep(&pkt)
            {
                continue;
            }
            // A timestamp far off the others is taken at the clock's time (capture::clock).
            let ts = dec.time_of(pkt.ts);
            let pkt = capture::Packet { ts, ..pkt };
            if !first_seen {
                first_seen = true;
                dec.out().set_first_packet(ts);
            }
            if let Some((_, to)) = dec.out().range()
                && ts > to
            {
                // Past --to: no call that ends later is reported, so nothing more is read. The
                // capture went on to here: its time reached the end of the range.
                dec.reached(to);
                break;
            }
            let mut paced = true;
            {
                let Input {
                    pace,
                    shared,
                    name,
                    drops,
                    ..
                } = self;
                let mut tick = || dec.tick(name, *drops, sized(pos.bytes), false);
                if !pace.wait(ts, *shared, &mut tick) {
                    paced = false;
                }
            }
            if !paced {
                self.progress.clear();
                return Outcome::Stopped;
            }
            if self.backfill.as_ref().is_some_and(|b| b.due(ts)) {
                self.tick(dec, sized(pos.bytes), false);
                if let Some(b) = self.backfill.as_mut() {
                    b.sample(ts, self.registry);
                }
            }
            dec.packet(&pkt);
        }
        self.progress.clear();
        Outcome::End
    }
}

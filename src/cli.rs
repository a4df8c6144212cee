//! Command-line interface (tcpdump/tshark habits: files as arguments, `-` for stdout).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Passive gRPC tap: rebuilds gRPC calls from packet captures and reports per-method rates,
/// errors by grpc-status, and latency.
#[derive(Debug, Parser)]
#[command(
    name = "grpctap",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read capture files (pcap, pcapng, optionally .gz) and report what they contain.
    ///
    /// Files are read as one capture, merged by packet time as mergecap does, whatever order
    /// they are named in: a connection that continues in the next file (rotated captures) stays
    /// one connection, and captures of the same time (two interfaces) interleave. A file whose
    /// own time runs backwards is noted. `-` is standard input. A corrupt or truncated file is
    /// reported with the offset where it went wrong; everything before that point is kept and
    /// the remaining files are still read. Exit status: 0 when every file was read to its end,
    /// 1 when some file stopped early, 2 on a usage error or when no file could be read.
    #[command(
        after_help = "Examples:\n  grpctap replay testdata/captures/py-basic-lo.pcap\n  \
        grpctap replay --calls - trace-*.pcapng.gz\n  \
        tcpdump -i any -w - tcp port 50051 | grpctap replay -"
    )]
    Replay(ReplayArgs),

    /// Capture live from a network interface and report the gRPC calls on it.
    ///
    /// Shows the terminal UI when stdout is a terminal (`--no-tui` to run as a daemon with
    /// `--metrics` and/or `--calls FILE`); prints the summary table when it ends (q, Ctrl-C,
    /// SIGTERM, or `--duration`). Needs root, or the binary given the capabilities
    /// (`setcap cap_net_raw,cap_net_admin=eip`), and a build with the `live` feature.
    #[command(after_help = "Examples:\n  grpctap capture -i eth0 tcp port 50051\n  \
        grpctap capture tcp port 50051 -i lo -nn -s 0 -c 1000 -w x.pcapng\n  \
        grpctap capture -i any --no-tui --metrics :9464 --calls /var/log/grpctap/calls.jsonl")]
    Capture(CaptureArgs),

    /// List the interfaces that can be captured on.
    Interfaces,
}

/// Bytes kept of each packet unless told: whole packets (tcpdump's default too).
pub(crate) const DEFAULT_SNAPLEN: i32 = 262_144;

#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// Interface to capture on (`any`: every interface).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        default_value = "any"
    )]
    pub(crate) iface: String,

    /// A BPF filter, as tcpdump takes it (`tcp port 50051`); all TCP and DNS (`tcp or udp port 53`) when left out. Options
    /// may come before or after it, as with tcpdump; `--` ends the options.
    #[arg(value_name = "FILTER")]
    pub(crate) filter: Vec<String>,

    /// Bytes kept of each packet (`-s 0`: the default, whole packets).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = DEFAULT_SNAPLEN)]
    pub(crate) snaplen: i32,

    /// Kernel capture buffer.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20, conflicts_with = "buffer_kib")]
    pub(crate) buffer_size: i32,

    /// Kernel capture buffer in KiB, as tcpdump -B takes it.
    #[arg(short = 'B', value_name = "KIB")]
    pub(crate) buffer_kib: Option<i32>,

    /// Do not put the interface in promiscuous mode (tcpdump -p).
    #[arg(short = 'p', long)]
    pub(crate) no_promisc: bool,

    /// Accepted for tcpdump's habit (`-n`, `-nn`): grpctap never looks names up.
    #[arg(short = 'n', action = clap::ArgAction::Count)]
    pub(crate) numeric: u8,

    /// Stop after COUNT packets (tcpdump -c).
    #[arg(short = 'c', long = "count", value_name = "COUNT")]
    pub(crate) count: Option<u64>,

    /// Let the kernel batch packets (fewer wakeups, more latency) instead of immediate mode.
    #[arg(long)]
    pub(crate) no_immediate: bool,

    /// Show the terminal UI (the default when stdout is a terminal).
    #[arg(long, conflicts_with = "no_tui")]
    pub(crate) tui: bool,

    /// No terminal UI (a daemon: use --metrics and/or --calls FILE).
    #[arg(long)]
    pub(crate) no_tui: bool,

    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) duration: Option<f64>,

    /// When started as root: once the interface and the outputs are open, go on as USER (like
    /// tcpdump -Z). Default `nobody`; `--user root` keeps root.
    #[arg(short = 'Z', long, value_name = "USER")]
    pub(crate) user: Option<String>,

    /// Also write the packets to FILE (pcapng) while decoding, for a replay later.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub(crate) write: Option<PathBuf>,

    /// With -w: start a new file (FILE-1, FILE-2, ... before the extension) before one passes
    /// SIZE bytes (suffixes k, M, G: powers of 1000).
    #[arg(long, value_name = "SIZE", requires = "write", value_parser = parse_size)]
    pub(crate) rotate_size: Option<u64>,

    /// With -w: start a new file before one passes MILLIONS × 1,000,000 bytes (tcpdump -C).
    #[arg(
        short = 'C',
        value_name = "MILLIONS",
        requires = "write",
        conflicts_with = "rotate_size"
    )]
    pub(crate) rotate_millions: Option<u64>,

    /// With -w: start a new file every SECS seconds of capture (tcpdump -G; the files are
    /// numbered as with --rotate-size).
    #[arg(short = 'G', long, value_name = "SECS", requires = "write")]
    pub(crate) rotate_seconds: Option<u64>,

    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Capture files (`-`: standard input), merged by packet time; then, optionally, a BPF
    /// filter as tcpdump -r takes it (`x.pcap tcp port 50051`; a build with `live`).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// Also print the TCP connections: endpoints, packets and bytes each way, gaps, how each
    /// direction ended.
    #[arg(long)]
    pub(crate) connections: bool,

    /// Write the TCP connections and capture counters as JSON to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    pub(crate) connections_json: Option<PathBuf>,

    /// With --metrics: after the replay, keep serving for SECS seconds, then exit.
    #[arg(long, value_name = "SECS", requires = "metrics")]
    pub(crate) metrics_linger: Option<u64>,

    /// Write the metrics over the capture's own time, sampled every --openmetrics-step, as
    /// OpenMetrics with timestamps (for `promtool tsdb create-blocks-from openmetrics`).
    #[arg(long, value_name = "PATH")]
    pub(crate) openmetrics: Option<PathBuf>,

    /// Step of --openmetrics, seconds of capture time.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) openmetrics_step: u64,

    /// Watch the replay in the terminal UI: per-method rates, errors and latency, recent calls
    /// and open streams, each call's timeline and decoded messages, connections. The summary
    /// table is printed when you quit.
    #[arg(long)]
    pub(crate) tui: bool,

    /// Replay pace: `max` (as fast as it decodes), `realtime` (as the packets were captured),
    /// or a factor of real time (`10x`, `0.5x`).
    #[arg(long, value_name = "SPEED", default_value = "max", value_parser = parse_speed)]
    pub(crate) speed: Speed,

    /// Report only the calls that ended at or after TIME (every output: the table, --calls,
    /// the metrics, the UI; rates over the range). TIME is an offset from the capture's first
    /// packet (`+90s`, `+1m30s`), `YYYY-MM-DDTHH:MM:SSZ` (or with `+HH:MM`), or Unix seconds.
    /// The packets before it are still decoded, so calls that began earlier keep their names.
    #[arg(long, value_name = "TIME", value_parser = crate::timespec::parse)]
    pub(crate) from: Option<crate::timespec::TimeSpec>,

    /// Report only the calls that ended at or before TIME (as --from takes it); reading stops
    /// at the first packet after it.
    #[arg(long, value_name = "TIME", value_parser = crate::timespec::parse)]
    pub(crate) to: Option<crate::timespec::TimeSpec>,

    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

impl ReplayArgs {
    /// How many outputs go to stdout (`-`): the table is printed only when none does.
    pub(crate) fn outputs_to_stdout(&self) -> usize {
        [
            &self.out.calls,
            &self.out.messages,
            &self.out.summary_json,
            &self.connections_json,
            &self.out.metrics_text,
        ]
        .iter()
        .filter(|p| p.as_deref() == Some(std::path::Path::new("-")))
        .count()
    }
}

/// What decoding produces and where it goes: the same for replay and live capture.
#[derive(Debug, Clone, Args)]
pub(crate) struct OutputArgs {
    /// Write every finished call as a JSON line to PATH (`-`: stdout, instead of the table).
    #[arg(long, value_name = "PATH")]
    pub(crate) calls: Option<PathBuf>,

    /// Write the per-method summary as JSON to PATH (`-`: stdout, instead of the table).
    #[arg(long, value_name = "PATH")]
    pub(crate) summary_json: Option<PathBuf>,

    /// Include each call's messages in `--calls` records, decoded as JSON (with schemas: by the
    /// method's message types; without: field numbers, like `protoc --decode_raw`), after
    /// decompressing them by their grpc-encoding (gzip, deflate, snappy, zstd).
    #[arg(long)]
    pub(crate) bodies: bool,

    /// Bytes of messages each direction of a call keeps for --bodies: its first messages,
    /// whole; past it the record says how many were dropped (`requests_dropped`,
    /// `responses_dropped`). Use --messages to follow streams of any length.
    #[arg(long, value_name = "BYTES", default_value_t = decoder::calls::tracker::DEFAULT_BODY_BUDGET)]
    pub(crate) bodies_max_bytes: usize,

    /// Report only the calls that match EXPR, in the table, --calls, --messages, the metrics
    /// and the UI: words that must all match, as the UI's `/` filter takes them
    /// (`method:TEXT`, `status:NAME|ok|error|open`, `server:TEXT`, `client:TEXT`, `conn:ID`, or
    /// any text of the method, status, grpc-message, addresses).
    #[arg(long, value_name = "EXPR")]
    pub(crate) call_filter: Option<String>,

    /// Write every message as a JSON line to PATH as it is seen (`-`: stdout, instead of the
    /// table): its call (connection, stream, method as known then), direction, number, time
    /// and the message decoded as --bodies decodes it.
    #[arg(long, value_name = "PATH")]
    pub(crate) messages: Option<PathBuf>,

    /// Bytes a decompressed message may reach; larger ones are reported, not decoded.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub(crate) max_decompressed: usize,

    /// Include each call's metadata in `--calls` records (custom headers, `-bin` values as sent;
    /// authorization, cookies and other secrets redacted).
    #[arg(long)]
    pub(crate) metadata: bool,

    /// Also redact metadata whose name contains TEXT (any case; repeatable). Built in: auth,
    /// token, key, secret, password, passwd, cookie, session, jwt, credential.
    #[arg(long, value_name = "TEXT")]
    pub(crate) secret_header: Vec<String>,

    /// Serve Prometheus metrics on ADDR (`127.0.0.1:9464`, `:9464` for all addresses) at
    /// /metrics while replaying, and afterwards until interrupted (or --metrics-linger).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<String>,

    /// Write the metrics exposition (Prometheus text format) at the end to PATH (`-`: stdout).
    #[arg(long, value_name = "PATH")]
    pub(crate) metrics_text: Option<PathBuf>,

    /// Add a grpc_server label (the server address) to the gRPC series.
    #[arg(long)]
    pub(crate) metrics_server_label: bool,

    /// Add an rpc_protocol label (grpc, grpc-web, connect) to the gRPC series, for services
    /// that serve gRPC-Web or Connect too.
    #[arg(long)]
    pub(crate) metrics_protocol_label: bool,

    /// Which go-grpc-prometheus series to export: `server` (grpc_server_*, as the servers
    /// handled the calls), `client` (grpc_client_*, as the callers made them: for a tap on a
    /// host whose programs are clients), or `both`.
    #[arg(long, value_name = "SIDE", default_value = "server", value_parser = ["server", "client", "both"])]
    pub(crate) metrics_side: String,

    /// Send every call as an OpenTelemetry span, and the RPC duration histograms, to this
    /// OTLP/HTTP endpoint (protobuf, gzip; `/v1/traces` and `/v1/metrics` are appended). The
    /// OTEL_EXPORTER_OTLP_* environment variables are read as the SDKs read them
    /// (docs/otel.md). The span kind follows --metrics-side.
    #[arg(long, value_name = "URL")]
    pub(crate) otlp: Option<String>,

    /// A header for the OTLP requests (`K=V`, repeatable; values are never printed).
    #[arg(long, value_name = "K=V")]
    pub(crate) otlp_header: Vec<String>,

    /// Add an event to each span for each of the call's first 128 messages each way (when
    /// it arrived, which way, its size).
    #[arg(long)]
    pub(crate) otlp_message_events: bool,

    /// The names of the call series on the Prometheus endpoint: go-grpc-prometheus's
    /// (`grpc_server_handled_total`, ...), OpenTelemetry's (`rpc_server_call_duration_seconds`
    /// with rpc_system_name, rpc_method, rpc_status_code, error_type), or both.
    #[arg(long, value_name = "NAMES", default_value = "go-grpc", value_parser = ["go-grpc", "otel", "both"])]
    pub(crate) metrics_names: String,

    /// Print processing figures on stderr at the end: time, MB/s and packets/s of capture read,
    /// calls decoded, peak memory.
    #[arg(long)]
    pub(crate) stats: bool,

    /// Print only the findings (which gRPC failure modes the traffic shows, with the evidence;
    /// docs/findings.md) instead of the table.
    #[arg(long, conflicts_with = "no_findings")]
    pub(crate) findings: bool,

    /// Do not look for findings.
    #[arg(long)]
    pub(crate) no_findings: bool,

    /// Change a findings threshold (NAME=VALUE, repeatable; the names and defaults are in
    /// docs/findings.md).
    #[arg(long = "finding-threshold", value_name = "NAME=VALUE", value_parser = parse_threshold)]
    pub(crate) finding_threshold: Vec<String>,

    /// Distinct methods reported apart in the table, the UI and the metrics; calls of further
    /// methods are counted under `other`.
    #[arg(long, value_name = "N", default_value_t = decoder::aggregate::DEFAULT_MAX_METHODS)]
    pub(crate) max_methods: usize,

    /// With schemas: start every gRPC series of every method and code at zero.
    #[arg(long)]
    pub(crate) metrics_precreate: bool,

    #[command(flatten)]
    pub(crate) schemas: SchemaArgs,

    /// TLS key log (NSS format, as SSLKEYLOGFILE writes it) to decrypt TLS connections with;
    /// repeatable. In a live capture the file is followed as it grows. Key logs in the
    /// capture's pcapng Decryption Secrets Blocks are used too. See docs/tls.md.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_keylog: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        Some((i, 'g' | 'G')) => (&s[..i], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected bytes, like 100M"))?;
    if !(v.is_finite() && v * mult >= 4096.0) {
        return Err(format!("{s:?}: at least 4096 bytes"));
    }
    // Finite, positive and checked above: the cast keeps the value (saturating at u64::MAX).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((v * mult) as u64)
}

/// How fast a replay goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Speed {
    /// As fast as it decodes.
    Max,
    /// This many times real time.
    Factor(f64),
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) => write!(f, "{x}x"),
        }
    }
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    let factor = match s {
        "max" => return Ok(Speed::Max),
        "realtime" => 1.0,
        _ => s
            .strip_suffix('x')
            .unwrap_or(s)
            .parse::<f64>()
            .map_err(|_| format!("{s:?}: expected max, realtime or a factor like 10x"))?,
    };
    if factor.is_finite() && factor > 0.0 {
        Ok(Speed::Factor(factor))
    } else {
        Err(format!("{s:?}: the factor must be above 0"))
    }
}

/// Protobuf schemas: they give each method its call type (and message types).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schemas")]
pub(crate) struct SchemaArgs {
    /// Every .proto file below DIR, with DIR as an include root (repeatable).
    #[arg(long, value_name = "DIR")]
    pub(crate) proto_path: Vec<PathBuf>,

    /// A .proto file (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) proto: Vec<PathBuf>,

    /// A FileDescriptorSet from `protoc -o` or `buf build` (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) descriptor_set: Vec<PathBuf>,
}

impl SchemaArgs {
    pub(crate) fn sources(&self) -> crate::schemas::SchemaSources {
        crate::schemas::SchemaSources {
            proto_paths: self.proto_path.clone(),
            protos: self.proto.clone(),
            descriptor_sets: self.descriptor_set.clone(),
        }
    }
}

/// Bounds on memory; the defaults suit one busy host.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub(crate) struct LimitArgs {
    /// Connections tracked at once; past it the least recently active is evicted.
    #[arg(long, value_name = "N", default_value_t = capture::CaptureLimits::default().max_connections)]
    pub(crate) max_connections: usize,

    /// Out-of-order bytes buffered per connection direction before a hole is given up.
    #[arg(long, value_name = "BYTES", default_value_t = capture::CaptureLimits::default().max_ooo_bytes_per_direction)]
    pub(crate) max_reorder_bytes: usize,

    /// Seconds an open connection may stay silent before it is expired.
    #[arg(long, value_name = "SECS", default_value_t = capture::CaptureLimits::default().idle_timeout.as_secs())]
    pub(crate) idle_timeout: u64,

    /// Bytes all open calls together keep for output (metadata, messages for --bodies and the
    /// UI); past it, new ones are not kept (anomaly state_shed) and calls are still counted.
    #[arg(long, value_name = "BYTES", default_value_t = decoder::calls::tracker::DEFAULT_KEPT_STATE)]
    pub(crate) max_kept_bytes: usize,

    /// Bytes of decoder state all connections together hold (header tables, frame and header
    /// block buffers, open calls); past it the connection holding the most drops its tables and
    /// buffers and goes on as after a gap (anomaly conn_state_shed), largest first.
    #[arg(long, value_name = "BYTES", default_value_t = decoder::conn::DEFAULT_DECODER_STATE)]
    pub(crate) max_decoder_bytes: usize,

    /// Decoding threads, each owning the connections between some pairs of hosts (chosen by a
    /// hash of the two addresses); the outputs see the same calls in the same order whatever N is. 0: one per
    /// core. The UI, --connections, --messages and --openmetrics decode on one thread.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) threads: usize,
}

impl LimitArgs {
    pub(crate) fn to_limits(&self) -> capture::CaptureLimits {
        capture::CaptureLimits {
            max_connections: self.max_connections,
            max_ooo_bytes_per_direction: self.max_reorder_bytes,
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout),
            ..capture::CaptureLimits::default()
        }
    }
}

/// A findings threshold as `NAME=VALUE`, checked.
fn parse_threshold(s: &str) -> Result<String, String> {
    decoder::findings::Thresholds::default().set(s)?;
    Ok(s.to_owned())
}

//! `grpctap capture` and `grpctap interfaces`: live capture through the same pipeline as a
//! replay (cargo feature `live`; without it, both say how to get it).

use std::process::ExitCode;

use crate::cli::CaptureArgs;

#[cfg(not(feature = "live"))]
const NOT_BUILT: &str = "this grpctap was built without live capture: install libpcap-dev and \
    build with `cargo build-live` (`--features live` into target/live/), then run \
    target/live/release/grpctap (see README)";

#[cfg(not(feature = "live"))]
pub(crate) fn run(_args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(NOT_BUILT)
}

#[cfg(not(feature = "live"))]
pub(crate) fn interfaces() -> anyhow::Result<ExitCode> {
    anyhow::bail!(NOT_BUILT)
}

/// Lists what `-i` accepts.
#[cfg(feature = "live")]
pub(crate) fn interfaces() -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let list = capture::live::interfaces()?;
    let mut w = std::io::stdout().lock();
    for i in list {
        let mut flags = Vec::new();
        if i.up {
            flags.push("up");
        }
        if i.running {
            flags.push("running");
        }
        if i.loopback {
            flags.push("loopback");
        }
        let addrs: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
        writeln!(
            w,
            "{:<16} {:<22} {}{}",
            i.name,
            flags.join(","),
            addrs.join(" "),
            i.description
                .map(|d| format!("  ({d})"))
                .unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Captures until asked to stop, then reports as a replay does.
#[cfg(feature = "live")]
pub(crate) fn run(args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let filter = if args.filter.is_empty() {
        // TCP, and DNS (its answers name the servers).
        "tcp or udp port 53".to_owned()
    } else {
        args.filter.join(" ")
    };
    let src = capture::live::LiveSource::open(&capture::live::LiveConfig {
        iface: args.iface.clone(),
        filter: Some(filter),
        snaplen: snaplen(args.snaplen),
        buffer_size: args
            .buffer_kib
            .map_or(args.buffer_size, |k| k.saturating_mul(1024)),
        promisc: !args.no_promisc,
        immediate: !args.no_immediate,
    })?;
    let write = match &args.write {
        Some(path) => Some(
            capture::write::PcapngWriter::create(
                path,
                src.linktype(),
                u32::try_from(snaplen(args.snaplen)).unwrap_or(262_144),
                capture::write::Rotate {
                    bytes: args
                        .rotate_size
                        .or(args.rotate_millions.map(|m| m.saturating_mul(1_000_000))),
                    every: args
                        .rotate_seconds
                        .map(|s| capture::Nanos(s.saturating_mul(1_000_000_000))),
                },
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        None => None,
    };
    let tui = args.tui || (!args.no_tui && std::io::stdout().is_terminal());
    // Started as root: go on as --user (default nobody) once everything is open.
    let drop_to = if nix::unistd::geteuid().is_root() {
        match args.user.as_deref().unwrap_or("nobody") {
            "root" => None,
            u => Some(u.to_owned()),
        }
    } else {
        None
    };
    let replay = crate::cli::ReplayArgs {
        files: Vec::new(),
        connections: false,
        connections_json: None,
        // A live session ends when asked: the metrics server stops with it.
        metrics_linger: Some(0),
        openmetrics: None,
        openmetrics_step: 10,
        tui,
        speed: crate::cli::Speed::Max,
        // A live capture has no range: it reports what comes (--duration ends it).
        from: None,
        to: None,
        out: args.out.clone(),
    };
    let duration = args
        .duration
        .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
    // Key logs: read now, followed as the applications append to them; what they hold goes
    // into the -w files as Decryption Secrets Blocks.
    let keylog = std::sync::Arc::new(decoder::tls::keylog::KeyLog::new());
    let new_lines = write
        .as_ref()
        .map(|_| std::sync::Arc::new(crate::keylog::NewLines::default()));
    let key_files =
        crate::keylog::KeyFiles::load(&args.out.tls_keylog, keylog.clone(), new_lines.clone())?;
    key_files.follow(std::time::Duration::from_millis(100));
    let mut src = Recording {
        src,
        write,
        notes: Vec::new(),
        left: args.count,
        secrets: new_lines,
    };
    let opts = crate::run::RunOptions {
        keylog,
        key_files: Some(key_files),
        duration,
        // Without the UI (which has its own), SIGINT, SIGTERM and SIGHUP end the capture.
        stop: if tui { None } else { Some(quit_on_signals()?) },
        when_open: drop_to.map(|user| {
            Box::new(move || drop_privileges(&user)) as Box<dyn FnOnce() -> anyhow::Result<()>>
        }),
        notes: Vec::new(),
        // The kernel filters live packets.
        keep: None,
        keep_expr: None,
        // No files to read again (capture -w writes them; replay those).
        files: Vec::new(),
    };
    crate::run::run(&replay, &mut src, opts)
}

/// A live interface whose packets also go to pcapng files (`-w`).
#[cfg(feature = "live")]
struct Recording {
    src: capture::live::LiveSource,
    write: Option<capture::write::PcapngWriter>,
    /// For stderr once the UI has given the terminal back.
    notes: Vec<String>,
    /// Packets still to read (`-c COUNT`).
    left: Option<u64>,
    /// Key log lines to write into the files before the next packet.
    secrets: Option<std::sync::Arc<crate::keylog::NewLines>>,
}

/// tcpdump's `-s 0`: whole packets.
#[cfg(feature = "live")]
fn snaplen(s: i32) -> i32 {
    if s <= 0 {
        crate::cli::DEFAULT_SNAPLEN
    } else {
        s
    }
}

#[cfg(feature = "live")]
impl capture::input::PacketSource for Recording {
    fn next_packet(&mut self) -> Result<capture::input::Next<'_>, String> {
        if self.left == Some(0) {
            return Ok(capture::input::Next::End);
        }
        let next = capture::input::PacketSource::next_packet(&mut self.src)?;
        if let (capture::input::Next::Packet(_), Some(n)) = (&next, self.left.as_mut()) {
            *n -= 1;
        }
        // Keys read since the last packet go into the file before it (taken only when they
        // will be written: most calls here return no packet).
        if let (capture::input::Next::Packet(_), Some(w), Some(s)) =
            (&next, self.write.as_mut(), self.secrets.as_ref())
            && let Some(text) = s.take()
            && let Err(e) = w.write_secrets(&text)
        {
            self.notes.push(format!("writing TLS secrets: {e}"));
        }
        if let (capture::input::Next::Packet(p), Some(w)) = (&next, self.write.as_mut())
            && let Err(e) = w.write(p)
        {
            // The capture goes on; only the file stops.
            self.notes
                .push(format!("writing packets: {e}; no more were written"));
            self.write = None;
        }
        Ok(next)
    }
    fn position(&self) -> capture::input::Position {
        capture::input::PacketSource::position(&self.src)
    }
    fn name(&self) -> String {
        capture::input::PacketSource::name(&self.src)
    }
    fn drops(&mut self) -> u64 {
        capture::input::PacketSource::drops(&mut self.src)
    }
    fn is_live(&self) -> bool {
        true
    }
    fn kernel_buffer(&self) -> usize {
        capture::input::PacketSource::kernel_buffer(&self.src)
    }
    fn reports(&self) -> Vec<capture::input::InputReport> {
        capture::input::PacketSource::reports(&self.src)
    }
    fn finish(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        // Keys read after the last packet (written late, or read at a connection's close).
        if let (Some(w), Some(text)) = (
            self.write.as_mut(),
            self.secrets.as_ref().and_then(|s| s.take()),
        ) && let Err(e) = w.write_secrets(&text)
        {
            notes.push(format!("writing TLS secrets: {e}"));
        }
        if let Some(w) = self.write.as_mut() {
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
        notes.extend(capture::input::PacketSource::finish(&mut self.src));
        notes
    }
}

/// Switches the whole process (every thread) to `user`: its groups, group and user id.
#[cfg(feature = "live")]
fn drop_privileges(user: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
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
    use anyhow::Context as _;
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

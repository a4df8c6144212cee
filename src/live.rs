//! `grpctap capture` and `grpctap interfaces`: live capture through the same pipeline as a
//! replay (cargo feature `live`; without it, both say how to get it).

use std::process::ExitCode;

use crate::cli::CaptureArgs;

#[cfg(not(feature = "live"))]
const NOT_BUILT: &str = "this grpctap was built without live capture: install libpcap-dev and \
    build with `cargo build --release --features live` (see README)";

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
        "tcp".to_owned()
    } else {
        args.filter.join(" ")
    };
    let src = capture::live::LiveSource::open(&capture::live::LiveConfig {
        iface: args.iface.clone(),
        filter: Some(filter),
        snaplen: args.snaplen,
        buffer_size: args.buffer_size,
        promisc: !args.no_promisc,
        immediate: !args.no_immediate,
    })?;
    let write = match &args.write {
        Some(path) => Some(
            capture::write::PcapngWriter::create(
                path,
                src.linktype(),
                u32::try_from(args.snaplen).unwrap_or(262_144),
                args.rotate_size,
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
        out: args.out.clone(),
    };
    let duration = args
        .duration
        .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
    crate::replay::run_input(
        &replay,
        crate::replay::Input::Live {
            src,
            duration,
            write,
            drop_to,
        },
    )
}

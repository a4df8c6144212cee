//! `replay FILE... FILTER`: the words after the capture files are a BPF filter, compiled by
//! libpcap (built with `--features live`); the UI compiles it again to read the files again.

/// Says which packets go on to be decoded (a BPF filter over files).
pub(crate) type PacketFilter = Box<dyn FnMut(&capture::Packet<'_>) -> bool>;

#[cfg(feature = "live")]
pub(crate) fn bpf(expr: &str) -> anyhow::Result<PacketFilter> {
    let mut f = capture::live::OfflineFilter::new(expr)
        .map_err(|e| anyhow::anyhow!("{e} (the words after the capture files are a BPF filter)"))?;
    let mut warned = 0;
    Ok(Box::new(move |p| {
        let pass = f.matches(p);
        if f.refused.len() > warned {
            warned = f.refused.len();
            if let Some((lt, e)) = f.refused.last() {
                eprintln!("grpctap: link type {lt}: {e}; its packets do not pass");
            }
        }
        pass
    }))
}

#[cfg(not(feature = "live"))]
pub(crate) fn bpf(expr: &str) -> anyhow::Result<PacketFilter> {
    anyhow::bail!(
        "`{expr}` is not a capture file: a BPF filter after the files needs libpcap (build with \
         --features live, see README); --call-filter selects calls in every build"
    )
}

//! Live capture from a network interface through libpcap (cargo feature `live`).
//!
//! The handle is non-blocking and waited on with poll(2) and our own timeout: libpcap's read
//! timeout does not end a blocking read on an idle interface by itself, and a tap must notice
//! a quit request while nothing arrives.

use std::time::Duration;

use crate::event::Nanos;
use crate::source::Packet;

/// How to open an interface.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Interface name (`any`: every interface, Linux cooked headers).
    pub iface: String,
    /// A BPF filter (tcpdump syntax), if any.
    pub filter: Option<String>,
    /// Bytes kept of each packet.
    pub snaplen: i32,
    /// Kernel buffer, bytes.
    pub buffer_size: i32,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Deliver each packet at once instead of batching (lower latency, more wakeups).
    pub immediate: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            iface: "any".into(),
            filter: None,
            snaplen: 262_144,
            buffer_size: 32 << 20,
            promisc: true,
            immediate: true,
        }
    }
}

/// Why live capture failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Not allowed to capture: needs root or capabilities.
    #[error(
        "{iface}: not allowed to capture ({msg}); run as root, or give the binary the capabilities: \
         sudo setcap cap_net_raw,cap_net_admin=eip {exe}"
    )]
    Permission {
        /// Interface.
        iface: String,
        /// libpcap's words.
        msg: String,
        /// This program's path.
        exe: String,
    },
    /// The filter does not compile.
    #[error("filter {filter:?}: {msg}")]
    Filter {
        /// The filter.
        filter: String,
        /// libpcap's words.
        msg: String,
    },
    /// Anything else libpcap reported.
    #[error("{iface}: {msg}")]
    Pcap {
        /// Interface.
        iface: String,
        /// libpcap's words.
        msg: String,
    },
}

/// Packets seen and lost, as the kernel and libpcap count them (since the handle was opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets the filter passed.
    pub received: u64,
    /// Dropped for lack of buffer space (the tap was too slow).
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// An open interface.
pub struct LiveSource {
    cap: pcap::Capture<pcap::Active>,
    iface: String,
    linktype: u32,
    /// The u32 counters of libpcap, widened (they wrap).
    last: pcap::Stat,
    stats: LiveStats,
    buf: Vec<u8>,
    /// Packets handed out, and why reading stopped (as an input report says).
    packets: u64,
    error: Option<String>,
    /// Time and length on the wire of the packet in `buf`, when there is one.
    header: Option<(Nanos, u32)>,
    /// The kernel buffer asked for, in bytes.
    kernel_buffer: usize,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("iface", &self.iface)
            .field("linktype", &self.linktype)
            .finish_non_exhaustive()
    }
}

fn is_permission(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("permission") || m.contains("operation not permitted")
}

impl LiveSource {
    /// Opens the interface, applies the filter, and makes the handle non-blocking.
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource, LiveError> {
        let pcap_err = |e: pcap::Error| {
            let msg = e.to_string();
            if is_permission(&msg) {
                LiveError::Permission {
                    iface: cfg.iface.clone(),
                    msg,
                    exe: std::env::current_exe()
                        .map_or_else(|_| "grpctap".into(), |p| p.display().to_string()),
                }
            } else {
                LiveError::Pcap {
                    iface: cfg.iface.clone(),
                    msg,
                }
            }
        };
        let cap = pcap::Capture::from_device(cfg.iface.as_str())
            .map_err(pcap_err)?
            .snaplen(cfg.snaplen)
            .buffer_size(cfg.buffer_size)
            .promisc(cfg.promisc)
            .immediate_mode(cfg.immediate)
            .precision(pcap::Precision::Nano)
            .timeout(100)
            .open()
            .map_err(pcap_err)?;
        let mut cap = cap.setnonblock().map_err(pcap_err)?;
        let linktype = u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX);
        if let Some(f) = &cfg.filter {
            cap.filter(f, true).map_err(|e| LiveError::Filter {
                filter: f.clone(),
                msg: where_it_fails(f, linktype, e.to_string()),
            })?;
        }
        Ok(LiveSource {
            cap,
            iface: cfg.iface.clone(),
            linktype,
            last: pcap::Stat {
                received: 0,
                dropped: 0,
                if_dropped: 0,
            },
            stats: LiveStats::default(),
            buf: Vec::with_capacity(65_536),
            packets: 0,
            error: None,
            header: None,
            kernel_buffer: usize::try_from(cfg.buffer_size).unwrap_or(0),
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Link-layer header type of the packets.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// The next packet, waiting at most `wait`; `None` when none came in that time.
    pub fn next_packet(&mut self, wait: Duration) -> Result<Option<Packet<'_>>, LiveError> {
        Ok(if self.fill(wait)? {
            self.last_packet()
        } else {
            None
        })
    }

    /// The packet [`LiveSource::fill`] read last.
    fn last_packet(&self) -> Option<Packet<'_>> {
        let (ts, orig_len) = self.header?;
        Some(Packet {
            ts,
            linktype: self.linktype,
            data: &self.buf,
            orig_len,
            interface: 0,
        })
    }

    /// Reads the next packet into the buffer, waiting at most `wait`; false when none came.
    fn fill(&mut self, wait: Duration) -> Result<bool, LiveError> {
        use rustix::event::{PollFd, PollFlags, poll};
        self.header = None;
        let mut waited = false;
        let header;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    // Copied into a buffer kept across packets (no allocation once grown):
                    // lending libpcap's own buffer out of this retry loop does not borrow-check.
                    self.buf.clear();
                    self.buf.extend_from_slice(p.data);
                    header = (p.header.ts, p.header.len);
                    break;
                }
                Err(pcap::Error::TimeoutExpired) if !waited => {
                    waited = true;
                    let ts = rustix::event::Timespec::try_from(wait).unwrap_or(
                        rustix::event::Timespec {
                            tv_sec: 1,
                            tv_nsec: 0,
                        },
                    );
                    let mut fds = [PollFd::new(&self.cap, PollFlags::IN)];
                    match poll(&mut fds, Some(&ts)) {
                        Ok(0) => return Ok(false),
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => {
                            return Err(LiveError::Pcap {
                                iface: self.iface.clone(),
                                msg: format!("poll: {e}"),
                            });
                        }
                    }
                }
                Err(pcap::Error::TimeoutExpired) => return Ok(false),
                Err(e) => {
                    return Err(LiveError::Pcap {
                        iface: self.iface.clone(),
                        msg: e.to_string(),
                    });
                }
            }
        }
        let (tv, orig_len) = header;
        // Nanosecond precision was asked for; libpcap puts nanoseconds in tv_usec then.
        let ns = u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(tv.tv_usec).unwrap_or(0);
        self.header = Some((Nanos(ns), orig_len));
        Ok(true)
    }

    /// Packets received and dropped since opening (kernel and libpcap counters).
    pub fn stats(&mut self) -> LiveStats {
        if let Ok(s) = self.cap.stats() {
            self.stats.received += u64::from(s.received.wrapping_sub(self.last.received));
            self.stats.dropped += u64::from(s.dropped.wrapping_sub(self.last.dropped));
            self.stats.if_dropped += u64::from(s.if_dropped.wrapping_sub(self.last.if_dropped));
            self.last = s;
        }
        self.stats
    }
}

/// An interface that can be captured on.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Name to pass to `-i`.
    pub name: String,
    /// Description, when libpcap has one.
    pub description: Option<String>,
    /// Its addresses.
    pub addresses: Vec<std::net::IpAddr>,
    /// Up.
    pub up: bool,
    /// Running (a link).
    pub running: bool,
    /// Loopback.
    pub loopback: bool,
}

/// The interfaces libpcap can capture on.
pub fn interfaces() -> Result<Vec<Interface>, LiveError> {
    let list = pcap::Device::list().map_err(|e| LiveError::Pcap {
        iface: "(list)".into(),
        msg: e.to_string(),
    })?;
    Ok(list
        .into_iter()
        .map(|d| Interface {
            addresses: d.addresses.iter().map(|a| a.addr).collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            name: d.name,
            description: d.desc,
        })
        .collect())
}

/// How long [`PacketSource::next_packet`] waits for a packet before it says the interface is
/// idle: short, so a quit request or a screen refresh is never held up long.
const IDLE_WAIT: Duration = Duration::from_millis(100);

impl crate::input::PacketSource for LiveSource {
    fn next_packet(&mut self) -> Result<crate::input::Next<'_>, String> {
        use crate::input::Next;
        match self.fill(IDLE_WAIT) {
            Ok(true) => {
                self.packets += 1;
                Ok(self.last_packet().map_or(Next::Idle, Next::Packet))
            }
            Ok(false) => Ok(Next::Idle),
            Err(e) => {
                let e = e.to_string();
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn position(&self) -> crate::input::Position {
        crate::input::Position::default()
    }

    fn name(&self) -> String {
        format!("live {}", self.iface)
    }

    fn drops(&mut self) -> u64 {
        let s = self.stats();
        s.dropped + s.if_dropped
    }

    fn is_live(&self) -> bool {
        true
    }

    fn kernel_buffer(&self) -> usize {
        self.kernel_buffer
    }

    fn finish(&mut self) -> Vec<String> {
        let s = self.stats();
        vec![format!(
            "{}: {} packets received by the filter, {} dropped by the kernel, {} by the interface",
            self.iface, s.received, s.dropped, s.if_dropped
        )]
    }

    fn reports(&self) -> Vec<crate::input::InputReport> {
        vec![crate::input::InputReport {
            name: format!("interface {}", self.iface),
            packets: self.packets,
            error: self.error.clone(),
        }]
    }
}

/// libpcap's words for a filter that does not compile, with where it goes wrong when libpcap
/// says only "syntax error": the longest run of leading words that compiles, and the word
/// after it.
fn where_it_fails(expr: &str, linktype: u32, msg: String) -> String {
    if !msg.contains("syntax error") {
        return msg;
    }
    let Ok(dead) = pcap::Capture::dead(pcap::Linktype(i32::try_from(linktype).unwrap_or(1))) else {
        return msg;
    };
    let words: Vec<&str> = expr.split_whitespace().collect();
    let good = (1..words.len())
        .rev()
        .find(|&k| dead.compile(&words[..k].join(" "), false).is_ok());
    match good {
        Some(k) => format!(
            "{msg}: it reads as a filter up to `{}`; it goes wrong at `{}`",
            words[..k].join(" "),
            words[k..].join(" ")
        ),
        None => match words.first() {
            Some(w) => format!("{msg}: it goes wrong at the start, `{w}`"),
            None => msg,
        },
    }
}

/// A BPF filter (tcpdump syntax) for packets read from files, as `tcpdump -r FILE FILTER`
/// applies it: compiled by libpcap without an interface, once per link type met.
pub struct OfflineFilter {
    expr: String,
    /// Per link type: its program, or none when the filter cannot apply to it.
    programs: Vec<(u32, Option<pcap::BpfProgram>)>,
    /// Link types the filter could not be compiled for (their packets do not pass).
    pub refused: Vec<(u32, String)>,
}

impl std::fmt::Debug for OfflineFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineFilter")
            .field("expr", &self.expr)
            .finish_non_exhaustive()
    }
}

/// Link type Ethernet, what a filter is checked against before any packet is read.
const DLT_EN10MB: u32 = 1;

impl OfflineFilter {
    /// Checks that `expr` compiles (for Ethernet) and readies it.
    pub fn new(expr: &str) -> Result<OfflineFilter, LiveError> {
        let prog = compile_for(expr, DLT_EN10MB)?;
        Ok(OfflineFilter {
            expr: expr.to_owned(),
            programs: vec![(DLT_EN10MB, Some(prog))],
            refused: Vec::new(),
        })
    }

    /// Whether the packet passes.
    pub fn matches(&mut self, p: &Packet<'_>) -> bool {
        let at = match self.programs.iter().position(|(lt, _)| *lt == p.linktype) {
            Some(i) => i,
            None => {
                let prog = match compile_for(&self.expr, p.linktype) {
                    Ok(prog) => Some(prog),
                    Err(e) => {
                        self.refused.push((p.linktype, e.to_string()));
                        None
                    }
                };
                self.programs.push((p.linktype, prog));
                self.programs.len() - 1
            }
        };
        self.programs[at]
            .1
            .as_ref()
            .is_some_and(|b| b.filter(p.data))
    }
}

fn compile_for(expr: &str, linktype: u32) -> Result<pcap::BpfProgram, LiveError> {
    let dead = pcap::Capture::dead(pcap::Linktype(i32::try_from(linktype).unwrap_or(-1))).map_err(
        |e| LiveError::Filter {
            filter: expr.to_owned(),
            msg: e.to_string(),
        },
    )?;
    dead.compile(expr, true).map_err(|e| LiveError::Filter {
        filter: expr.to_owned(),
        msg: where_it_fails(expr, linktype, e.to_string()),
    })
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn a_filter_that_does_not_compile_says_where() {
        let e = OfflineFilter::new("tcp prot 50051").expect_err("bad filter");
        let text = e.to_string();
        assert!(
            text.contains("up to `tcp`; it goes wrong at `prot 50051`"),
            "{text}"
        );
        let e = OfflineFilter::new("tcp port 50051 and").expect_err("bad filter");
        assert!(e.to_string().contains("goes wrong at `and`"), "{e}");
        assert!(OfflineFilter::new("tcp port 50051 or udp").is_ok());
    }
}

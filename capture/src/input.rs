//! Where packets come from, behind one seam: a list of capture files or a live interface. The
//! binary's input loop is written once against [`PacketSource`]; it never knows which it reads.

use std::path::PathBuf;

use crate::source::{FileSource, Packet};
use types::Nanos;

/// What a source has for the reader now.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(Packet<'a>),
    /// Nothing came for a while (a live interface is quiet): a good moment to refresh outputs.
    Idle,
    /// No packet will come.
    End,
}

/// Where a source is, for progress display: which input, and how far into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Index of the input being read (a file), counting from 0.
    pub input: usize,
    /// Bytes of it read and its size, when it has one.
    pub bytes: Option<(u64, Option<u64>)>,
}

/// How one input went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputReport {
    /// The file, or "interface IFACE".
    pub name: String,
    /// Packets read from it.
    pub packets: u64,
    /// Why reading stopped before the end, if it did.
    pub error: Option<String>,
}

/// A source of packets.
pub trait PacketSource {
    /// The next packet, or why there is none now. Errors that end only one input (a corrupt
    /// file among several) are kept in its report and reading goes on with the next; an `Err`
    /// here ends the source.
    fn next_packet(&mut self) -> Result<Next<'_>, String>;
    /// Where the source is now.
    fn position(&self) -> Position;
    /// What the status line calls the source at `position().input`.
    fn name(&self) -> String;
    /// Packets the kernel or libpcap dropped so far (0 for files).
    fn drops(&mut self) -> u64 {
        0
    }
    /// Whether packets arrive in real time (a live interface), not as fast as they are read.
    fn is_live(&self) -> bool {
        false
    }
    /// Of a live source: the bytes its kernel buffer holds (what a reader may fall behind by
    /// before the kernel drops).
    fn kernel_buffer(&self) -> usize {
        0
    }
    /// How each input went, so far.
    fn reports(&self) -> Vec<InputReport>;
    /// Reading is over: closing remarks for the user (files written, kernel drop counts).
    fn finish(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Files open at once to merge overlapping captures; past it, a file that overlaps the ones
/// open waits for one of them to end (its packets then come late: a note says so).
pub const MAX_OPEN_FILES: usize = 64;

/// A step back in time within one file that is worth a note (multi-queue captures step back
/// by microseconds all the time).
const BACKWARDS_NOTE: Nanos = Nanos(1_000_000);

/// One open file of a merge.
#[derive(Debug)]
struct Slot {
    /// Index in the paths as given.
    file: usize,
    src: FileSource,
    /// Time of its current packet.
    ts: Nanos,
}

/// Capture files read as one capture, merged by packet time as mergecap does: whatever order
/// they are named in (rotated files past `-9` sort `cap-10` before `cap-2`; newest first), the
/// packets come in time order. Streaming: each file is opened once to read its first packet
/// time, then again when the merge reaches that time, so files that follow one another are open
/// one at a time and overlapping ones together (at most [`MAX_OPEN_FILES`]).
#[derive(Debug)]
pub struct Files {
    paths: Vec<PathBuf>,
    max_block: usize,
    /// The files that have packets, by first packet time (then as given): indexes into
    /// `paths`, with that time. Built on the first read.
    order: Option<Vec<(Nanos, usize)>>,
    /// The next of `order` to open.
    next: usize,
    open: Vec<Slot>,
    /// The slot whose packet was handed out last (moved past on the next read).
    current: Option<usize>,
    /// One per path, in the order given.
    reports: Vec<InputReport>,
    /// Per path: packets earlier than the one before them, and the largest such step back.
    backwards: Vec<(u64, Nanos)>,
    /// A file could not be opened when the merge reached it: too many open at once.
    waited: u64,
    /// Standard input, opened to read its first packet (it cannot be opened twice).
    stdin: Option<FileSource>,
    /// Remarks of the files closed (snaplen, skipped blocks).
    remarks: Vec<String>,
    /// Where TLS key logs in pcapng Decryption Secrets Blocks go.
    secrets: Option<crate::source::SecretsHook>,
    /// Per path: its length (none for standard input and what is not a regular file), and
    /// whether it was read to its end.
    sizes: Vec<Option<u64>>,
    ended: Vec<bool>,
}

impl Files {
    /// The files in `paths`, blocks bounded by `max_block` bytes.
    pub fn new(paths: Vec<PathBuf>, max_block: usize) -> Files {
        let reports = paths
            .iter()
            .map(|p| InputReport {
                name: p.display().to_string(),
                packets: 0,
                error: None,
            })
            .collect();
        let n = paths.len();
        let sizes = paths
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map(|m| m.len())
            })
            .collect();
        Files {
            sizes,
            ended: vec![false; n],
            paths,
            max_block,
            order: None,
            next: 0,
            open: Vec::new(),
            current: None,
            reports,
            backwards: vec![(0, Nanos::ZERO); n],
            waited: 0,
            stdin: None,
            remarks: Vec::new(),
            secrets: None,
        }
    }

    /// Hands the TLS key log of every pcapng Decryption Secrets Block to `hook` as it is read
    /// (a block may be read twice: files are opened once to plan the merge).
    pub fn with_secrets(mut self, hook: crate::source::SecretsHook) -> Files {
        self.secrets = Some(hook);
        self
    }

    /// Opens file `i` and moves to its first packet; `None` (with the reason in its report)
    /// when it cannot be read or has no packet.
    fn open_at_first(&mut self, i: usize) -> Option<(FileSource, Nanos)> {
        let path = &self.paths[i];
        let hook = self.secrets.clone();
        let open = || {
            FileSource::open(path, self.max_block).map(|s| (s.with_secrets(hook.clone()), false))
        };
        let opened = if path.as_os_str() == "-" {
            self.stdin.take().map_or_else(open, |s| Ok((s, true)))
        } else {
            open()
        };
        let (mut src, at_first) = match opened {
            Ok(s) => s,
            Err(e) => {
                self.reports[i].error = Some(e.to_string());
                return None;
            }
        };
        if !at_first {
            match src.advance() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.reports[i].error = Some(e.to_string());
                    return None;
                }
            }
        }
        let ts = src.packet()?.ts;
        Some((src, ts))
    }

    /// The first packet time of every file, each file opened and closed again (standard input
    /// is kept open: it cannot be read twice).
    fn plan(&mut self) -> Vec<(Nanos, usize)> {
        let mut order = Vec::with_capacity(self.paths.len());
        for i in 0..self.paths.len() {
            if let Some((src, ts)) = self.open_at_first(i) {
                if self.paths[i].as_os_str() == "-" {
                    self.stdin = Some(src);
                }
                order.push((ts, i));
            }
        }
        order.sort();
        order
    }

    /// Opens the files whose first packet is not later than the packets open now.
    fn open_due(&mut self) {
        let Some(order) = self.order.take() else {
            return;
        };
        while let Some(&(first, i)) = order.get(self.next) {
            let frontier = self.open.iter().map(|s| s.ts).min();
            if frontier.is_some_and(|f| first > f) {
                break;
            }
            if self.open.len() >= MAX_OPEN_FILES {
                self.waited += 1;
                break;
            }
            self.next += 1;
            if let Some((src, ts)) = self.open_at_first(i) {
                self.open.push(Slot { file: i, src, ts });
            }
        }
        self.order = Some(order);
    }

    /// Moves the slot handed out last past its packet; closes it at its end.
    #[inline]
    fn step(&mut self, k: usize) {
        let Some(slot) = self.open.get_mut(k) else {
            return;
        };
        match slot.src.advance() {
            Ok(true) => {
                if let Some(ts) = slot.src.ts() {
                    if ts < slot.ts {
                        let b = &mut self.backwards[slot.file];
                        b.0 += 1;
                        b.1 = b.1.max(Nanos(slot.ts.0 - ts.0));
                    }
                    slot.ts = ts;
                }
                return;
            }
            Ok(false) => {}
            Err(e) => self.reports[slot.file].error = Some(e.to_string()),
        }
        let slot = self.open.swap_remove(k);
        if let Some(e) = self.ended.get_mut(slot.file) {
            *e = true;
        }
        self.remarks.extend(slot.src.remarks());
    }
}

impl PacketSource for Files {
    #[inline]
    fn next_packet(&mut self) -> Result<Next<'_>, String> {
        if self.order.is_none() {
            self.order = Some(self.plan());
        }
        if let Some(k) = self.current.take() {
            self.step(k);
        }
        if self.next < self.order.as_ref().map_or(0, Vec::len) {
            self.open_due();
        }
        // The earliest packet of the files open (the first named on a tie).
        let best = if self.open.len() == 1 {
            Some(0)
        } else {
            let mut best: Option<usize> = None;
            for (k, s) in self.open.iter().enumerate() {
                if best.is_none_or(|b| (s.ts, s.file) < (self.open[b].ts, self.open[b].file)) {
                    best = Some(k);
                }
            }
            best
        };
        let Some(k) = best else {
            return Ok(Next::End);
        };
        self.current = Some(k);
        self.reports[self.open[k].file].packets += 1;
        match self.open[k].src.packet() {
            Some(p) => Ok(Next::Packet(p)),
            None => Ok(Next::End),
        }
    }

    /// Progress over all the files together: those read to their end, and how far the open
    /// ones are (a total only when every file's length is known).
    fn position(&self) -> Position {
        let slot = self.current.and_then(|k| self.open.get(k));
        let mut done: u64 = self
            .sizes
            .iter()
            .zip(&self.ended)
            .filter(|(_, e)| **e)
            .map(|(s, _)| s.unwrap_or(0))
            .sum();
        done += self.open.iter().map(|s| s.src.progress().0).sum::<u64>();
        let total = self.sizes.iter().copied().sum::<Option<u64>>();
        Position {
            input: slot.map_or(0, |s| s.file),
            bytes: slot.map(|_| (done, total)),
        }
    }

    fn name(&self) -> String {
        let at = self
            .current
            .and_then(|k| self.open.get(k))
            .map_or(0, |s| s.file);
        let Some(path) = self.paths.get(at) else {
            return "replay".to_owned();
        };
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if self.paths.len() > 1 {
            format!("{name} (+{} files)", self.paths.len() - 1)
        } else {
            name
        }
    }

    fn finish(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.remarks);
        for s in &self.open {
            notes.extend(s.src.remarks());
        }
        for (i, &(n, most)) in self.backwards.iter().enumerate() {
            if n > 0 && most >= BACKWARDS_NOTE {
                let packets = if n == 1 { "packet" } else { "packets" };
                notes.push(format!(
                    "{}: time runs backwards at {n} {packets} (by up to {:.3} s); those were read in file order",
                    self.paths[i].display(),
                    most.as_secs_f64()
                ));
            }
        }
        if self.waited > 0 {
            notes.push(format!(
                "more than {MAX_OPEN_FILES} files overlap in time: some packets were read later than their time"
            ));
        }
        notes
    }

    fn reports(&self) -> Vec<InputReport> {
        self.reports.clone()
    }
}

//! Where packets come from, behind one seam: a list of capture files or a live interface. The
//! binary's input loop is written once against [`PacketSource`]; it never knows which it reads.

use std::path::PathBuf;

use crate::source::{FileSource, Packet};

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
    /// How each input went, so far.
    fn reports(&self) -> Vec<InputReport>;
    /// Reading is over: closing remarks for the user (files written, kernel drop counts).
    fn finish(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Capture files read one after the other as one capture.
#[derive(Debug)]
pub struct Files {
    paths: Vec<PathBuf>,
    max_block: usize,
    /// Index of the file open (or next to open).
    at: usize,
    open: Option<FileSource>,
    reports: Vec<InputReport>,
}

impl Files {
    /// The files in `paths`, blocks bounded by `max_block` bytes.
    pub fn new(paths: Vec<PathBuf>, max_block: usize) -> Files {
        Files {
            paths,
            max_block,
            at: 0,
            open: None,
            reports: Vec::new(),
        }
    }

    fn report(&mut self) -> Option<&mut InputReport> {
        self.reports.last_mut()
    }
}

impl PacketSource for Files {
    #[inline]
    fn next_packet(&mut self) -> Result<Next<'_>, String> {
        loop {
            if self.open.is_none() {
                let Some(path) = self.paths.get(self.at) else {
                    return Ok(Next::End);
                };
                self.reports.push(InputReport {
                    name: path.display().to_string(),
                    packets: 0,
                    error: None,
                });
                match FileSource::open(path, self.max_block) {
                    Ok(src) => self.open = Some(src),
                    Err(e) => {
                        let e = e.to_string();
                        if let Some(r) = self.report() {
                            r.error = Some(e);
                        }
                        self.at += 1;
                        continue;
                    }
                }
            }
            let Some(src) = self.open.as_mut() else {
                continue;
            };
            match src.advance() {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    if let Some(r) = self.report() {
                        r.error = Some(e.to_string());
                    }
                }
            }
            self.open = None;
            self.at += 1;
        }
        if let Some(r) = self.report() {
            r.packets += 1;
        }
        // The packet is borrowed only once the loop has decided (a borrow returned from inside
        // it would be held across the arms that replace the file).
        match self.open.as_ref().and_then(FileSource::packet) {
            Some(p) => Ok(Next::Packet(p)),
            None => Ok(Next::End),
        }
    }

    fn position(&self) -> Position {
        Position {
            input: self.at,
            bytes: self.open.as_ref().map(FileSource::progress),
        }
    }

    fn name(&self) -> String {
        let Some(path) = self
            .paths
            .get(self.at.min(self.paths.len().saturating_sub(1)))
        else {
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

    fn reports(&self) -> Vec<InputReport> {
        self.reports.clone()
    }
}

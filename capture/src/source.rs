//! Packets from capture files: pcap (micro/nanosecond, either byte order), pcapng (several
//! sections and interfaces, each with its own link type, `if_tsresol` and `if_tsoffset`; EPB,
//! SPB and the obsolete PB), each optionally gzip-compressed as Wireshark reads them.
//!
//! The file is read as a stream through a bounded buffer (it grows only to hold one large block,
//! up to `max_block_size`), never loaded whole. An error stops this file only and says where:
//! everything before it has already been handed out.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

use crate::event::Nanos;

/// One captured packet, borrowed from the reader's buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time.
    pub ts: Nanos,
    /// Link-layer header type (see [`crate::wire::linktype`]).
    pub linktype: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire (larger than `data.len()` when the snapshot length cut it).
    pub orig_len: u32,
    /// pcapng interface index (0 for pcap).
    pub interface: u32,
}

/// Why reading a capture file stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The file starts with neither a pcap nor a pcapng header.
    #[error("{path}: not a pcap or pcapng file (starts with {magic})")]
    NotACapture {
        /// File.
        path: PathBuf,
        /// First bytes, in hex.
        magic: String,
    },
    /// The file (or its decompressed data) holds no byte at all.
    #[error("{path}: empty file{where_}: no capture header")]
    Empty {
        /// File.
        path: PathBuf,
        /// " (after decompression)" for gzip files.
        where_: &'static str,
    },
    /// The file starts like a capture but ends inside its file header.
    #[error("{path}: the {format} file header is cut short ({have} bytes, {needed} expected)")]
    ShortHeader {
        /// File.
        path: PathBuf,
        /// "pcap" or "pcapng".
        format: &'static str,
        /// Bytes present.
        have: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// The file ends inside a block.
    #[error(
        "{path}: truncated at byte {offset}{where_}: the last block is incomplete ({have} bytes of it present)"
    )]
    Truncated {
        /// File.
        path: PathBuf,
        /// Offset of the incomplete block.
        offset: u64,
        /// Bytes of it present.
        have: usize,
        /// " of the decompressed data" for gzip files.
        where_: &'static str,
    },
    /// A block cannot be parsed.
    #[error("{path}: corrupt at byte {offset}{where_}: {reason}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// Offset of the bad block.
        offset: u64,
        /// What is wrong.
        reason: String,
        /// " of the decompressed data" for gzip files.
        where_: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Bytes the writer kept of each packet at most (0: not said).
    snaplen: u32,
    /// Nanos units per second.
    units_per_sec: u64,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_secs: i64,
}

impl Iface {
    fn timestamp(&self, raw: u64) -> Nanos {
        const NS: u64 = 1_000_000_000;
        let units = self.units_per_sec.max(1);
        // Per packet: avoid 128-bit division for the resolutions files actually use.
        let ns = if NS.is_multiple_of(units) {
            raw.checked_mul(NS / units)
        } else if units.is_multiple_of(NS) {
            Some(raw / (units / NS))
        } else {
            u64::try_from(u128::from(raw) * u128::from(NS) / u128::from(units)).ok()
        };
        let ns = i128::from(ns.unwrap_or(u64::MAX)) + i128::from(self.offset_secs) * i128::from(NS);
        Nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
    }
}

/// Counts bytes read from the file (compressed bytes for gzip), for progress.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Keeps the last read error, file or decompressor: pcap-parser reports only that a read failed.
struct Stashed<R> {
    inner: R,
    last_error: Arc<std::sync::Mutex<Option<io::Error>>>,
}

impl<R: Read> Read for Stashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if let Ok(mut slot) = self.last_error.lock() {
                *slot = Some(io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

/// What a block turned out to be, with its packet located inside the reader's buffer.
enum Found {
    Packet {
        ts: Nanos,
        linktype: u32,
        start: usize,
        len: usize,
        orig_len: u32,
        interface: u32,
    },
    /// A pcapng Decryption Secrets Block holding a TLS key log, where it lies.
    Secrets {
        start: usize,
        len: usize,
    },
    Other,
    Bad(String),
}

/// Receives the TLS key log text of each pcapng Decryption Secrets Block as it is read.
#[derive(Clone)]
pub struct SecretsHook(pub Arc<SecretsFn>);

/// What a [`SecretsHook`] calls with a block's bytes.
pub type SecretsFn = dyn Fn(&[u8]) + Send + Sync;

impl std::fmt::Debug for SecretsHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsHook")
    }
}

enum Step {
    Block(usize, Found),
    Eof,
    NeedMore,
    TooSmall,
    Truncated,
    ReadFailed,
    Corrupt(String),
}

/// A pcap or pcapng file (optionally gzip-compressed) read packet by packet.
pub struct FileSource {
    path: PathBuf,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Length of the block last handed out, consumed on the next call.
    pending: usize,
    capacity: usize,
    max_block: usize,
    gzip: bool,
    file_len: Option<u64>,
    file_read: Arc<AtomicU64>,
    /// Capture data read from the file so far (decompressed for gzip; else `file_read`).
    produced: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<Option<io::Error>>>,
    ifaces: Vec<Iface>,
    section: Section,
    /// Where the packet last found lies in the reader's buffer.
    current: Option<Current>,
    /// What was odd about the file but did not stop reading it.
    odd: Oddities,
    /// Where TLS key logs found in the file go.
    secrets: Option<SecretsHook>,
}

/// What the headers said about the blocks that follow.
#[derive(Debug, Default, Clone, Copy)]
struct Section {
    /// The file is pcapng (blocks carry their length: a bad one can be stepped over).
    pcapng: bool,
    /// The pcapng section is big-endian.
    big_endian: bool,
    /// The pcap file header says snaplen 0.
    snaplen_zero: bool,
}

/// What a file did that is worth a remark, but did not stop it being read.
#[derive(Debug, Default, Clone)]
struct Oddities {
    /// Packets captured longer than their interface's snaplen.
    over_snaplen: u64,
    /// pcapng blocks whose frame was sound but whose contents did not parse: skipped.
    skipped: u64,
    /// The first of them: its offset and why.
    first_skip: Option<(u64, String)>,
}

/// The packet last found: its header fields and where its bytes are in the read buffer.
#[derive(Debug, Clone, Copy)]
struct Current {
    ts: Nanos,
    linktype: u32,
    start: usize,
    len: usize,
    orig_len: u32,
    interface: u32,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

const INITIAL_BUFFER: usize = 1 << 20;
/// Bytes read before the format is decided (or all of a shorter input).
const HEAD_LEN: usize = 4096;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const OBSOLETE_PB_MAGIC: u32 = 0x0000_0002;

impl FileSource {
    /// Opens `path`, detecting gzip and the capture format from the first bytes.
    /// `-` is standard input (`tcpdump -w - | grpctap replay -`): read as a stream, never
    /// seeked, like a named pipe or a process substitution.
    pub fn open(path: &Path, max_block_size: usize) -> Result<FileSource, SourceError> {
        let io_err = |source| SourceError::Io {
            path: path.to_owned(),
            source,
        };
        let (mut input, file_len): (Box<dyn Read + Send>, Option<u64>) = if path == Path::new("-") {
            (Box::new(io::stdin()), None)
        } else {
            let file = File::open(path).map_err(io_err)?;
            let meta = file.metadata().map_err(io_err)?;
            // A pipe or a device has no length to show progress against.
            let len = meta.is_file().then_some(meta.len());
            (Box::new(file), len)
        };
        // The first bytes tell gzip and the format; they are handed back in front of the rest,
        // in one piece: the capture header (pcapng's with its options) must arrive in the
        // parser's first read.
        let mut head = vec![0u8; HEAD_LEN];
        let got = read_up_to(&mut input, &mut head).map_err(io_err)?;
        head.truncate(got);
        let gzip = got >= 2 && head[..2] == GZIP_MAGIC;
        let file_read = Arc::new(AtomicU64::new(0));
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let counted = Counted {
            inner: io::Cursor::new(head.clone()).chain(input),
            read: file_read.clone(),
        };
        // Capture data handed to the parser: the file's bytes, or what they decompress to.
        let produced = if gzip {
            Arc::new(AtomicU64::new(0))
        } else {
            file_read.clone()
        };
        let inner: Box<dyn Read + Send> = if gzip {
            Box::new(Counted {
                inner: flate2::read::MultiGzDecoder::new(io::BufReader::new(counted)),
                read: produced.clone(),
            })
        } else {
            Box::new(counted)
        };
        let input = Stashed {
            inner,
            last_error: last_error.clone(),
        };
        let where_ = if gzip {
            " of the decompressed data"
        } else {
            ""
        };
        let reader = match pcap_parser::create_reader(INITIAL_BUFFER, input) {
            Ok(r) => r,
            Err(PcapError::Eof) => {
                return Err(SourceError::Empty {
                    path: path.to_owned(),
                    where_: if gzip { " (after decompression)" } else { "" },
                });
            }
            Err(PcapError::ReadError) => {
                let source = last_error.lock().ok().and_then(|mut e| e.take());
                return Err(match source {
                    Some(e) if e.kind() == io::ErrorKind::UnexpectedEof => SourceError::Truncated {
                        path: path.to_owned(),
                        offset: 0,
                        have: 0,
                        where_,
                    },
                    Some(e) => io_err(e),
                    None => io_err(io::Error::other("read failed")),
                });
            }
            Err(_) => {
                let n = got;
                // A capture's magic, then too little: a header cut short, not another format.
                let format = match head.get(..4) {
                    Some(
                        [0xa1, 0xb2, 0xc3, 0xd4]
                        | [0xd4, 0xc3, 0xb2, 0xa1]
                        | [0xa1, 0xb2, 0x3c, 0x4d]
                        | [0x4d, 0x3c, 0xb2, 0xa1],
                    ) if !gzip => Some(("pcap", 24)),
                    Some([0x0a, 0x0d, 0x0d, 0x0a]) if !gzip => Some(("pcapng", 28)),
                    _ => None,
                };
                // The whole input: the file's length, or all a stream had (it ended within
                // the first bytes).
                let have = match file_len {
                    Some(len) => usize::try_from(len).unwrap_or(usize::MAX),
                    None if n < HEAD_LEN => n,
                    None => usize::MAX,
                };
                if let Some((format, needed)) = format
                    && have < needed
                {
                    return Err(SourceError::ShortHeader {
                        path: path.to_owned(),
                        format,
                        have,
                        needed,
                    });
                }
                let magic = head[..n.min(8)]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(SourceError::NotACapture {
                    path: path.to_owned(),
                    magic,
                });
            }
        };
        Ok(FileSource {
            path: path.to_owned(),
            reader,
            pending: 0,
            capacity: INITIAL_BUFFER,
            max_block: max_block_size.max(INITIAL_BUFFER),
            gzip,
            file_len,
            file_read,
            produced,
            last_error,
            ifaces: Vec::new(),
            section: Section::default(),
            current: None,
            odd: Oddities::default(),
            secrets: None,
        })
    }

    /// Hands the TLS key log of every Decryption Secrets Block read to `hook`.
    pub fn with_secrets(mut self, hook: Option<SecretsHook>) -> FileSource {
        self.secrets = hook;
        self
    }

    /// What was odd about the file so far, as remarks for the user (a snaplen of 0, packets
    /// longer than their snaplen, pcapng blocks skipped).
    pub fn remarks(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name = self.path.display();
        if self.section.snaplen_zero {
            out.push(format!(
                "{name}: the file header says snaplen 0 (no writer keeps 0 bytes of a packet; the packets were read as they are)"
            ));
        }
        if self.odd.over_snaplen > 0 {
            out.push(format!(
                "{name}: {} packets are longer than the snaplen their interface declares",
                self.odd.over_snaplen
            ));
        }
        if let Some((at, why)) = &self.odd.first_skip {
            out.push(format!(
                "{name}: {} pcapng blocks skipped whose length was sound but whose contents were not (the first at byte {at}{}: {why}); the rest of the file was read",
                self.odd.skipped,
                self.where_()
            ));
        }
        out
    }

    /// A pcapng block at the read position whose frame holds (a type, a total length that is a
    /// multiple of 4, the same length repeated at its end, all of it in the buffer): its length,
    /// so a block whose contents do not parse can be stepped over.
    fn sound_frame(&self) -> Option<usize> {
        if !self.section.pcapng {
            return None;
        }
        let d = self.reader.data();
        let word = |at: usize| -> Option<usize> {
            let b: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
            let v = if self.section.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            };
            usize::try_from(v).ok()
        };
        let total = word(4)?;
        (total >= 12 && total % 4 == 0 && total <= d.len() && word(total - 4)? == total)
            .then_some(total)
    }

    /// Steps over the bad block at the read position when its frame is sound.
    fn skip_bad_block(&mut self, why: &str) -> bool {
        let Some(total) = self.sound_frame() else {
            return false;
        };
        self.odd.skipped += 1;
        if self.odd.first_skip.is_none() {
            self.odd.first_skip = Some((self.offset(), why.to_owned()));
        }
        self.reader.consume_noshift(total);
        true
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file whose packets were handed out so far, and the file's length
    /// (compressed bytes for gzip: the share of what was read that the packets handed out
    /// used); the length is `None` for standard input and pipes. Not what was read ahead into
    /// buffers: the last packet is at 100 %.
    pub fn progress(&self) -> (u64, Option<u64>) {
        let read = self.file_read.load(Ordering::Relaxed);
        let produced = self.produced.load(Ordering::Relaxed).max(1);
        let used = self.offset().min(produced);
        // A share of `read` (u64 values well within f64's 53 bits for any file).
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let at = (read as f64 * (used as f64 / produced as f64)) as u64;
        (at.min(read), self.file_len)
    }

    /// Offset of the next block in the (decompressed) capture data.
    pub fn offset(&self) -> u64 {
        (self.reader.consumed() + self.pending) as u64
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        Ok(if self.advance()? { self.packet() } else { None })
    }

    /// The time of the packet [`FileSource::advance`] found.
    #[inline]
    pub fn ts(&self) -> Option<Nanos> {
        self.current.map(|c| c.ts)
    }

    /// The packet [`FileSource::advance`] found, until the next call to it.
    #[inline]
    pub fn packet(&self) -> Option<Packet<'_>> {
        let c = self.current?;
        Some(Packet {
            ts: c.ts,
            linktype: c.linktype,
            data: self
                .reader
                .data()
                .get(c.start..c.start + c.len)
                .unwrap_or(&[]),
            orig_len: c.orig_len,
            interface: c.interface,
        })
    }

    /// Moves to the next packet (then read by [`FileSource::packet`]); false at the end of the
    /// file. Split from reading it so a caller can decide what to do before it borrows the
    /// packet.
    pub fn advance(&mut self) -> Result<bool, SourceError> {
        self.current = None;
        if self.pending > 0 {
            // `consume` would move the unread half of the buffer each time the read position
            // passes the middle (a second copy of every byte); `refill` moves only the tail.
            self.reader.consume_noshift(self.pending);
            self.pending = 0;
        }
        loop {
            let base = self.reader.data().as_ptr() as usize;
            let step = match self.reader.next() {
                Ok((len, block)) => Step::Block(
                    len,
                    classify(block, base, &mut self.ifaces, &mut self.section),
                ),
                Err(PcapError::Eof) => Step::Eof,
                Err(PcapError::Incomplete(_)) => Step::NeedMore,
                Err(PcapError::BufferTooSmall) => Step::TooSmall,
                Err(PcapError::UnexpectedEof) => Step::Truncated,
                Err(PcapError::ReadError) => Step::ReadFailed,
                Err(PcapError::HeaderNotRecognized) => Step::Corrupt("block not recognized".into()),
                Err(PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind)) => {
                    Step::Corrupt(format!("block does not parse ({})", kind.description()))
                }
            };
            match step {
                Step::Block(
                    len,
                    Found::Packet {
                        ts,
                        linktype,
                        start,
                        len: plen,
                        orig_len,
                        interface,
                    },
                ) => {
                    if let Some(i) = self.ifaces.get(interface as usize)
                        && i.snaplen > 0
                        && plen > i.snaplen as usize
                    {
                        self.odd.over_snaplen += 1;
                    }
                    self.pending = len;
                    self.current = Some(Current {
                        ts,
                        linktype,
                        start,
                        len: plen,
                        orig_len,
                        interface,
                    });
                    return Ok(true);
                }
                Step::Block(len, Found::Other) => self.reader.consume_noshift(len),
                Step::Block(len, Found::Secrets { start, len: n }) => {
                    if let Some(hook) = &self.secrets
                        && let Some(b) = self.reader.data().get(start..start + n)
                    {
                        (hook.0)(b);
                    }
                    self.reader.consume_noshift(len);
                }
                Step::Block(_, Found::Bad(reason)) | Step::Corrupt(reason) => {
                    if !self.skip_bad_block(&reason) {
                        return Err(self.corrupt(reason));
                    }
                }
                Step::Eof => return Ok(false),
                // The whole block is here and still the parser wants more: its contents claim
                // more than its frame holds (a captured length past the block's end).
                Step::NeedMore | Step::TooSmall
                    if self.skip_bad_block("its contents run past its length") => {}
                Step::NeedMore => self.refill()?,
                Step::TooSmall => {
                    if self.capacity >= self.max_block {
                        let reason = format!("block larger than the {} byte limit", self.max_block);
                        return Err(self.corrupt(reason));
                    }
                    self.capacity = (self.capacity * 2).min(self.max_block);
                    self.reader.grow(self.capacity);
                    self.refill()?;
                }
                Step::Truncated => {
                    return Err(SourceError::Truncated {
                        path: self.path.clone(),
                        offset: self.offset(),
                        have: self.reader.data().len(),
                        where_: self.where_(),
                    });
                }
                Step::ReadFailed => return Err(self.read_failed()),
            }
        }
    }

    fn where_(&self) -> &'static str {
        if self.gzip {
            " of the decompressed data"
        } else {
            ""
        }
    }

    fn corrupt(&self, reason: String) -> SourceError {
        SourceError::Corrupt {
            path: self.path.clone(),
            offset: self.offset(),
            reason,
            where_: self.where_(),
        }
    }

    fn refill(&mut self) -> Result<(), SourceError> {
        if self.reader.refill().is_err() {
            return Err(self.read_failed());
        }
        Ok(())
    }

    fn read_failed(&self) -> SourceError {
        let err = self.last_error.lock().ok().and_then(|mut e| e.take());
        match err {
            // A gzip stream that ends early is a truncated capture, reported like one.
            Some(e) if e.kind() == io::ErrorKind::UnexpectedEof => SourceError::Truncated {
                path: self.path.clone(),
                offset: self.offset(),
                have: self.reader.data().len(),
                where_: self.where_(),
            },
            Some(e) => self.corrupt(format!("read failed: {e}")),
            None => self.corrupt("read failed".into()),
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `if_tsresol` (pcapng section 4.2): high bit clear, units of 10^-n s; set, 2^-n s. Decoded
/// here because pcap-parser 0.17 checks the binary form's range before masking the flag off
/// and so refuses every binary resolution.
fn ts_units_per_sec(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

/// `if_tsoffset` in the section's byte order (pcap-parser 0.17 always reads it little-endian).
fn ts_offset(options: &[pcap_parser::pcapng::PcapNGOption<'_>], big_endian: bool) -> i64 {
    options
        .iter()
        .find(|o| o.code == pcap_parser::pcapng::OptionCode::IfTsoffset)
        .and_then(|o| <[u8; 8]>::try_from(o.value.get(..8)?).ok())
        .map_or(0, |b| {
            if big_endian {
                i64::from_be_bytes(b)
            } else {
                i64::from_le_bytes(b)
            }
        })
}

fn linktype_of(l: pcap_parser::Linktype) -> u32 {
    u32::try_from(l.0).unwrap_or(u32::MAX)
}

fn located(data: &[u8], base: usize) -> (usize, usize) {
    (data.as_ptr() as usize - base, data.len())
}

/// Updates interface state from a non-packet block, or locates a packet.
fn classify(
    block: PcapBlockOwned<'_>,
    base: usize,
    ifaces: &mut Vec<Iface>,
    section: &mut Section,
) -> Found {
    match block {
        PcapBlockOwned::LegacyHeader(h) => {
            let units_per_sec = if h.is_nanosecond_precision() {
                1_000_000_000
            } else {
                1_000_000
            };
            section.snaplen_zero = h.snaplen == 0;
            ifaces.clear();
            ifaces.push(Iface {
                linktype: linktype_of(h.network),
                snaplen: h.snaplen,
                units_per_sec,
                offset_secs: 0,
            });
            Found::Other
        }
        PcapBlockOwned::Legacy(b) => {
            let Some(iface) = ifaces.first() else {
                return Found::Bad("packet before the file header".into());
            };
            let raw = u64::from(b.ts_sec) * iface.units_per_sec + u64::from(b.ts_usec);
            let (start, len) = located(b.data, base);
            Found::Packet {
                ts: iface.timestamp(raw),
                linktype: iface.linktype,
                start,
                len,
                orig_len: b.origlen,
                interface: 0,
            }
        }
        PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
            // Interface numbering restarts in every section.
            ifaces.clear();
            section.pcapng = true;
            section.big_endian = shb.big_endian();
            Found::Other
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            let Some(units_per_sec) = ts_units_per_sec(idb.if_tsresol) else {
                return Found::Bad(format!(
                    "interface {} has an invalid if_tsresol {}",
                    ifaces.len(),
                    idb.if_tsresol
                ));
            };
            let offset_secs = ts_offset(&idb.options, section.big_endian);
            ifaces.push(Iface {
                linktype: linktype_of(idb.linktype),
                snaplen: idb.snaplen,
                units_per_sec,
                offset_secs,
            });
            Found::Other
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            let Some(iface) = ifaces.get(epb.if_id as usize) else {
                return Found::Bad(format!("packet on undeclared interface {}", epb.if_id));
            };
            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
            let (start, len) = located(data, base);
            Found::Packet {
                ts: iface.timestamp(raw),
                linktype: iface.linktype,
                start,
                len,
                orig_len: epb.origlen,
                interface: epb.if_id,
            }
        }
        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
            // SPBs belong to interface 0 and carry no timestamp.
            let Some(iface) = ifaces.first() else {
                return Found::Bad("simple packet block before any interface".into());
            };
            let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
            let (start, len) = located(data, base);
            Found::Packet {
                ts: Nanos::default(),
                linktype: iface.linktype,
                start,
                len,
                orig_len: spb.origlen,
                interface: 0,
            }
        }
        // pcap-parser reads an unknown block's type little-endian whatever the section's order.
        PcapBlockOwned::NG(Block::Unknown(u))
            if (if section.big_endian {
                u.block_type.swap_bytes()
            } else {
                u.block_type
            }) == OBSOLETE_PB_MAGIC =>
        {
            obsolete_packet_block(u.data, base, ifaces, section.big_endian)
        }
        PcapBlockOwned::NG(Block::DecryptionSecrets(dsb))
            if dsb.secrets_type == pcap_parser::pcapng::SecretsType::TlsKeyLog =>
        {
            let n = (dsb.secrets_len as usize).min(dsb.data.len());
            let (start, len) = located(&dsb.data[..n], base);
            Found::Secrets { start, len }
        }
        PcapBlockOwned::NG(_) => Found::Other,
    }
}

/// The Packet Block (type 2) of early pcapng writers: interface id (2), drops (2), timestamp
/// high (4) and low (4), captured length (4), original length (4), data.
fn obsolete_packet_block(body: &[u8], base: usize, ifaces: &[Iface], big_endian: bool) -> Found {
    if body.len() < 20 {
        return Found::Bad("packet block shorter than its header".into());
    }
    let u16_at = |at: usize| {
        let b = [body[at], body[at + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize| {
        let b = [body[at], body[at + 1], body[at + 2], body[at + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let if_id = u32::from(u16_at(0));
    let Some(iface) = ifaces.get(if_id as usize) else {
        return Found::Bad(format!("packet on undeclared interface {if_id}"));
    };
    let raw = (u64::from(u32_at(4)) << 32) | u64::from(u32_at(8));
    let caplen = u32_at(12) as usize;
    let Some(data) = body.get(20..20 + caplen) else {
        return Found::Bad(format!(
            "packet block captured length {caplen} exceeds the block"
        ));
    };
    let (start, len) = located(data, base);
    Found::Packet {
        ts: iface.timestamp(raw),
        linktype: iface.linktype,
        start,
        len,
        orig_len: u32_at(16),
        interface: if_id,
    }
}

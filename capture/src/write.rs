//! Writing packets to pcapng (a live session's `-w`), optionally rotating to a new file past a
//! size or a time span: `FILE`, then `FILE-1`, `FILE-2`, ... before the extension (`cap.pcapng`,
//! `cap-1.pcapng`).
//! Each file is complete on its own (section header and interface description first) and can
//! be replayed alone or with the others in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::source::Packet;
use types::Nanos;

/// When a new file is started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotate {
    /// Before a file would pass this many bytes.
    pub bytes: Option<u64>,
    /// When a packet comes this long after the first of its file (tcpdump -G).
    pub every: Option<Nanos>,
}

/// Writes packets of one link type to pcapng files.
#[derive(Debug)]
pub struct PcapngWriter {
    base: PathBuf,
    linktype: u16,
    snaplen: u32,
    rotate: Rotate,
    /// Time of the first packet of the current file.
    file_start: Option<Nanos>,
    index: u32,
    out: BufWriter<File>,
    written: u64,
    packets_in_file: u64,
    /// Files written so far, the current one last.
    pub files: Vec<PathBuf>,
    /// TLS key log text written as Decryption Secrets Blocks so far: a new file of a rotation
    /// starts with all of it, so each file stands alone.
    secrets: Vec<u8>,
}

/// Key log bytes a writer keeps to start rotated files with.
const MAX_SECRETS: usize = 16 << 20;

/// A pcapng Decryption Secrets Block of a TLS key log.
fn secrets_block(out: &mut impl Write, text: &[u8]) -> std::io::Result<u64> {
    let mut body = Vec::with_capacity(8 + text.len());
    body.extend_from_slice(&0x544c_534b_u32.to_le_bytes()); // "TLSK": TLS key log
    body.extend_from_slice(
        &u32::try_from(text.len())
            .map_err(std::io::Error::other)?
            .to_le_bytes(),
    );
    body.extend_from_slice(text);
    block(out, 0x0000_000a, &body)
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> std::io::Result<u64> {
    let padded = body.len().div_ceil(4) * 4;
    let total = u32::try_from(12 + padded).map_err(std::io::Error::other)?;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&[0u8; 3][..padded - body.len()])?;
    out.write_all(&total.to_le_bytes())?;
    Ok(u64::from(total))
}

/// `cap.pcapng` -> `cap-3.pcapng`.
fn numbered(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    base.with_file_name(name)
}

impl PcapngWriter {
    /// Creates `path` for packets of `linktype` cut at `snaplen`, new files started as
    /// `rotate` says.
    pub fn create(
        path: &Path,
        linktype: u32,
        snaplen: u32,
        rotate: Rotate,
    ) -> std::io::Result<PcapngWriter> {
        let linktype = u16::try_from(linktype).map_err(std::io::Error::other)?;
        let (out, written) = Self::open(path, linktype, snaplen)?;
        Ok(PcapngWriter {
            base: path.to_path_buf(),
            linktype,
            snaplen,
            rotate,
            file_start: None,
            index: 0,
            out,
            written,
            packets_in_file: 0,
            files: vec![path.to_path_buf()],
            secrets: Vec::new(),
        })
    }

    /// Writes TLS key log lines (NSS format) as a Decryption Secrets Block, before the
    /// packets that follow (as `editcap --inject-secrets` does).
    pub fn write_secrets(&mut self, text: &[u8]) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.written += secrets_block(&mut self.out, text)?;
        if self.secrets.len() + text.len() <= MAX_SECRETS {
            self.secrets.extend_from_slice(text);
        }
        Ok(())
    }

    fn open(path: &Path, linktype: u16, snaplen: u32) -> std::io::Result<(BufWriter<File>, u64)> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        // Section header: byte-order magic, version 1.0, section length unknown.
        let mut shb = Vec::with_capacity(16);
        shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut n = block(&mut out, 0x0a0d_0d0a, &shb)?;
        // Interface description with if_tsresol = 9 (nanoseconds), then opt_endofopt.
        let mut idb = Vec::with_capacity(20);
        idb.extend_from_slice(&linktype.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        n += block(&mut out, 1, &idb)?;
        Ok((out, n))
    }

    /// Appends one packet (an enhanced packet block), rotating first when due.
    pub fn write(&mut self, p: &Packet<'_>) -> std::io::Result<()> {
        let len = u32::try_from(p.data.len()).map_err(std::io::Error::other)?;
        let size = 32 + u64::from(len.div_ceil(4) * 4);
        let too_big = self
            .rotate
            .bytes
            .is_some_and(|max| self.written + size > max);
        let too_long = match (self.rotate.every, self.file_start) {
            (Some(every), Some(start)) => p.ts.0.saturating_sub(start.0) >= every.0,
            _ => false,
        };
        if (too_big || too_long) && self.packets_in_file > 0 {
            self.file_start = None;
            self.out.flush()?;
            self.index += 1;
            let path = numbered(&self.base, self.index);
            let (out, n) = Self::open(&path, self.linktype, self.snaplen)?;
            self.out = out;
            self.written = n;
            if !self.secrets.is_empty() {
                self.written += secrets_block(&mut self.out, &self.secrets)?;
            }
            self.packets_in_file = 0;
            self.files.push(path);
        }
        self.file_start.get_or_insert(p.ts);
        let ts = p.ts.0;
        let mut head = [0u8; 20];
        let (hi, lo) = (ts >> 32, ts & 0xffff_ffff);
        head[4..8].copy_from_slice(&u32::try_from(hi).unwrap_or(u32::MAX).to_le_bytes());
        head[8..12].copy_from_slice(&u32::try_from(lo).unwrap_or(0).to_le_bytes());
        head[12..16].copy_from_slice(&len.to_le_bytes());
        head[16..20].copy_from_slice(&p.orig_len.to_le_bytes());
        let total = u32::try_from(size).map_err(std::io::Error::other)?;
        self.out.write_all(&6u32.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(&head)?;
        self.out.write_all(p.data)?;
        self.out
            .write_all(&[0u8; 3][..(len.div_ceil(4) * 4 - len) as usize])?;
        self.out.write_all(&total.to_le_bytes())?;
        self.written += size;
        self.packets_in_file += 1;
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileSource;

    #[test]
    fn packets_read_back_the_same_across_rotated_files() {
        let input =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures/py-basic-lo.pcap");
        let dir = std::env::temp_dir().join(format!("grpctap-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("cap.pcapng");
        let mut src = FileSource::open(&input, 1 << 20).expect("open");
        let mut want = Vec::new();
        let mut w: Option<PcapngWriter> = None;
        while let Some(p) = src.next_packet().expect("read") {
            let w = w.get_or_insert_with(|| {
                let rotate = Rotate {
                    bytes: Some(64 << 10),
                    every: None,
                };
                PcapngWriter::create(&out, p.linktype, 262_144, rotate).expect("create")
            });
            w.write(&p).expect("write");
            want.push((p.ts.0, p.linktype, p.data.to_vec(), p.orig_len));
        }
        let mut w = w.expect("packets");
        w.flush().expect("flush");
        assert!(w.files.len() > 3, "{:?}", w.files);
        assert_eq!(w.files[1], dir.join("cap-1.pcapng"));
        let mut got = Vec::new();
        for f in &w.files {
            let mut s = FileSource::open(f, 1 << 20).expect("reopen");
            let mut n = 0;
            while let Some(p) = s.next_packet().expect("read back") {
                got.push((p.ts.0, p.linktype, p.data.to_vec(), p.orig_len));
                n += 1;
            }
            // Within the size, unless one packet alone is larger (loopback carries 64 KiB).
            let size = std::fs::metadata(f).expect("file").len();
            assert!(
                size <= 64 << 10 || n == 1,
                "{}: {size} bytes, {n} packets",
                f.display()
            );
        }
        assert_eq!(got.len(), want.len());
        assert!(got == want, "packets differ");
    }

    #[test]
    fn files_rotate_by_time_as_tcpdump_g_does() {
        let input =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures/py-basic-lo.pcap");
        let dir = std::env::temp_dir().join(format!("grpctap-write-g-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("cap.pcapng");
        let mut src = FileSource::open(&input, 1 << 20).expect("open");
        let every = Nanos(100_000_000);
        let mut w: Option<PcapngWriter> = None;
        let mut n = 0;
        let (mut first, mut last) = (None, Nanos::ZERO);
        while let Some(p) = src.next_packet().expect("read") {
            let w = w.get_or_insert_with(|| {
                let rotate = Rotate {
                    bytes: None,
                    every: Some(every),
                };
                PcapngWriter::create(&out, p.linktype, 262_144, rotate).expect("create")
            });
            w.write(&p).expect("write");
            first.get_or_insert(p.ts);
            last = p.ts;
            n += 1;
        }
        let mut w = w.expect("packets");
        w.flush().expect("flush");
        let span = last.0 - first.expect("first").0;
        assert!(
            w.files.len() as u64 >= span / every.0,
            "{} files for {span} ns",
            w.files.len()
        );
        let mut back = 0;
        for f in &w.files {
            let mut s = FileSource::open(f, 1 << 20).expect("reopen");
            let mut start = None;
            while let Some(p) = s.next_packet().expect("read back") {
                let t0 = *start.get_or_insert(p.ts);
                assert!(
                    p.ts.0 - t0.0 < every.0,
                    "{}: a file spans less than -G",
                    f.display()
                );
                back += 1;
            }
        }
        assert_eq!(back, n);
    }
}

//! TLS key logs for the decoder: `--tls-keylog` files (read at the start and, in a live
//! capture, followed as the application appends to them) and the key logs of pcapng
//! Decryption Secrets Blocks. Secrets never reach any output: a bad line is reported by its
//! file and number only.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use decoder::tls::keylog::{AddReport, KeyLog};

/// Bytes of one key log read at a time (a key log line is ~180 bytes).
const CHUNK: usize = 1 << 20;

/// Key log lines read since they were last taken: what `capture -w` writes into its pcapng
/// as Decryption Secrets Blocks.
#[derive(Debug, Default)]
pub(crate) struct NewLines {
    text: Mutex<Vec<u8>>,
    fresh: AtomicBool,
}

impl NewLines {
    fn push(&self, t: &[u8]) {
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.extend_from_slice(t);
        self.fresh.store(true, Ordering::Release);
    }

    /// The lines read since the last call, if any (one atomic load when there are none).
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        if !self.fresh.swap(false, Ordering::Acquire) {
            return None;
        }
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        Some(std::mem::take(&mut *text))
    }
}

/// One key log file, read up to `offset` (whole lines only).
#[derive(Debug)]
pub(crate) struct Tail {
    path: PathBuf,
    offset: u64,
    /// Lines read so far (for the numbers of bad lines).
    lines: u64,
    /// A last line without its newline yet.
    partial: Vec<u8>,
}

fn report(what: &str, r: &AddReport) {
    for (line, why) in &r.bad {
        eprintln!(
            "grpctap: {what} line {line}: {} (line not used)",
            why.name()
        );
    }
    let more = r.bad_count - r.bad.len() as u64;
    if more > 0 {
        eprintln!("grpctap: {what}: {more} more bad lines");
    }
}

impl Tail {
    /// Opens `path` (it must exist: a typo should not look like "no keys").
    pub(crate) fn open(path: &Path) -> anyhow::Result<Tail> {
        std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("--tls-keylog {}: {e}", path.display()))?;
        Ok(Tail {
            path: path.to_owned(),
            offset: 0,
            lines: 0,
            partial: Vec::new(),
        })
    }

    /// Adds the lines written since the last read. A file that shrank (rotated, truncated)
    /// is read again from its start.
    pub(crate) fn poll(&mut self, log: &KeyLog, new: Option<&NewLines>) -> std::io::Result<()> {
        let mut f = std::fs::File::open(&self.path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            self.offset = 0;
            self.lines = 0;
            self.partial.clear();
        }
        if len == self.offset {
            return Ok(());
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        (&mut f).take(len - self.offset).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        for piece in buf.chunks(CHUNK) {
            self.partial.extend_from_slice(piece);
            let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let text = String::from_utf8_lossy(&self.partial[..=end]).into_owned();
            let r = log.add_text(&text, self.lines + 1);
            if let Some(n) = new {
                n.push(text.as_bytes());
            }
            self.lines += text.lines().count() as u64;
            report(&format!("--tls-keylog {}", self.path.display()), &r);
            self.partial.drain(..=end);
        }
        // A line longer than any key log line is not one: dropped rather than kept growing.
        if self.partial.len() > 4096 {
            self.partial.clear();
        }
        Ok(())
    }
}

/// The `--tls-keylog` files, read into one key store; shared by the thread that follows them
/// in a live capture and the pipeline, which reads them once more before it gives up on a
/// connection still waiting for its keys.
#[derive(Debug, Clone)]
pub(crate) struct KeyFiles {
    log: Arc<KeyLog>,
    tails: Arc<Mutex<Vec<Tail>>>,
    new: Option<Arc<NewLines>>,
}

impl KeyFiles {
    /// Reads every file of `paths` into `log` (lines read also go to `new`, when given).
    pub(crate) fn load(
        paths: &[PathBuf],
        log: Arc<KeyLog>,
        new: Option<Arc<NewLines>>,
    ) -> anyhow::Result<KeyFiles> {
        let mut tails = Vec::new();
        for p in paths {
            let mut t = Tail::open(p)?;
            t.poll(&log, new.as_deref())
                .map_err(|e| anyhow::anyhow!("--tls-keylog {}: {e}", p.display()))?;
            tails.push(t);
        }
        Ok(KeyFiles {
            log,
            tails: Arc::new(Mutex::new(tails)),
            new,
        })
    }

    /// Reads what the files gained since the last read.
    pub(crate) fn refresh(&self) {
        let mut tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        for t in tails.iter_mut() {
            // A file that is gone for a moment (being rotated) is read again later.
            let _ = t.poll(&self.log, self.new.as_deref());
        }
    }

    /// True when there are files to read.
    pub(crate) fn is_empty(&self) -> bool {
        self.tails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Follows the files as they grow (a live capture: the application writes each
    /// connection's keys when it makes them), every `every`, until the process ends.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    pub(crate) fn follow(&self, every: Duration) {
        if self.is_empty() {
            return;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("keylog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    me.refresh();
                }
            });
        if let Err(e) = spawned {
            eprintln!("grpctap: cannot follow the key logs: {e}");
        }
    }
}

/// Where the key logs of pcapng Decryption Secrets Blocks go.
pub(crate) fn dsb_hook(log: Arc<KeyLog>) -> capture::source::SecretsHook {
    capture::source::SecretsHook(Arc::new(move |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let r = log.add_text(&text, 1);
        report("decryption secrets block", &r);
    }))
}

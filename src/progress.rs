//! A progress line on stderr while long files are read (only when stderr is a terminal and
//! the UI does not own it).

/// A progress line on stderr for long files, only when stderr is a terminal.
pub(crate) struct Progress {
    on: bool,
    last: std::time::Instant,
    shown: bool,
}

impl Progress {
    pub(crate) fn new(on: bool) -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: on && std::io::stderr().is_terminal(),
            last: std::time::Instant::now(),
            shown: false,
        }
    }

    /// Shows how far into `name` the replay is (`bytes`: read, and the size when known).
    pub(crate) fn show(&mut self, name: &str, bytes: Option<(u64, Option<u64>)>) {
        let Some((done, total)) = bytes else { return };
        if !self.on || self.last.elapsed() < std::time::Duration::from_millis(250) {
            return;
        }
        self.last = std::time::Instant::now();
        let Some(total) = total else {
            // A pipe: how much came so far.
            eprint!("\r{name} {:.0} MB read", done as f64 / 1e6);
            self.shown = true;
            return;
        };
        let pct = if total > 0 {
            100.0 * done as f64 / total as f64
        } else {
            0.0
        };
        let width = 30usize;
        // pct is in 0..=100, so this is at most `width`.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let filled = ((pct / 100.0) * width as f64) as usize;
        eprint!(
            "\r{} [{}{}] {:5.1}% {:.0}/{:.0} MB",
            name,
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            pct,
            done as f64 / 1e6,
            total as f64 / 1e6
        );
        self.shown = true;
    }

    pub(crate) fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

//! A program in a real terminal: tmux on its own server socket, driven by `send-keys` and read
//! with `capture-pane`.

use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux server with one window running a command.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `cmd` (run by sh) in a `width` x `height` window. After the command, the shell
    /// prints `EXIT=<status>` and whether the terminal is back in cooked mode (`stty`), then
    /// waits, so the screen can still be read.
    pub(crate) fn start(name: &str, cmd: &str, width: u16, height: u16) -> Tmux {
        let socket = format!("grpctap-test-{name}-{}", std::process::id());
        let script = format!(
            "{cmd}; echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 600"
        );
        let t = Tmux { socket };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "sh",
            "-c",
            &script,
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux (install it: apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (tmux key names: `Enter`, `Escape`, `PageDown`, `C-c`, or text).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types text literally.
    pub(crate) fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "main", "-l", text]);
    }

    /// The screen now.
    pub(crate) fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }

    /// A tmux format value of the pane (`#{alternate_on}`, `#{pane_width}`).
    pub(crate) fn pane(&self, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", "main", format])
            .trim()
            .to_owned()
    }

    /// Resizes the window.
    pub(crate) fn resize(&self, width: u16, height: u16) {
        self.run(&[
            "resize-window",
            "-t",
            "main",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }

    /// Waits (up to 20 s) until the screen satisfies `ok`; returns that screen.
    pub(crate) fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < until, "waited for {what}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen shows `text`.
    pub(crate) fn wait_for(&self, text: &str) -> String {
        self.wait(text, |s| s.contains(text))
    }

    /// Waits for the program to end and checks the terminal was given back: normal screen,
    /// cooked mode with echo. Returns the screen.
    pub(crate) fn wait_exit(&self, status: i32) -> String {
        let s = self.wait("the program to end", |s| {
            s.contains("EXIT=") && s.contains("icanon")
        });
        assert!(s.contains(&format!("EXIT={status}")), "{s}");
        assert!(
            s.contains("icanon") && !s.contains("-icanon") && !s.contains("-echo"),
            "terminal left in raw mode:\n{s}"
        );
        assert_eq!(
            self.pane("#{alternate_on}"),
            "0",
            "alternate screen left on"
        );
        s
    }
}

impl Tmux {
    /// Closes the terminal under the program (as closing its window would).
    pub(crate) fn hang_up(&self) {
        self.run(&["kill-server"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

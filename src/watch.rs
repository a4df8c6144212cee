//! `--tui` and `--speed`: the terminal UI on its own thread, fed by the decoding thread, and the
//! pace of a replay (real time or a factor of it, pause).

use std::io::IsTerminal;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use decoder::Nanos;
use tui::feed::{Feeder, Shared};

use crate::cli::Speed;

/// Batches the UI channel holds before the decoding thread drops events (512 events each).
const UI_QUEUE: usize = 64;

/// The UI thread.
pub(crate) struct Watch {
    pub(crate) shared: Arc<Shared>,
    handle: JoinHandle<std::io::Result<tui::app::App>>,
}

/// Starts the UI on its own thread; the returned feeder goes to the pipeline.
pub(crate) fn start(
    max_methods: usize,
    decode: tui::detail::Decode,
    speed: Speed,
    files: Option<tui::app::CaptureFiles>,
) -> anyhow::Result<(Watch, Feeder)> {
    anyhow::ensure!(
        std::io::stdout().is_terminal(),
        "--tui needs a terminal on stdout (use the summary table, --calls or --summary-json instead)"
    );
    let (feeder, rx, shared) = tui::feed::channel(UI_QUEUE);
    let model = tui::model::Model::new(tui::model::ModelLimits {
        max_methods,
        ..Default::default()
    });
    let mut app = tui::app::App::new(model, decode);
    app.files = files;
    let feeder = feeder.with_pace(match speed {
        Speed::Max => None,
        Speed::Factor(f) => Some(f),
    });
    let ui_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name("grpctap-ui".into())
        .spawn(move || tui::run(&rx, &ui_shared, app))
        .context("starting the UI thread")?;
    Ok((Watch { shared, handle }, feeder))
}

impl Watch {
    /// Waits until the user leaves the UI.
    pub(crate) fn wait(self) -> anyhow::Result<()> {
        match self.handle.join() {
            Ok(r) => r.map(|_| ()).context("terminal UI"),
            Err(_) => anyhow::bail!("the terminal UI stopped on an internal error"),
        }
    }
}

/// Holds a replay to its speed, and still while paused.
#[derive(Debug)]
pub(crate) struct Pace {
    speed: Speed,
    /// Packet time and wall time the pace is measured from.
    base: Option<(Nanos, Instant)>,
}

impl Pace {
    pub(crate) fn new(speed: Speed) -> Pace {
        Pace { speed, base: None }
    }

    /// Waits until the packet at `ts` is due; `tick` runs every few dozen milliseconds while
    /// waiting. Returns false when everyone should stop.
    pub(crate) fn wait(
        &mut self,
        ts: Nanos,
        shared: Option<&Shared>,
        tick: &mut dyn FnMut(),
    ) -> bool {
        const STEP: Duration = Duration::from_millis(25);
        loop {
            if let Some(sh) = shared {
                if sh.quitting() {
                    return false;
                }
                if sh.is_paused() {
                    // The pace moves on by the time really spent paused (a sleep overshoots
                    // and ticks take time: adding STEP alone left the pace behind after a long
                    // pause, and the replay then rushed to catch up, past what the UI's
                    // channel holds).
                    let t = Instant::now();
                    std::thread::sleep(STEP);
                    tick();
                    if let Some((_, wall)) = self.base.as_mut() {
                        *wall += t.elapsed();
                    }
                    continue;
                }
            }
            let Speed::Factor(f) = self.speed else {
                return true;
            };
            let (ts0, wall0) = *self.base.get_or_insert((ts, Instant::now()));
            let ahead = (ts - ts0).as_secs_f64() / f;
            let due = wall0 + Duration::from_secs_f64(ahead.min(1e9));
            let now = Instant::now();
            if due <= now {
                return true;
            }
            std::thread::sleep((due - now).min(STEP));
            tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_pace_follows_packet_times_and_pause() {
        let mut pace = Pace::new(Speed::Factor(2.0));
        let shared = Shared::default();
        let t0 = Instant::now();
        let mut ticks = 0;
        // 200 ms of capture at 2x: about 100 ms of wall time.
        for ms in [0u64, 50, 100, 200] {
            assert!(pace.wait(
                Nanos(1_000_000_000 + ms * 1_000_000),
                Some(&shared),
                &mut || { ticks += 1 }
            ));
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(95), "{took:?}");
        assert!(ticks > 0);
        shared
            .quit
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            !pace.wait(Nanos(5_000_000_000), Some(&shared), &mut || {}),
            "quit ends the wait"
        );
        // Paused for a while with ticks that take time: afterwards the pace holds the next
        // packet to its time counted from the resume, not from before the pause.
        let mut pace = Pace::new(Speed::Factor(1.0));
        let shared = std::sync::Arc::new(Shared::default());
        assert!(pace.wait(Nanos(1_000_000_000), Some(&shared), &mut || {}));
        shared
            .paused
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let resume = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                shared
                    .paused
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            })
        };
        let t0 = Instant::now();
        // The next packet 100 ms of capture time later; ticks of 10 ms each.
        assert!(pace.wait(Nanos(1_100_000_000), Some(&shared), &mut || {
            std::thread::sleep(Duration::from_millis(10))
        }));
        let took = t0.elapsed();
        resume.join().expect("resume");
        assert!(
            took >= Duration::from_millis(480),
            "released {took:?} after the pause began: the pause was not all counted"
        );
        let mut max = Pace::new(Speed::Max);
        let t1 = Instant::now();
        assert!(max.wait(Nanos::MAX, None, &mut || {}));
        assert!(t1.elapsed() < Duration::from_millis(50));
    }
}

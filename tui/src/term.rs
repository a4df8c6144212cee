//! The terminal loop: raw mode and the alternate screen, restored on every way out (quit,
//! Ctrl-C, SIGTERM/SIGINT/SIGHUP, a panic on any thread).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, MouseButton, MouseEventKind};

use crate::app::App;
use crate::feed::{Shared, UiEvent};

/// Held while drawing and while restoring: a panic on another thread restores the terminal
/// only between frames, and no frame is drawn after it.
static TERMINAL: Mutex<()> = Mutex::new(());

/// Takes [`TERMINAL`] for the panic hook: waits up to 200 ms (the panicking thread may be the
/// one drawing, holding it).
fn lock_for_panic() -> Option<std::sync::MutexGuard<'static, ()>> {
    for _ in 0..200 {
        match TERMINAL.try_lock() {
            Ok(g) => return Some(g),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    None
}

/// Time between frames.
const FRAME: Duration = Duration::from_millis(100);
/// Longest time spent applying events before the next frame or key is served.
const APPLY_BUDGET: Duration = Duration::from_millis(60);

/// Applies queued batches until none is left or the budget is spent. Returns true when the
/// sender is gone.
pub fn drain(rx: &Receiver<Vec<UiEvent>>, app: &mut App, budget: Duration) -> bool {
    let until = Instant::now() + budget;
    loop {
        match rx.try_recv() {
            Ok(batch) => {
                for ev in batch {
                    app.model.apply(ev);
                }
                if Instant::now() >= until {
                    return false;
                }
            }
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

/// Runs the UI until the user quits or someone sets `shared.quit`; the terminal is restored
/// before returning (and by the panic hook on a panic).
pub fn run(
    rx: &Receiver<Vec<UiEvent>>,
    shared: &Arc<Shared>,
    mut app: App,
) -> std::io::Result<App> {
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, shared.quit.clone())?;
    }
    let mut terminal = ratatui::try_init()?;
    // The mouse chooses a range on the timeline (Shift and drag still selects text in most
    // terminals).
    let _ = ratatui::crossterm::execute!(std::io::stdout(), event::EnableMouseCapture);
    // ratatui's hook restores the terminal; ours also tells every thread to stop.
    let restore = std::panic::take_hook();
    let quit = shared.quit.clone();
    std::panic::set_hook(Box::new(move |info| {
        quit.store(true, Ordering::Relaxed);
        let _guard = lock_for_panic();
        let _ = ratatui::crossterm::execute!(std::io::stdout(), event::DisableMouseCapture);
        restore(info);
    }));
    let keys = spawn_input(shared.quit.clone())?;
    let result = ui_loop(&mut terminal, rx, &keys, shared, &mut app);
    let _ = ratatui::crossterm::execute!(std::io::stdout(), event::DisableMouseCapture);
    ratatui::restore();
    shared.quit.store(true, Ordering::Relaxed);
    result.map(|()| app)
}

/// Reads the terminal on a thread of its own and passes keys and resizes on. A terminal that
/// hung up makes crossterm's reader spin without returning; on its own thread that cannot stop
/// the UI from seeing SIGHUP (or its own quit) and leaving, which ends the process.
fn spawn_input(stop: Arc<std::sync::atomic::AtomicBool>) -> std::io::Result<Receiver<Event>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(256);
    std::thread::Builder::new()
        .name("grpctap-keys".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(50)) {
                    Ok(false) => {}
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Err(_) => return,
                }
            }
        })?;
    Ok(rx)
}

fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    rx: &Receiver<Vec<UiEvent>>,
    keys: &Receiver<Event>,
    shared: &Shared,
    app: &mut App,
) -> std::io::Result<()> {
    let mut next_draw = Instant::now();
    loop {
        if app.quit || shared.quitting() {
            return Ok(());
        }
        shared.paused.store(app.paused, Ordering::Relaxed);
        if !app.paused {
            drain(rx, app, APPLY_BUDGET);
        }
        app.dropped = shared.dropped.load(Ordering::Relaxed);
        if app.poll_job() {
            next_draw = Instant::now();
        }
        let now = Instant::now();
        if now >= next_draw {
            let _guard = TERMINAL
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if shared.quitting() {
                return Ok(());
            }
            terminal.draw(|f| crate::view::draw(f, app))?;
            next_draw = now + FRAME;
        }
        let wait = next_draw.saturating_duration_since(Instant::now());
        match keys.recv_timeout(wait) {
            Ok(Event::Key(k)) => {
                app.on_key(k);
                if let Some(text) = app.clipboard.take() {
                    use std::io::Write as _;
                    let mut out = std::io::stdout();
                    let _ = out.write_all(crate::detail::osc52(&text).as_bytes());
                    let _ = out.flush();
                }
                next_draw = Instant::now();
            }
            Ok(Event::Resize(..)) => next_draw = Instant::now(),
            Ok(Event::Mouse(m)) => {
                let on_row = app.timeline_at.is_some_and(|(_, y, _)| y == m.row);
                let phase = match m.kind {
                    MouseEventKind::Down(MouseButton::Left) if on_row => {
                        Some(crate::app::MousePhase::Down)
                    }
                    MouseEventKind::Drag(MouseButton::Left) => Some(crate::app::MousePhase::Drag),
                    MouseEventKind::Up(MouseButton::Left) => Some(crate::app::MousePhase::Up),
                    _ => None,
                };
                if let Some(p) = phase {
                    app.on_timeline_mouse(m.column, p);
                    next_draw = Instant::now();
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            // The terminal cannot be read any more.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

//! A panic gives the terminal back, seen in a real terminal (tmux). This file is its own
//! program (no test harness): run plainly it drives tmux; run with PANIC_CHILD=1 inside tmux it
//! is the program that crashes: the UI on its own thread, a panic on the main (decoding)
//! thread, as a crash of grpctap would happen.

#[path = "../../tests/common/tmux.rs"]
#[allow(dead_code)] // the driver uses part of it
mod tmux;

use std::time::Duration;

fn child() {
    let (_feeder, rx, shared) = tui::feed::channel(8);
    let app = tui::app::App::new(
        tui::model::Model::new(tui::model::ModelLimits::default()),
        tui::detail::Decode::default(),
    );
    let ui_shared = shared.clone();
    let _ui = std::thread::spawn(move || tui::run(&rx, &ui_shared, app));
    std::thread::sleep(Duration::from_millis(800));
    panic!("the decoding thread failed (on purpose)");
}

fn main() {
    if std::env::var_os("PANIC_CHILD").is_some() {
        return child();
    }
    let exe = std::env::current_exe().expect("test path");
    let t = tmux::Tmux::start(
        "panic",
        &format!("RUST_BACKTRACE=0 PANIC_CHILD=1 {}", exe.display()),
        80,
        24,
    );
    t.wait_for("1 Methods");
    assert_eq!(t.pane("#{alternate_on}"), "1");
    let s = t.wait_exit(101);
    assert!(s.contains("the decoding thread failed (on purpose)"), "{s}");
    println!("test a_panic_restores_the_terminal ... ok");
    println!("test result: ok. 1 passed; 0 failed");
}

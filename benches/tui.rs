//! Is the terminal UI responsive under load? 10,000 methods and 100,000 calls per second sent
//! by a decoding thread through the real feeder and bounded channel, for 10 s; the UI thread
//! runs the same loop as the terminal (apply with a time budget, a frame every 100 ms) drawing
//! into ratatui's TestBackend at 200x50, and presses a key every 300 ms (sort, move, switch
//! view, filter). Reported: calls applied and dropped, frame draw time, the longest time between
//! two frames, key-to-frame latency, peak memory.
//!
//! Run: `cargo bench --bench tui` (GRPCTAP_BENCH_SECS, GRPCTAP_BENCH_RATE, GRPCTAP_BENCH_METHODS)

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use decoder::grpc::Code;
use decoder::{CallRecord, ConnId, Nanos, StatusSource};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui::feed::{Snapshot, SourceStatus, UiEvent};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let secs = env("GRPCTAP_BENCH_SECS", 10);
    let rate = env("GRPCTAP_BENCH_RATE", 100_000);
    let methods = env("GRPCTAP_BENCH_METHODS", 10_000) as usize;
    let names: Vec<Arc<str>> = (0..methods)
        .map(|i| Arc::from(format!("/bench.svc{}.Service/Method{i}", i % 100)))
        .collect();
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let servers: Vec<SocketAddr> = (0..8)
        .map(|i| format!("10.0.1.{i}:50051").parse().unwrap())
        .collect();

    let (mut feeder, rx, shared) = tui::feed::channel(64);
    let (names2, servers2) = (names.clone(), servers.clone());
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || {
        let (names, servers) = (names2, servers2);
        // Capture time runs with wall time; calls spread over methods and servers, 3% fail.
        let base: u64 = 1_800_000_000_000_000_000;
        let per_ms = rate / 1000;
        let mut sent = 0u64;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next_snapshot = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            let due = (t0.elapsed().as_millis() as u64 + 1) * per_ms;
            while sent < due {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let now = base + t0.elapsed().as_nanos() as u64;
                let m = (seed % methods as u64) as usize;
                let mut c = CallRecord::new(
                    ConnId::new(0, sent / 100),
                    (sent % 100) as u32 * 2 + 1,
                    client,
                    servers[m % 8],
                    Some(Nanos(now - 2_000_000 - seed % 5_000_000)),
                );
                c.method = Some(names[m].clone());
                c.end = Some(Nanos(now));
                let code = if seed % 100 < 3 { 14 } else { 0 };
                c.status = Some(Code(code));
                c.grpc_status = Some(code);
                c.status_source = StatusSource::Trailers;
                c.req.msgs = 1;
                c.resp.msgs = u64::from(code == 0);
                feeder.push(UiEvent::Call(Box::new(c)));
                sent += 1;
            }
            if Instant::now() >= next_snapshot {
                next_snapshot += Duration::from_millis(100);
                feeder.push(UiEvent::Snapshot(Box::new(Snapshot {
                    now: Nanos(base + t0.elapsed().as_nanos() as u64),
                    status: SourceStatus {
                        source: "bench".into(),
                        packets: sent * 6,
                        ..Default::default()
                    },
                    ..Default::default()
                })));
                feeder.flush();
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        feeder.flush();
        sent
    });

    let mut app = tui::app::App::new(
        tui::model::Model::new(tui::model::ModelLimits {
            max_methods: methods + 1,
            ..Default::default()
        }),
        tui::detail::Decode::default(),
    );
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let keys = [
        's', 'j', 'j', 's', '\t', 'j', '\n', '\x1b', '\t', '\t', 'g', 's', 'g', '/', 'x', '\n',
        '\x1b',
    ];
    let mut next_key = Instant::now() + Duration::from_millis(300);
    let mut key_i = 0;
    let mut next_frame = Instant::now();
    let mut last_frame = Instant::now();
    let (mut draws, mut gaps, mut key_latency) = (Vec::new(), Vec::new(), Vec::new());
    let mut done = false;
    while !done || t0.elapsed() < Duration::from_secs(secs) + Duration::from_millis(500) {
        done |= tui::drain(&rx, &mut app, Duration::from_millis(60));
        let mut pressed = None;
        if Instant::now() >= next_key {
            let code = match keys[key_i % keys.len()] {
                '\n' => KeyCode::Enter,
                '\t' => KeyCode::Tab,
                '\x1b' => KeyCode::Esc,
                c => KeyCode::Char(c),
            };
            let at = Instant::now();
            app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
            pressed = Some(at);
            key_i += 1;
            next_key += Duration::from_millis(300);
            next_frame = Instant::now();
        }
        if Instant::now() >= next_frame {
            let start = Instant::now();
            gaps.push(start.duration_since(last_frame).as_secs_f64() * 1e3);
            term.draw(|f| tui::view::draw(f, &mut app)).unwrap();
            let end = Instant::now();
            draws.push(end.duration_since(start).as_secs_f64() * 1e3);
            if let Some(at) = pressed {
                key_latency.push(end.duration_since(at).as_secs_f64() * 1e3);
            }
            last_frame = end;
            next_frame = start + Duration::from_millis(100);
        }
        std::thread::sleep(
            next_frame
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(5)),
        );
    }
    let sent = producer.join().unwrap();
    tui::drain(&rx, &mut app, Duration::from_secs(5));
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let applied = app.model.calls;
    gaps.remove(0);
    println!(
        "{} methods, {} calls/s offered for {} s: {} calls sent, {} applied by the UI, {} events dropped ({:.3}%)",
        methods,
        rate,
        secs,
        sent,
        applied,
        dropped,
        100.0 * dropped as f64 / sent.max(1) as f64
    );
    println!(
        "frames: {}; draw time p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; longest time between frames {:.1} ms (target 100)",
        draws.len(),
        quantile(&mut draws, 0.5),
        quantile(&mut draws, 0.99),
        quantile(&mut draws, 1.0),
        quantile(&mut gaps, 1.0)
    );
    // Applying alone: 200,000 more calls, made beforehand, into the same model.
    let now = app.model.now.0;
    let batch: Vec<UiEvent> = (0..200_000u64)
        .map(|k| {
            let m = (k * 7919 % methods as u64) as usize;
            let mut c = CallRecord::new(
                ConnId::new(0, k / 100),
                1,
                client,
                servers[m % 8],
                Some(Nanos(now + k * 1000)),
            );
            c.method = Some(names[m].clone());
            c.end = Some(Nanos(now + k * 1000 + 2_000_000));
            c.status = Some(Code(0));
            c.status_source = StatusSource::Trailers;
            UiEvent::Call(Box::new(c))
        })
        .collect();
    let start = Instant::now();
    for ev in batch {
        app.model.apply(ev);
    }
    println!(
        "applying alone: {:.0} calls/s on one core",
        200_000.0 / start.elapsed().as_secs_f64()
    );
    // The same frames with nothing else running: what drawing itself costs.
    let mut idle = Vec::new();
    for view in ['1', '2', '3', '1'] {
        app.on_key(KeyEvent::new(KeyCode::Char(view), KeyModifiers::NONE));
        for _ in 0..10 {
            let start = Instant::now();
            term.draw(|f| tui::view::draw(f, &mut app)).unwrap();
            idle.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "draw time alone (Methods, Calls, Connections): p50 {:.1} ms, max {:.1} ms",
        quantile(&mut idle, 0.5),
        quantile(&mut idle, 1.0)
    );
    println!(
        "key to frame: p50 {:.1} ms, max {:.1} ms over {} keys; peak RSS {:.0} MiB",
        quantile(&mut key_latency, 0.5),
        quantile(&mut key_latency, 1.0),
        key_latency.len(),
        capture::stats::peak_rss_kib() as f64 / 1024.0
    );
}

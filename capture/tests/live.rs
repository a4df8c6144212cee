//! Live capture on the loopback interface (feature `live`; needs root or CAP_NET_RAW, as CI has).

#![cfg(feature = "live")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use capture::live::{LiveConfig, LiveSource, interfaces};
use capture::{EventKind, Reassembler, StreamEvent};

fn lo(filter: &str) -> LiveSource {
    LiveSource::open(&LiveConfig {
        iface: "lo".into(),
        filter: Some(filter.into()),
        ..LiveConfig::default()
    })
    .expect("open lo (run as root)")
}

#[test]
fn loopback_bytes_are_captured_and_reassembled() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut src = lo(&format!("tcp port {port}"));
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        got.len()
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(&sent).expect("write");
    drop(c);
    assert_eq!(server.join().expect("server"), payload.len());
    // Everything the client sent, as the reassembler rebuilds it from the live packets.
    let mut reasm = Reassembler::new(capture::CaptureLimits::default());
    let mut to_server = Vec::new();
    let mut closed = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while closed < 2 && Instant::now() < until {
        let Some(pkt) = src.next_packet(Duration::from_millis(200)).expect("read") else {
            continue;
        };
        reasm.handle_packet(&pkt, &mut |ev: StreamEvent<'_>| match ev.kind {
            EventKind::Data(b) if ev.dir.index() == 0 => to_server.extend_from_slice(b),
            EventKind::Close { .. } => closed += 1,
            _ => {}
        });
    }
    assert_eq!(to_server.len(), payload.len());
    assert!(to_server == payload, "bytes differ");
    let stats = src.stats();
    assert!(stats.received > 0, "{stats:?}");
}

#[test]
fn an_idle_interface_does_not_block() {
    // A filter nothing matches: each wait ends on time.
    let mut src = lo("tcp port 9 and tcp port 10");
    for _ in 0..3 {
        let t = Instant::now();
        assert!(
            src.next_packet(Duration::from_millis(100))
                .expect("read")
                .is_none()
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }
}

#[test]
fn a_bad_filter_and_a_missing_interface_are_clear_errors() {
    let e = LiveSource::open(&LiveConfig {
        iface: "lo".into(),
        filter: Some("tcp port nonsense".into()),
        ..LiveConfig::default()
    })
    .expect_err("bad filter");
    assert!(
        e.to_string().contains("filter \"tcp port nonsense\""),
        "{e}"
    );
    let e = LiveSource::open(&LiveConfig {
        iface: "no-such-iface0".into(),
        ..LiveConfig::default()
    })
    .expect_err("no interface");
    assert!(e.to_string().contains("no-such-iface0"), "{e}");
    let list = interfaces().expect("list");
    assert!(
        list.iter().any(|i| i.name == "lo" && i.loopback),
        "{list:?}"
    );
}

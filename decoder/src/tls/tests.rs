//! The TLS layer against a real TLS stack: rustls client and server connected in memory, their
//! records captured as a tap would see them, their key log written by rustls itself.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use types::{Dir, Nanos};

use super::keylog::KeyLog;
use super::session::{PlainSink, TlsLimits, TlsSession, TlsState};
use crate::anomaly::AnomalyKind;

#[derive(Debug, Default)]
struct Lines(Mutex<String>);

impl rustls::KeyLog for Lines {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut s = self.0.lock().expect("lock");
        s.push_str(&format!("{label} {} {}\n", hex(client_random), hex(secret)));
    }
}

struct Stacks {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    keys: Arc<Lines>,
}

fn stacks(
    versions: &[&'static rustls::SupportedProtocolVersion],
    suite: rustls::SupportedCipherSuite,
    client_kx: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    server_kx: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> Stacks {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let mk = |kx| {
        Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            kx_groups: kx,
            ..provider::default_provider()
        })
    };
    let keys = Arc::new(Lines::default());
    let mut server = ServerConfig::builder_with_provider(mk(server_kx))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server config");
    server.alpn_protocols = vec![b"h2".to_vec()];
    server.max_early_data_size = 4096;
    let mut roots = RootCertStore::empty();
    roots.add(der).expect("root");
    let mut client = ClientConfig::builder_with_provider(mk(client_kx))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    client.key_log = keys.clone();
    client.enable_early_data = true;
    Stacks {
        client: Arc::new(client),
        server: Arc::new(server),
        keys,
    }
}

fn tls13(suite: rustls::SupportedCipherSuite) -> Stacks {
    let kx = vec![provider::kx_group::X25519];
    stacks(&[&rustls::version::TLS13], suite, kx.clone(), kx)
}

fn tls12(suite: rustls::SupportedCipherSuite) -> Stacks {
    let kx = vec![provider::kx_group::X25519];
    stacks(&[&rustls::version::TLS12], suite, kx.clone(), kx)
}

/// A client and a server talking; every chunk of TLS bytes each sent, in order.
struct Pair {
    client: ClientConnection,
    server: ServerConnection,
    wire: Vec<(Dir, Vec<u8>)>,
    /// Plaintext each side received, by the direction it travelled.
    got: [Vec<u8>; 2],
}

impl Pair {
    fn new(s: &Stacks) -> Pair {
        let name = ServerName::try_from("localhost").expect("name");
        Pair {
            client: ClientConnection::new(s.client.clone(), name).expect("client"),
            server: ServerConnection::new(s.server.clone()).expect("server"),
            wire: Vec::new(),
            got: [Vec::new(), Vec::new()],
        }
    }

    fn pump(&mut self) {
        for _ in 0..32 {
            let mut moved = false;
            while self.client.wants_write() {
                let mut b = Vec::new();
                self.client.write_tls(&mut b).expect("client write");
                let mut rd = &b[..];
                while !rd.is_empty() {
                    self.server.read_tls(&mut rd).expect("server read");
                    self.server.process_new_packets().expect("server process");
                    if let Some(mut ed) = self.server.early_data() {
                        ed.read_to_end(&mut self.got[0]).expect("early");
                    }
                    read_all(&mut self.server.reader(), &mut self.got[0]);
                }
                self.wire.push((Dir::ToServer, b));
                moved = true;
            }
            while self.server.wants_write() {
                let mut b = Vec::new();
                self.server.write_tls(&mut b).expect("server write");
                let mut rd = &b[..];
                while !rd.is_empty() {
                    self.client.read_tls(&mut rd).expect("client read");
                    self.client.process_new_packets().expect("client process");
                    read_all(&mut self.client.reader(), &mut self.got[1]);
                }
                self.wire.push((Dir::ToClient, b));
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn send(&mut self, d: Dir, bytes: &[u8]) {
        match d {
            Dir::ToServer => self.client.writer().write_all(bytes).expect("write"),
            Dir::ToClient => self.server.writer().write_all(bytes).expect("write"),
        }
        self.pump();
    }
}

fn read_all(r: &mut impl Read, out: &mut Vec<u8>) {
    let mut buf = [0u8; 65536];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[derive(Debug, Default)]
struct Out {
    plain: [Vec<u8>; 2],
    lost: Vec<(Dir, Option<u64>)>,
    anomalies: Vec<AnomalyKind>,
}

impl PlainSink for Out {
    fn plaintext(&mut self, d: Dir, _ts: Nanos, bytes: &[u8]) {
        self.plain[d.index()].extend_from_slice(bytes);
    }
    fn lost(&mut self, d: Dir, len: Option<u64>) {
        self.lost.push((d, len));
    }
    fn anomaly(&mut self, kind: AnomalyKind) {
        self.anomalies.push(kind);
    }
}

/// A conversation: the handshake, then messages both ways (some larger than a record).
fn talk(s: &Stacks) -> Pair {
    let mut p = Pair::new(s);
    p.pump();
    for i in 0..6u8 {
        p.send(Dir::ToServer, &vec![b'a' + i; 100 + usize::from(i) * 7000]);
        p.send(Dir::ToClient, &vec![b'A' + i; 50 + usize::from(i) * 9000]);
    }
    p
}

fn keylog(s: &Stacks) -> Arc<KeyLog> {
    let log = Arc::new(KeyLog::new());
    let r = log.add_text(&s.keys.0.lock().expect("lock"), 1);
    assert_eq!(r.bad_count, 0);
    log
}

fn replay(p: &Pair, log: Arc<KeyLog>) -> (TlsSession, Out) {
    let mut t = TlsSession::new(Dir::ToServer, log, TlsLimits::default());
    let mut out = Out::default();
    for (d, b) in &p.wire {
        t.handle_data(*d, Nanos(1), b, &mut out);
    }
    t.finish(&mut out);
    (t, out)
}

fn all_suites() -> Vec<(Stacks, u16, u16)> {
    use provider::cipher_suite as cs;
    vec![
        (tls13(cs::TLS13_AES_128_GCM_SHA256), 0x0304, 0x1301),
        (tls13(cs::TLS13_AES_256_GCM_SHA384), 0x0304, 0x1302),
        (tls13(cs::TLS13_CHACHA20_POLY1305_SHA256), 0x0304, 0x1303),
        (
            tls12(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            0x0303,
            0xc02b,
        ),
        (
            tls12(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
            0x0303,
            0xc02c,
        ),
        (
            tls12(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            0x0303,
            0xcca9,
        ),
    ]
}

#[test]
fn every_suite_decrypts_exactly_what_the_peers_read() {
    for (s, version, suite) in all_suites() {
        let p = talk(&s);
        assert!(p.got[0].len() > 40_000 && p.got[1].len() > 40_000);
        let (t, out) = replay(&p, keylog(&s));
        assert_eq!(t.state(), TlsState::Decrypting, "{suite:#x}");
        assert_eq!(out.plain, p.got, "{suite:#x}");
        assert!(
            out.anomalies.is_empty() && out.lost.is_empty(),
            "{suite:#x} {out:?}"
        );
        let info = t.info();
        assert_eq!((info.version, info.suite), (Some(version), Some(suite)));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        assert_eq!(info.alpn_offered.as_deref(), Some("h2,http/1.1"));
        assert_eq!(info.alpn.as_deref(), Some("h2"), "{suite:#x}");
        assert_eq!(info.encrypted_bytes, [0, 0], "{suite:#x}");
        assert!(!info.hello_retry && !info.resumed);
    }
}

#[test]
fn records_split_byte_by_byte_or_joined_decrypt_the_same() {
    for (s, _, suite) in all_suites().into_iter().step_by(2) {
        let p = talk(&s);
        let mut t = TlsSession::new(Dir::ToServer, keylog(&s), TlsLimits::default());
        let mut out = Out::default();
        for (d, b) in &p.wire {
            for byte in b.chunks(1) {
                t.handle_data(*d, Nanos(1), byte, &mut out);
            }
        }
        assert_eq!(out.plain, p.got, "{suite:#x}");
    }
}

#[test]
fn key_updates_both_ways_are_followed() {
    let s = tls13(provider::cipher_suite::TLS13_AES_256_GCM_SHA384);
    let mut p = talk(&s);
    for round in 0..3u8 {
        p.client.refresh_traffic_keys().expect("update");
        p.send(Dir::ToServer, &[b'k' + round; 3000]);
        p.server.refresh_traffic_keys().expect("update");
        p.send(Dir::ToClient, &[b'K' + round; 5000]);
    }
    let (t, out) = replay(&p, keylog(&s));
    assert_eq!(out.plain, p.got);
    assert_eq!(t.info().bad_records, 0);
}

#[test]
fn a_hello_retry_request_is_followed() {
    let s = stacks(
        &[&rustls::version::TLS13],
        provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
        vec![provider::kx_group::X25519, provider::kx_group::SECP256R1],
        vec![provider::kx_group::SECP256R1],
    );
    let p = talk(&s);
    let (t, out) = replay(&p, keylog(&s));
    assert!(t.info().hello_retry);
    assert_eq!(out.plain, p.got);
}

#[test]
fn resumption_and_early_data_are_followed_and_counted() {
    let s = tls13(provider::cipher_suite::TLS13_AES_128_GCM_SHA256);
    let first = talk(&s);
    assert!(!first.got[0].is_empty());
    // The second connection resumes and sends early data before the handshake ends.
    let mut p = Pair::new(&s);
    let early = b"PRI * HTTP/2.0 early";
    let sent = p
        .client
        .early_data()
        .map(|mut ed| ed.write(early).expect("early"));
    assert_eq!(sent, Some(early.len()), "rustls offered no early data");
    p.pump();
    p.send(Dir::ToServer, b"after the handshake");
    p.send(Dir::ToClient, b"reply");
    assert!(
        p.got[0].starts_with(early),
        "the server took the early data"
    );
    let (t, out) = replay(&p, keylog(&s));
    assert!(t.info().resumed);
    // The early data and rustls's EndOfEarlyData: two records under the early secret.
    assert_eq!(t.info().early_data_records, 2);
    assert_eq!(out.plain, p.got);
    // Without the early secret the early data is lost (and said to be), the rest is read.
    let text = s.keys.0.lock().expect("lock").clone();
    let log = Arc::new(KeyLog::new());
    log.add_text(
        &text
            .lines()
            .filter(|l| !l.starts_with("CLIENT_EARLY"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        1,
    );
    let (t, out) = replay(&p, log);
    assert_eq!(t.info().early_data_records, 2);
    assert_eq!(out.plain[0], b"after the handshake");
    assert_eq!(out.plain[1], b"reply");
    assert_eq!(out.lost, vec![(Dir::ToServer, None); 2]);
}

#[test]
fn keys_that_come_late_decrypt_from_the_buffered_start() {
    let s = tls13(provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256);
    let p = talk(&s);
    let log = Arc::new(KeyLog::new());
    let mut t = TlsSession::new(Dir::ToServer, log.clone(), TlsLimits::default());
    let mut out = Out::default();
    let half = p.wire.len() / 2;
    for (d, b) in &p.wire[..half] {
        t.handle_data(*d, Nanos(1), b, &mut out);
    }
    assert!(out.plain.iter().all(Vec::is_empty));
    log.add_text(&s.keys.0.lock().expect("lock"), 1);
    for (d, b) in &p.wire[half..] {
        t.handle_data(*d, Nanos(2), b, &mut out);
    }
    assert_eq!(out.plain, p.got);
}

#[test]
fn without_keys_the_connection_is_reported_and_counted() {
    for (s, version, suite) in all_suites() {
        let p = talk(&s);
        let (t, out) = replay(&p, Arc::new(KeyLog::new()));
        assert_eq!(t.state(), TlsState::NoKey, "{suite:#x}");
        assert!(out.plain.iter().all(Vec::is_empty));
        let info = t.info();
        assert_eq!((info.version, info.suite), (Some(version), Some(suite)));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        assert!(info.encrypted_bytes[0] > 40_000 && info.encrypted_bytes[1] > 40_000);
    }
}

/// The index in `p.wire` of the `n`th chunk of `d` that carries application data of at
/// least 4 KiB (one or more records).
fn big_chunk(p: &Pair, d: Dir, n: usize) -> usize {
    p.wire
        .iter()
        .enumerate()
        .filter(|(_, (dd, b))| *dd == d && b.len() > 4096)
        .nth(n)
        .map(|(i, _)| i)
        .expect("chunk")
}

#[test]
fn a_flipped_bit_costs_one_record() {
    for (s, _, suite) in all_suites() {
        let mut p = talk(&s);
        let i = big_chunk(&p, Dir::ToClient, 2);
        let b = &mut p.wire[i].1;
        b[100] ^= 0x10; // inside the first record's ciphertext
        let (t, out) = replay(&p, keylog(&s));
        assert_eq!(t.info().bad_records, 1, "{suite:#x}");
        assert_eq!(out.anomalies, vec![AnomalyKind::TlsBadRecord], "{suite:#x}");
        assert_eq!(out.lost.len(), 1);
        // Everything but that record's plaintext came out, in order.
        let got = &out.plain[1];
        let want = &p.got[1];
        assert!(want.len() - got.len() <= 16384, "{suite:#x}");
        assert!(want.ends_with(&got[got.len() - 20000..]), "{suite:#x}");
        assert_eq!(out.plain[0], p.got[0]);
    }
}

#[test]
fn after_a_gap_decryption_resumes_at_a_later_record() {
    for (s, _, suite) in all_suites() {
        let p = talk(&s);
        let skip = big_chunk(&p, Dir::ToServer, 3);
        let mut t = TlsSession::new(Dir::ToServer, keylog(&s), TlsLimits::default());
        let mut out = Out::default();
        for (i, (d, b)) in p.wire.iter().enumerate() {
            if i == skip {
                // The segment's first 30 bytes arrive; the rest is lost, and the records
                // after it arrive whole.
                t.handle_data(*d, Nanos(1), &b[..30], &mut out);
                t.handle_gap(*d, (b.len() - 30) as u64, &mut out);
            } else {
                t.handle_data(*d, Nanos(1), b, &mut out);
            }
        }
        assert!(out.anomalies.is_empty() || out.anomalies == vec![AnomalyKind::TlsResync]);
        assert_eq!(out.lost, vec![(Dir::ToServer, None)], "{suite:#x}");
        assert_eq!(out.plain[1], p.got[1], "{suite:#x}");
        // The client's later messages all came out.
        let tail = &p.got[0][p.got[0].len() - 20_000..];
        assert!(out.plain[0].ends_with(tail), "{suite:#x}");
        // A gap that swallows whole records and the next header: found by hunting.
        let mut t = TlsSession::new(Dir::ToServer, keylog(&s), TlsLimits::default());
        let mut out = Out::default();
        let cut = big_chunk(&p, Dir::ToClient, 3);
        for (i, (d, b)) in p.wire.iter().enumerate() {
            if i == cut {
                t.handle_gap(*d, b.len() as u64, &mut out);
            } else {
                t.handle_data(*d, Nanos(1), b, &mut out);
            }
        }
        assert_eq!(out.anomalies, vec![AnomalyKind::TlsResync], "{suite:#x}");
        let tail = &p.got[1][p.got[1].len() - 20_000..];
        assert!(out.plain[1].ends_with(tail), "{suite:#x}");
        assert_eq!(out.plain[0], p.got[0]);
    }
}

#[test]
fn hostile_records_lose_the_direction_not_the_process() {
    let s = tls13(provider::cipher_suite::TLS13_AES_128_GCM_SHA256);
    let p = talk(&s);
    let log = keylog(&s);
    // Garbage after the handshake, a record header announcing too much, truncated records.
    for junk in [
        &[0xffu8; 64][..],
        &[23, 3, 3, 0xff, 0xff, 0, 0][..],
        &[23, 3, 3, 0, 5, 1, 2, 3, 4, 5][..],
        &[22, 3, 1, 0, 4, 2, 0, 0, 0][..],
    ] {
        let mut t = TlsSession::new(Dir::ToServer, log.clone(), TlsLimits::default());
        let mut out = Out::default();
        for (d, b) in &p.wire[..4] {
            t.handle_data(*d, Nanos(1), b, &mut out);
        }
        t.handle_data(Dir::ToClient, Nanos(1), junk, &mut out);
        for (d, b) in &p.wire[4..] {
            t.handle_data(*d, Nanos(1), b, &mut out);
        }
        t.finish(&mut out);
        assert!(t.info().records > 0);
    }
}

//! The Echo test service on tonic, for making captures (see testdata/README.md).
//!
//! server: `tonic-echo server --addr 127.0.0.1:50091 [--tls-cert F --tls-key F]`
//! certificates: `tonic-echo certs --dir D` (D/cert.pem, D/key.pem for localhost)
//! client: `tonic-echo client --target http://127.0.0.1:50091 [--target ...] --scenario basic|edge|midstream|bodies|midjoin|deadlines --log calls.jsonl [--marker F] [--tls-ca F]`
//!   (with `--tls-ca`, `https://` targets are TLS; `SSLKEYLOGFILE` names the key log)
//!
//! Behaves exactly like testdata/gen/py_echo.py, and the client writes the same log: one JSON
//! line per call with what the client saw, the ground truth of a capture.

// A test tool: failing loudly on a broken setup is what it should do.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_stream::{Stream, StreamExt};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status, Streaming};

// Generated code follows its generator's conventions.
#[allow(
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
mod pb {
    tonic::include_proto!("grpctap.test");
}

mod midjoin;
mod tls;

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn peer<T>(r: &Request<T>) -> String {
    match r.remote_addr() {
        Some(std::net::SocketAddr::V4(a)) => format!("ipv4:{a}"),
        Some(std::net::SocketAddr::V6(a)) => format!("ipv6:{a}"),
        None => String::new(),
    }
}

fn reply(req: &EchoRequest, index: i32, peer: &str) -> EchoReply {
    EchoReply {
        message: req.message.clone(),
        index,
        payload: vec![b'r'; req.reply_size.max(0) as usize],
        peer: peer.to_owned(),
    }
}

async fn finish(req: &EchoRequest) -> Result<(), Status> {
    if req.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(req.sleep_ms as u64)).await;
    }
    if req.status_code != 0 {
        return Err(Status::new(
            Code::from_i32(req.status_code),
            req.status_message.clone(),
        ));
    }
    Ok(())
}

struct Service {
    shutdown: Arc<tokio::sync::Notify>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Service {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let p = peer(&request);
        let tag = request.metadata().get("x-request-tag").cloned();
        let req = request.into_inner();
        if req.message == "__shutdown__" {
            // Graceful shutdown with calls in flight: GOAWAY now, in-flight calls may finish.
            self.shutdown.notify_one();
            return Ok(Response::new(reply(&req, 0, &p)));
        }
        finish(&req).await?;
        let mut resp = Response::new(reply(&req, 0, &p));
        if let Some(tag) = tag {
            // Echoed in the response headers: the server's HPACK table churns too.
            resp.metadata_mut().insert("x-echo-tag", tag);
        }
        Ok(resp)
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let p = peer(&request);
        let req = request.into_inner();
        let s = async_stream(req, p);
        Ok(Response::new(Box::pin(s)))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let p = peer(&request);
        let mut stream = request.into_inner();
        let (mut n, mut last) = (0, EchoRequest::default());
        while let Some(r) = stream.next().await {
            last = r?;
            n += 1;
        }
        finish(&last).await?;
        Ok(Response::new(EchoReply {
            message: n.to_string(),
            index: n,
            payload: Vec::new(),
            peer: p,
        }))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let p = peer(&request);
        let mut input = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut i = 0;
            while let Some(r) = input.next().await {
                let Ok(r) = r else { break };
                for _ in 0..r.reply_count.max(1) {
                    if tx.send(Ok(reply(&r, i, &p))).await.is_err() {
                        return;
                    }
                }
                if r.status_code != 0 {
                    let _ = tx
                        .send(Err(Status::new(
                            Code::from_i32(r.status_code),
                            r.status_message.clone(),
                        )))
                        .await;
                    return;
                }
                i += 1;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Replies of ServerStream: `reply_count` of them, `sleep_ms` apart, then the status.
fn async_stream(
    req: EchoRequest,
    p: String,
) -> impl Stream<Item = Result<EchoReply, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for i in 0..req.reply_count {
            if i > 0 && req.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(req.sleep_ms as u64)).await;
            }
            if tx.send(Ok(reply(&req, i, &p))).await.is_err() {
                return;
            }
        }
        if req.status_code != 0 {
            let _ = tx
                .send(Err(Status::new(
                    Code::from_i32(req.status_code),
                    req.status_message.clone(),
                )))
                .await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn serve(addr: &str, tls: Option<tonic::transport::ServerTlsConfig>) {
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let svc = EchoServer::new(Service {
        shutdown: shutdown.clone(),
    })
    .max_decoding_message_size(64 << 20)
    .max_encoding_message_size(64 << 20)
    .accept_compressed(CompressionEncoding::Zstd)
    .accept_compressed(CompressionEncoding::Gzip)
    .accept_compressed(CompressionEncoding::Deflate)
    .send_compressed(CompressionEncoding::Zstd)
    .send_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Deflate);
    let store = pb::store_server::StoreServer::new(midjoin::StoreSvc::default());
    let addr = addr.parse().unwrap();
    println!("ready");
    let signal = async move {
        tokio::select! {
            () = shutdown.notified() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let mut builder = Server::builder();
    if let Some(t) = tls {
        builder = builder.tls_config(t).unwrap();
    }
    builder
        .add_service(svc)
        .add_service(store)
        .serve_with_shutdown(addr, signal)
        .await
        .unwrap();
}

/// The canonical name of a status code, as the python client logs it.
fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[derive(Clone)]
struct Log(Arc<Mutex<std::fs::File>>);

/// How one call is made.
#[derive(Clone, Default)]
struct CallOpts {
    timeout: Option<Duration>,
    cancel_after: Option<Duration>,
    metadata: Vec<(&'static str, Vec<u8>)>,
    call_id: Option<u64>,
    /// midjoin: "before" or "during" the capture, logged as `phase`.
    phase: Option<&'static str>,
}

fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        ..EchoRequest::default()
    }
}

impl Log {
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        conn: usize,
        o: &CallOpts,
        method: &str,
        req_msgs: usize,
        resp_msgs: usize,
        status: &str,
        message: &str,
        peer: Option<String>,
        start: f64,
    ) {
        // A bare method name is one of Echo's; Store calls pass the whole path.
        let method = if method.starts_with('/') {
            method.to_owned()
        } else {
            format!("/grpctap.test.Echo/{method}")
        };
        let mut line = serde_json::json!({
            "conn": conn, "call_id": o.call_id, "method": method,
            "req_msgs": req_msgs, "resp_msgs": resp_msgs, "status": status, "message": message,
            "timeout_s": o.timeout.map(|t| t.as_secs_f64()), "cancelled": o.cancel_after.is_some(),
            "client_peer": peer, "start": start, "end": now(),
        });
        if let Some(phase) = o.phase {
            line["phase"] = phase.into();
        }
        use std::io::Write;
        let mut f = self.0.lock().unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

fn prepare<T>(msg: T, o: &CallOpts) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = o.timeout {
        r.set_timeout(t);
    }
    for (k, v) in &o.metadata {
        if k.ends_with("-bin") {
            r.metadata_mut()
                .insert_bin(*k, BinaryMetadataValue::from_bytes(v));
        } else {
            r.metadata_mut().insert(
                *k,
                MetadataValue::try_from(std::str::from_utf8(v).unwrap()).unwrap(),
            );
        }
    }
    if let Some(id) = o.call_id {
        r.metadata_mut().insert(
            "x-call-id",
            MetadataValue::try_from(id.to_string()).unwrap(),
        );
    }
    r
}

/// Makes one call and logs what the client saw.
async fn call(
    client: &mut EchoClient<Channel>,
    log: &Log,
    conn: usize,
    method: &str,
    reqs: Vec<EchoRequest>,
    o: CallOpts,
) {
    let start = now();
    let n_req = reqs.len();
    let deadline = o.timeout.map(|t| tokio::time::Instant::now() + t);
    // Messages received count even when the call fails later, as the python client logs them.
    let received = std::sync::atomic::AtomicUsize::new(0);
    let last_peer = std::sync::Mutex::new(None::<String>);
    let got = |m: EchoReply| {
        received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *last_peer.lock().unwrap() = Some(m.peer);
    };
    let work = async {
        match method {
            "Unary" => client
                .unary(prepare(reqs[0].clone(), &o))
                .await
                .map(|r| got(r.into_inner())),
            "ClientStream" => client
                .client_stream(prepare(tokio_stream::iter(reqs.clone()), &o))
                .await
                .map(|r| got(r.into_inner())),
            _ => {
                let mut stream = if method == "ServerStream" {
                    client
                        .server_stream(prepare(reqs[0].clone(), &o))
                        .await?
                        .into_inner()
                } else {
                    client
                        .bidi(prepare(tokio_stream::iter(reqs.clone()), &o))
                        .await?
                        .into_inner()
                };
                while let Some(m) = stream.message().await? {
                    got(m);
                }
                Ok::<(), Status>(())
            }
        }
    };
    // Dropping the call resets its stream (RST_STREAM CANCEL): a client cancellation, timed
    // from the start of the call.
    let work = async {
        match o.cancel_after {
            Some(after) => tokio::time::timeout(after, work)
                .await
                .unwrap_or_else(|_| Err(Status::cancelled("cancelled by the client"))),
            None => work.await,
        }
    };
    let result = match deadline {
        Some(d) => tokio::time::timeout_at(d, work)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("deadline exceeded"))),
        None => work.await,
    };
    let n_resp = received.load(std::sync::atomic::Ordering::Relaxed);
    let peer = last_peer.lock().unwrap().clone();
    let (status, message) = match result {
        Ok(()) => ("OK", String::new()),
        Err(s) => (code_name(s.code()), s.message().to_owned()),
    };
    log.call(
        conn, &o, method, n_req, n_resp, status, &message, peer, start,
    );
}

async fn connect(target: &str) -> EchoClient<Channel> {
    let ch = tls::endpoint(target)
        .http2_keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .unwrap();
    EchoClient::new(ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

async fn basic(targets: &[String], log: &Log) {
    for (conn, target) in targets.iter().enumerate() {
        let mut c = connect(target).await;
        let o = CallOpts::default();
        call(&mut c, log, conn, "Unary", vec![req("hello")], o.clone()).await;
        let bad = EchoRequest {
            status_code: 3,
            status_message: "bad argument".into(),
            ..req("bad")
        };
        call(&mut c, log, conn, "Unary", vec![bad], o.clone()).await;
        let missing = EchoRequest {
            status_code: 5,
            status_message: "no such thing".into(),
            ..req("missing")
        };
        call(&mut c, log, conn, "Unary", vec![missing], o.clone()).await;
        let ss = EchoRequest {
            reply_count: 20,
            reply_size: 100,
            ..req("s")
        };
        call(&mut c, log, conn, "ServerStream", vec![ss], o.clone()).await;
        call(
            &mut c,
            log,
            conn,
            "ClientStream",
            (0..15).map(|i| req(&format!("c{i}"))).collect(),
            o.clone(),
        )
        .await;
        let bidi = (0..10)
            .map(|i| EchoRequest {
                reply_count: 2,
                ..req(&format!("b{i}"))
            })
            .collect();
        call(&mut c, log, conn, "Bidi", bidi, o.clone()).await;
        let big = EchoRequest {
            payload: vec![b'x'; 1 << 20],
            reply_size: 1 << 20,
            ..req("big")
        };
        call(&mut c, log, conn, "Unary", vec![big], o.clone()).await;
        let slow = EchoRequest {
            sleep_ms: 300,
            ..req("slow")
        };
        call(
            &mut c,
            log,
            conn,
            "Unary",
            vec![slow],
            CallOpts {
                timeout: Some(Duration::from_millis(100)),
                ..o
            },
        )
        .await;
    }
}

/// One long connection where every call carries a new x-request-tag (h2 indexes each one), so
/// the 4 KiB HPACK tables fill and evict. 300 calls before the file `marker` appears (the
/// capture starts in between), then 240 more.
async fn midstream(targets: &[String], log: &Log, marker: &str) {
    let mut c = connect(&targets[0]).await;
    let mut ids = 1u64..;
    for i in 0..540u32 {
        if i == 300 {
            std::fs::write(format!("{marker}.ready"), b"").unwrap();
            while !std::path::Path::new(marker).exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let tag = format!("tag-{i:06}").into_bytes();
        let o = CallOpts {
            metadata: vec![("x-request-tag", tag)],
            call_id: ids.next(),
            ..CallOpts::default()
        };
        if i % 3 == 0 {
            let r = EchoRequest {
                reply_count: 3,
                ..req("s")
            };
            call(&mut c, log, 0, "ServerStream", vec![r], o).await;
        } else if i % 20 == 1 {
            let r = EchoRequest {
                status_code: 9,
                status_message: "not now".into(),
                ..req("e")
            };
            call(&mut c, log, 0, "Unary", vec![r], o).await;
        } else {
            let r = EchoRequest {
                reply_size: 50,
                ..req(&format!("m{i}"))
            };
            call(&mut c, log, 0, "Unary", vec![r], o).await;
        }
    }
}

/// Every status code, metadata too big for one HEADERS frame (CONTINUATION against a peer
/// announcing 16 KiB frames), a cancelled stream, 150 concurrent calls on one connection, idle
/// keepalive, and a graceful shutdown with a call in flight (second target).
async fn edge(targets: &[String], log: &Log) {
    let mut ids = 1u64..;
    let mut c = connect(&targets[0]).await;
    for code in 0..17 {
        let r = EchoRequest {
            status_code: code,
            status_message: format!("status {code} 100% \u{2713}"),
            ..req("code")
        };
        let o = CallOpts {
            call_id: ids.next(),
            ..CallOpts::default()
        };
        call(&mut c, log, 0, "Unary", vec![r], o).await;
    }
    let md = vec![
        ("x-tenant", b"acme".to_vec()),
        ("authorization", b"Bearer secret-token-123".to_vec()),
        ("trace-bin", (0..=255u8).cycle().take(1024).collect()),
        ("x-big", vec![b'v'; 20_000]),
    ];
    let o = CallOpts {
        metadata: md,
        call_id: ids.next(),
        ..CallOpts::default()
    };
    call(&mut c, log, 0, "Unary", vec![req("metadata")], o).await;
    let cancel = EchoRequest {
        reply_count: 5,
        sleep_ms: 1000,
        ..req("cancel me")
    };
    let o = CallOpts {
        cancel_after: Some(Duration::from_millis(300)),
        call_id: ids.next(),
        ..CallOpts::default()
    };
    call(&mut c, log, 0, "ServerStream", vec![cancel], o).await;
    let mut jobs = Vec::new();
    for i in 0..150 {
        let (mut c, log) = (c.clone(), log.clone());
        let o = CallOpts {
            call_id: ids.next(),
            ..CallOpts::default()
        };
        jobs.push(tokio::spawn(async move {
            let r = EchoRequest {
                sleep_ms: 400,
                ..req(&format!("c{i}"))
            };
            call(&mut c, &log, 0, "Unary", vec![r], o).await;
        }));
    }
    for j in jobs {
        j.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // idle: keepalive PINGs
    drop(c);
    let mut c2 = connect(&targets[1]).await;
    let slow = {
        let (mut c, log) = (c2.clone(), log.clone());
        let o = CallOpts {
            call_id: ids.next(),
            ..CallOpts::default()
        };
        tokio::spawn(async move {
            let r = EchoRequest {
                sleep_ms: 800,
                ..req("in flight")
            };
            call(&mut c, &log, 2, "Unary", vec![r], o).await;
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = CallOpts {
        call_id: ids.next(),
        ..CallOpts::default()
    };
    call(&mut c2, log, 2, "Unary", vec![req("__shutdown__")], o).await;
    slow.await.unwrap();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| w[1].clone())
            .collect()
    };
    match args.get(1).map(String::as_str) {
        Some("server") => {
            let tls = match (arg("--tls-cert").first(), arg("--tls-key").first()) {
                (Some(c), Some(k)) => Some(tls::server(c, k)),
                _ => None,
            };
            serve(&arg("--addr")[0], tls).await
        }
        Some("certs") => tls::certs(&arg("--dir")[0]),
        Some("client") => {
            if let Some(ca) = arg("--tls-ca").first() {
                tls::set_ca(ca);
            }
            let file = std::fs::File::create(&arg("--log")[0]).unwrap();
            let log = Log(Arc::new(Mutex::new(file)));
            let targets = arg("--target");
            match arg("--scenario")[0].as_str() {
                "basic" => basic(&targets, &log).await,
                "edge" => edge(&targets, &log).await,
                "midstream" => midstream(&targets, &log, &arg("--marker")[0]).await,
                "bodies" => bodies(&targets, &log).await,
                "midjoin" => midjoin::midjoin(&targets, &log, &arg("--marker")[0]).await,
                "deadlines" => midjoin::deadlines(&targets, &log).await,
                other => panic!("unknown scenario {other}"),
            }
        }
        _ => {
            eprintln!(
                "usage: tonic-echo server --addr A | client --target URL... --scenario basic|edge --log FILE"
            );
            std::process::exit(2);
        }
    }
}

/// proto3 JSON of an EchoRequest as the client knows it: camelCase names, default values left
/// out, bytes in base64 (the protobuf JSON mapping).
fn request_json(r: &EchoRequest) -> serde_json::Value {
    use base64::Engine;
    let mut m = serde_json::Map::new();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if !r.message.is_empty() {
        m.insert("message".into(), r.message.clone().into());
    }
    if r.reply_count != 0 {
        m.insert("replyCount".into(), r.reply_count.into());
    }
    if r.reply_size != 0 {
        m.insert("replySize".into(), r.reply_size.into());
    }
    if r.status_code != 0 {
        m.insert("statusCode".into(), r.status_code.into());
    }
    if !r.status_message.is_empty() {
        m.insert("statusMessage".into(), r.status_message.clone().into());
    }
    if r.sleep_ms != 0 {
        m.insert("sleepMs".into(), r.sleep_ms.into());
    }
    if !r.payload.is_empty() {
        m.insert("payload".into(), b64(&r.payload).into());
    }
    m.into()
}

/// The same for an EchoReply.
fn reply_json(r: &EchoReply) -> serde_json::Value {
    use base64::Engine;
    let mut m = serde_json::Map::new();
    if !r.message.is_empty() {
        m.insert("message".into(), r.message.clone().into());
    }
    if r.index != 0 {
        m.insert("index".into(), r.index.into());
    }
    if !r.payload.is_empty() {
        m.insert(
            "payload".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&r.payload)
                .into(),
        );
    }
    if !r.peer.is_empty() {
        m.insert("peer".into(), r.peer.clone().into());
    }
    m.into()
}

/// Calls whose payloads the client logs as proto3 JSON, one connection per compression: zstd,
/// gzip, deflate (tonic compresses every message it sends with it).
async fn bodies(targets: &[String], log: &Log) {
    use std::io::Write;
    let mut n = 0u64;
    let encodings = [
        (CompressionEncoding::Zstd, "zstd"),
        (CompressionEncoding::Gzip, "gzip"),
        (CompressionEncoding::Deflate, "deflate"),
    ];
    for (enc, name) in encodings {
        let mut c = connect(&targets[0])
            .await
            .send_compressed(enc)
            .accept_compressed(enc);
        let reqs = [
            EchoRequest {
                reply_size: 10,
                ..req("hello \u{e9}\u{e8} \u{2713}")
            },
            EchoRequest {
                payload: (0..=255u8).cycle().take(1024).collect(),
                reply_size: 2000,
                ..req(&"x".repeat(3000))
            },
            EchoRequest {
                reply_size: 1,
                sleep_ms: 1,
                payload: vec![0, 0xff],
                ..req("numbers")
            },
        ];
        for r in reqs {
            n += 1;
            let mut request = Request::new(r.clone());
            request
                .metadata_mut()
                .insert("x-call-id", MetadataValue::try_from(n.to_string()).unwrap());
            let resp = c.unary(request).await.unwrap().into_inner();
            let line = serde_json::json!({"kind": "bodies", "call_id": n, "compression": name,
                "method": "/grpctap.test.Echo/Unary", "requests": [request_json(&r)], "responses": [reply_json(&resp)]});
            writeln!(log.0.lock().unwrap(), "{line}").unwrap();
        }
        n += 1;
        let stream: Vec<EchoRequest> = (0..5u8)
            .map(|i| EchoRequest {
                payload: vec![i; usize::from(i)],
                ..req(&format!("part {i}"))
            })
            .collect();
        let mut request = Request::new(tokio_stream::iter(stream.clone()));
        request
            .metadata_mut()
            .insert("x-call-id", MetadataValue::try_from(n.to_string()).unwrap());
        let resp = c.client_stream(request).await.unwrap().into_inner();
        let line = serde_json::json!({"kind": "bodies", "call_id": n, "compression": name,
            "method": "/grpctap.test.Echo/ClientStream", "requests": stream.iter().map(request_json).collect::<Vec<_>>(),
            "responses": [reply_json(&resp)]});
        writeln!(log.0.lock().unwrap(), "{line}").unwrap();
    }
}

//! The Store service of testdata/proto/shared.proto, and the midjoin and deadlines scenarios:
//! the same calls as go-echo, node-echo and py_echo.py make (see `plan`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::pb::echo_client::EchoClient;
use crate::pb::store_client::StoreClient;
use crate::pb::store_server::Store;
use crate::pb::{EchoRequest, Item, Key};
use crate::{CallOpts, Log, call, code_name, now, peer, prepare};

// ---------------------------------------------------------------- server

/// An in-memory map id -> Item, shared by every connection of the server.
#[derive(Default, Debug)]
pub(crate) struct StoreSvc {
    items: Arc<Mutex<BTreeMap<String, Item>>>,
}

/// x-peer (the caller's address) and x-echo-tag (an x-request-tag echoed). tonic sends them in
/// the response headers, or with an error status in its trailers-only response.
fn response_md<T>(r: &Request<T>) -> MetadataMap {
    let mut md = MetadataMap::new();
    md.insert("x-peer", MetadataValue::try_from(peer(r)).unwrap());
    if let Some(tag) = r.metadata().get("x-request-tag") {
        md.insert("x-echo-tag", tag.clone());
    }
    md
}

fn check(id: &str, md: &MetadataMap) -> Result<(), Status> {
    let (code, msg) = if id.is_empty() {
        (Code::InvalidArgument, "id required")
    } else if id.starts_with("denied") {
        (Code::PermissionDenied, "read-only")
    } else if id.starts_with("unavailable") {
        (Code::Unavailable, "try later")
    } else {
        return Ok(());
    };
    Err(Status::with_metadata(code, msg, md.clone()))
}

fn not_found(id: &str, md: &MetadataMap) -> Status {
    Status::with_metadata(Code::NotFound, format!("no item {id}"), md.clone())
}

fn with_md<T>(msg: T, md: MetadataMap) -> Response<T> {
    let mut r = Response::new(msg);
    *r.metadata_mut() = md;
    r
}

type ItemStream = Pin<Box<dyn Stream<Item = Result<Item, Status>> + Send>>;

#[tonic::async_trait]
impl Store for StoreSvc {
    async fn get(&self, request: Request<Key>) -> Result<Response<Item>, Status> {
        let md = response_md(&request);
        let id = request.into_inner().id;
        check(&id, &md)?;
        let found = self.items.lock().unwrap().get(&id).cloned();
        found
            .map(|i| with_md(i, md.clone()))
            .ok_or_else(|| not_found(&id, &md))
    }

    async fn delete(&self, request: Request<Key>) -> Result<Response<Item>, Status> {
        let md = response_md(&request);
        let id = request.into_inner().id;
        check(&id, &md)?;
        let found = self.items.lock().unwrap().remove(&id);
        found
            .map(|i| with_md(i, md.clone()))
            .ok_or_else(|| not_found(&id, &md))
    }

    async fn put(&self, request: Request<Item>) -> Result<Response<Key>, Status> {
        let md = response_md(&request);
        let it = request.into_inner();
        check(&it.id, &md)?;
        let mut items = self.items.lock().unwrap();
        let version = items.get(&it.id).map_or(0, |o| o.version) + 1;
        let id = it.id.clone();
        items.insert(id.clone(), Item { version, ..it });
        Ok(with_md(Key { id }, md))
    }

    type ListStream = ItemStream;

    async fn list(&self, request: Request<Key>) -> Result<Response<ItemStream>, Status> {
        let md = response_md(&request);
        let prefix = request.into_inner().id;
        check(&prefix, &md)?;
        // A BTreeMap: sorted by id.
        let found: Vec<Result<Item, Status>> = self
            .items
            .lock()
            .unwrap()
            .values()
            .filter(|i| i.id.starts_with(&prefix))
            .cloned()
            .map(Ok)
            .collect();
        Ok(with_md(
            Box::pin(tokio_stream::iter(found)) as ItemStream,
            md,
        ))
    }

    type WatchStream = ItemStream;

    async fn watch(
        &self,
        request: Request<Streaming<Key>>,
    ) -> Result<Response<ItemStream>, Status> {
        let md = response_md(&request);
        let mut input = request.into_inner();
        let items = self.items.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let md2 = md.clone();
        tokio::spawn(async move {
            while let Some(k) = input.next().await {
                let Ok(k) = k else { break };
                let res = check(&k.id, &md2).and_then(|()| {
                    let found = items.lock().unwrap().get(&k.id).cloned();
                    found.ok_or_else(|| not_found(&k.id, &md2))
                });
                let failed = res.is_err();
                if tx.send(res).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(with_md(Box::pin(ReceiverStream::new(rx)) as ItemStream, md))
    }
}

// ---------------------------------------------------------------- client

#[derive(Clone, Debug)]
enum Msgs {
    Echo(Vec<EchoRequest>),
    Keys(Vec<Key>),
    Item(Item),
}

/// One call of a scenario.
#[derive(Clone, Debug)]
struct Spec {
    method: &'static str,
    msgs: Msgs,
    timeout: Option<f64>,
    cancel_after: Option<f64>,
    tag: Option<String>,
}

/// A connection of its own (every `connect` opens one), without keepalive.
async fn channel(target: &str) -> Channel {
    crate::tls::endpoint(target).connect().await.unwrap()
}

fn echo_client(ch: &Channel) -> EchoClient<Channel> {
    EchoClient::new(ch.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn md_peer(md: &MetadataMap) -> Option<String> {
    md.get("x-peer")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[allow(clippy::too_many_arguments)]
fn log_result(
    log: &Log,
    conn: usize,
    o: &CallOpts,
    method: &str,
    req_msgs: usize,
    resp_msgs: usize,
    result: Result<(), Status>,
    peer: Option<String>,
    start: f64,
) {
    let (status, message) = match result {
        Ok(()) => ("OK", String::new()),
        Err(s) => (code_name(s.code()), s.message().to_owned()),
    };
    log.call(
        conn, o, method, req_msgs, resp_msgs, status, &message, peer, start,
    );
}

async fn run_spec(
    ch: &Channel,
    log: &Log,
    conn: usize,
    s: Spec,
    call_id: u64,
    phase: Option<&'static str>,
) {
    let o = CallOpts {
        timeout: s.timeout.map(Duration::from_secs_f64),
        cancel_after: s.cancel_after.map(Duration::from_secs_f64),
        metadata: s
            .tag
            .map(|t| vec![("x-request-tag", t.into_bytes())])
            .unwrap_or_default(),
        call_id: Some(call_id),
        phase,
    };
    match s.msgs {
        Msgs::Echo(reqs) => call(&mut echo_client(ch), log, conn, s.method, reqs, o).await,
        other => {
            store_call(
                &mut StoreClient::new(ch.clone()),
                log,
                conn,
                s.method,
                other,
                o,
            )
            .await
        }
    }
}

/// Makes one Store call and logs what the client saw (the peer from the x-peer metadata).
async fn store_call(
    c: &mut StoreClient<Channel>,
    log: &Log,
    conn: usize,
    method: &str,
    msgs: Msgs,
    o: CallOpts,
) {
    let start = now();
    let n_req = match &msgs {
        Msgs::Keys(k) => k.len(),
        _ => 1,
    };
    let received = AtomicUsize::new(0);
    let peer = Mutex::new(None::<String>);
    let set_peer = |md: &MetadataMap| {
        if let Some(p) = md_peer(md) {
            *peer.lock().unwrap() = Some(p);
        }
    };
    let one = || {
        received.fetch_add(1, Ordering::Relaxed);
    };
    let work = async {
        let r: Result<(), Status> = async {
            match (method, msgs) {
                ("Get", Msgs::Keys(k)) => {
                    let r = c.get(prepare(k[0].clone(), &o)).await?;
                    set_peer(r.metadata());
                    one();
                }
                ("Delete", Msgs::Keys(k)) => {
                    let r = c.delete(prepare(k[0].clone(), &o)).await?;
                    set_peer(r.metadata());
                    one();
                }
                ("Put", Msgs::Item(it)) => {
                    let r = c.put(prepare(it, &o)).await?;
                    set_peer(r.metadata());
                    one();
                }
                ("List", Msgs::Keys(k)) => {
                    let r = c.list(prepare(k[0].clone(), &o)).await?;
                    set_peer(r.metadata());
                    let mut s = r.into_inner();
                    while s.message().await?.is_some() {
                        one();
                    }
                }
                ("Watch", Msgs::Keys(k)) => {
                    let r = c.watch(prepare(tokio_stream::iter(k), &o)).await?;
                    set_peer(r.metadata());
                    let mut s = r.into_inner();
                    while s.message().await?.is_some() {
                        one();
                    }
                }
                (m, _) => panic!("no Store call {m}"),
            }
            Ok(())
        }
        .await;
        if let Err(s) = &r {
            set_peer(s.metadata());
        }
        r
    };
    let work = async {
        match o.cancel_after {
            Some(after) => tokio::time::timeout(after, work)
                .await
                .unwrap_or_else(|_| Err(Status::cancelled("cancelled by the client"))),
            None => work.await,
        }
    };
    let result = match o.timeout {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("deadline exceeded"))),
        None => work.await,
    };
    let p = peer.lock().unwrap().clone();
    log_result(
        log,
        conn,
        &o,
        &format!("/grpctap.test.Store/{method}"),
        n_req,
        received.load(Ordering::Relaxed),
        result,
        p,
        start,
    );
}

/// The error statuses the midjoin Unary calls cycle through.
const CODES: [i32; 12] = [5, 3, 7, 14, 9, 8, 6, 16, 13, 10, 11, 2];

fn e(message: String) -> EchoRequest {
    EchoRequest {
        message,
        ..EchoRequest::default()
    }
}

fn key(id: String) -> Key {
    Key { id }
}

/// Call `i` of connection `conn` in the midjoin scenario: the same function as in go-echo,
/// node-echo and py_echo.py.
#[allow(clippy::too_many_lines)]
fn plan(conn: usize, i: usize) -> Spec {
    let (k, r) = (i % 16, i / 16);
    let tag = (i % 3 != 2).then(|| format!("tag-{:02}", (i / 2) % 40));
    let cid = |n: usize| format!("c{conn}-k{n}");
    let echo = |method: &'static str, reqs: Vec<EchoRequest>| Spec {
        method,
        msgs: Msgs::Echo(reqs),
        timeout: None,
        cancel_after: None,
        tag: tag.clone(),
    };
    let store = |method: &'static str, msgs: Msgs| Spec {
        method,
        msgs,
        timeout: None,
        cancel_after: None,
        tag: tag.clone(),
    };
    match k {
        0 => echo(
            "Unary",
            vec![EchoRequest {
                reply_size: (20 + (i % 7) * 10) as i32,
                ..e(format!("u{i}"))
            }],
        ),
        1 => store(
            "Put",
            Msgs::Item(Item {
                id: cid(i % 23),
                data: vec![b'd'; i % 50],
                version: 0,
                tags: vec![format!("t{}", r % 3)],
            }),
        ),
        2 => {
            let c = CODES[r % CODES.len()];
            echo(
                "Unary",
                vec![EchoRequest {
                    status_code: c,
                    status_message: format!("error {c}"),
                    ..e(format!("e{i}"))
                }],
            )
        }
        3 => store("Get", Msgs::Keys(vec![key(cid((i * 7) % 29))])),
        4 => {
            let mut x = EchoRequest {
                reply_count: 3,
                reply_size: 10,
                ..e(format!("s{i}"))
            };
            if r % 4 == 3 {
                x.status_code = 14;
                x.status_message = "stream broke".into();
            }
            echo("ServerStream", vec![x])
        }
        5 => store("List", Msgs::Keys(vec![key(format!("c{conn}-k1"))])),
        6 => {
            let mut v: Vec<_> = (0..3).map(|j| e(format!("c{i}-{j}"))).collect();
            if r % 3 == 2 {
                v[2].status_code = 3;
                v[2].status_message = "bad stream".into();
            }
            echo("ClientStream", v)
        }
        7 => store("Delete", Msgs::Keys(vec![key(cid((i * 3) % 23))])),
        8 => {
            let mut v: Vec<_> = (0..2)
                .map(|j| EchoRequest {
                    reply_count: 1,
                    ..e(format!("b{i}-{j}"))
                })
                .collect();
            if r % 4 == 1 {
                v[1].status_code = 7;
                v[1].status_message = "no bidi".into();
            }
            echo("Bidi", v)
        }
        9 => store(
            "Watch",
            Msgs::Keys(vec![key(cid((i * 5) % 23)), key(cid((i * 11) % 23))]),
        ),
        10 => Spec {
            timeout: Some(5.0),
            ..echo(
                "Unary",
                vec![EchoRequest {
                    reply_size: 5,
                    ..e(format!("t{i}"))
                }],
            )
        },
        11 if r % 2 == 0 => store(
            "Put",
            Msgs::Item(Item {
                data: b"x".to_vec(),
                ..Item::default()
            }),
        ),
        11 => Spec {
            timeout: Some(10.0),
            ..store(
                "Put",
                Msgs::Item(Item {
                    id: cid(i % 23),
                    tags: vec![format!("t{}", r % 3), "extra".into()],
                    ..Item::default()
                }),
            )
        },
        12 if r % 3 == 0 => Spec {
            timeout: Some(0.05),
            ..echo(
                "Unary",
                vec![EchoRequest {
                    sleep_ms: 200,
                    ..e(format!("slow{i}"))
                }],
            )
        },
        12 => Spec {
            timeout: Some(2.0),
            ..echo(
                "Unary",
                vec![EchoRequest {
                    sleep_ms: 3,
                    ..e(format!("q{i}"))
                }],
            )
        },
        13 => Spec {
            timeout: Some(1.0),
            ..store("Get", Msgs::Keys(vec![key(format!("missing-{r}"))]))
        },
        14 if r % 2 == 1 => Spec {
            cancel_after: Some(0.07),
            ..echo(
                "ServerStream",
                vec![EchoRequest {
                    reply_count: 5,
                    sleep_ms: 40,
                    ..e(format!("x{i}"))
                }],
            )
        },
        14 => echo(
            "ServerStream",
            vec![EchoRequest {
                reply_count: 5,
                sleep_ms: 2,
                ..e(format!("y{i}"))
            }],
        ),
        _ if r % 2 == 0 => store("Get", Msgs::Keys(vec![key(format!("denied-{conn}"))])),
        _ => store("List", Msgs::Keys(vec![key("unavailable".into())])),
    }
}

/// `plan(conn, i)` for i in [lo, hi); at every i % 50 == 25, calls i..i+3 run at once.
async fn calls(ch: &Channel, log: &Log, conn: usize, lo: usize, hi: usize, phase: &'static str) {
    let id = |j: usize| (conn * 10000 + j + 1) as u64;
    let mut i = lo;
    while i < hi {
        if i % 50 == 25 && i + 4 <= hi {
            let jobs: Vec<_> = (i..i + 4)
                .map(|j| {
                    let (ch, log) = (ch.clone(), log.clone());
                    let n = id(j);
                    tokio::spawn(async move {
                        run_spec(&ch, &log, conn, plan(conn, j), n, Some(phase)).await;
                    })
                })
                .collect();
            for j in jobs {
                j.await.unwrap();
            }
            i += 4;
            continue;
        }
        run_spec(ch, log, conn, plan(conn, i), id(i), Some(phase)).await;
        i += 1;
    }
}

async fn wait_go(go: &AtomicBool) {
    while !go.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Started before the capture, ended inside it: a client-paced Bidi that ends OK 8 messages
/// after go, a Watch that ends NOT_FOUND 6 keys after go, a slow ServerStream the client cancels
/// 1.5 s after go.
#[allow(clippy::too_many_lines)]
async fn long_streams(
    ch: &Channel,
    log: &Log,
    conn: usize,
    go: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let base = (conn * 10000 + 9000) as u64;
    let put = Spec {
        method: "Put",
        msgs: Msgs::Item(Item {
            id: format!("c{conn}-watch"),
            data: b"watched".to_vec(),
            ..Item::default()
        }),
        timeout: None,
        cancel_after: None,
        tag: Some("long".into()),
    };
    run_spec(ch, log, conn, put, base, Some("before")).await;
    let meta = |id: u64, tag: &'static str| CallOpts {
        metadata: vec![("x-request-tag", tag.as_bytes().to_vec())],
        call_id: Some(id),
        phase: Some("before"),
        ..CallOpts::default()
    };
    let mut handles = Vec::new();

    let (c, log2, go2, o) = (
        ch.clone(),
        log.clone(),
        go.clone(),
        meta(base + 1, "long-bidi"),
    );
    handles.push(tokio::spawn(async move {
        let start = now();
        let sent = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let s2 = sent.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if go2.load(Ordering::SeqCst) {
                    after += 1;
                    if after > 8 {
                        return; // drops tx: the client half-closes
                    }
                }
                let n = s2.load(Ordering::SeqCst);
                let m = EchoRequest {
                    reply_count: 1,
                    ..e(format!("tick-{n}"))
                };
                if tx.send(m).await.is_err() {
                    return;
                }
                s2.fetch_add(1, Ordering::SeqCst);
            }
        });
        let mut client = echo_client(&c);
        let (mut n, mut peer) = (0, None);
        let result = async {
            let mut s = client
                .bidi(prepare(ReceiverStream::new(rx), &o))
                .await?
                .into_inner();
            while let Some(m) = s.message().await? {
                n += 1;
                peer = Some(m.peer);
            }
            Ok::<(), Status>(())
        }
        .await;
        let sent = sent.load(Ordering::SeqCst);
        log_result(&log2, conn, &o, "Bidi", sent, n, result, peer, start);
    }));

    let (c, log2, go2, o) = (
        ch.clone(),
        log.clone(),
        go.clone(),
        meta(base + 2, "long-watch"),
    );
    handles.push(tokio::spawn(async move {
        let start = now();
        let sent = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let s2 = sent.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let mut id = format!("c{conn}-watch");
                if go2.load(Ordering::SeqCst) {
                    after += 1;
                    if after > 6 {
                        id = format!("c{conn}-gone");
                    }
                }
                if tx.send(Key { id }).await.is_err() {
                    return;
                }
                s2.fetch_add(1, Ordering::SeqCst);
                if after > 6 {
                    let _ = done_rx.await; // the request stream stays open until the call ends
                    return;
                }
            }
        });
        let mut client = StoreClient::new(c);
        let (mut n, mut peer) = (0, None);
        let result = async {
            let r = client.watch(prepare(ReceiverStream::new(rx), &o)).await?;
            peer = md_peer(r.metadata());
            let mut s = r.into_inner();
            while s.message().await?.is_some() {
                n += 1;
            }
            Ok::<(), Status>(())
        }
        .await;
        let _ = done_tx.send(());
        if peer.is_none()
            && let Err(s) = &result
        {
            peer = md_peer(s.metadata());
        }
        let sent = sent.load(Ordering::SeqCst);
        log_result(
            &log2,
            conn,
            &o,
            "/grpctap.test.Store/Watch",
            sent,
            n,
            result,
            peer,
            start,
        );
    }));

    let (c, log2, go2) = (ch.clone(), log.clone(), go.clone());
    let o = CallOpts {
        cancel_after: Some(Duration::from_millis(1500)), // logged as cancelled
        ..meta(base + 3, "long-stream")
    };
    handles.push(tokio::spawn(async move {
        let start = now();
        let mut client = echo_client(&c);
        let (mut n, mut peer) = (0, None);
        let r = EchoRequest {
            reply_count: 100_000,
            sleep_ms: 100,
            ..e("slow-stream".into())
        };
        let read = async {
            let mut s = client.server_stream(prepare(r, &o)).await?.into_inner();
            while let Some(m) = s.message().await? {
                n += 1;
                peer = Some(m.peer);
            }
            Ok::<(), Status>(())
        };
        let cancel = async {
            wait_go(&go2).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        };
        // Dropping the call resets the stream (RST_STREAM CANCEL).
        let result = tokio::select! {
            r = read => r,
            () = cancel => Err(Status::cancelled("cancelled by the client")),
        };
        log_result(&log2, conn, &o, "ServerStream", 1, n, result, peer, start);
    }));
    handles
}

async fn both(chans: &[Channel], log: &Log, lo: usize, hi: usize, phase: &'static str) {
    let jobs: Vec<_> = chans
        .iter()
        .enumerate()
        .map(|(conn, ch)| {
            let (ch, log) = (ch.clone(), log.clone());
            tokio::spawn(async move { calls(&ch, &log, conn, lo, hi, phase).await })
        })
        .collect();
    for j in jobs {
        j.await.unwrap();
    }
}

/// Two connections kept open for the whole run. Before the file `marker` appears (the capture
/// starts in between): long-lived streams start, then 200 calls per connection across every
/// method of Echo and Store. After: 300 more per connection, and the long streams end.
pub(crate) async fn midjoin(targets: &[String], log: &Log, marker: &str) {
    let chans = [
        channel(&targets[0]).await,
        channel(targets.last().unwrap()).await,
    ];
    let go = Arc::new(AtomicBool::new(false));
    let mut long = Vec::new();
    for (conn, ch) in chans.iter().enumerate() {
        long.extend(long_streams(ch, log, conn, &go).await);
    }
    both(&chans, log, 0, 200, "before").await;
    std::fs::write(format!("{marker}.ready"), b"").unwrap();
    while !std::path::Path::new(marker).exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    go.store(true, Ordering::SeqCst);
    both(&chans, log, 200, 500, "during").await;
    for h in long {
        h.await.unwrap();
    }
}

/// One connection, captured from its start: Unary calls past their deadline (some 4 at once),
/// calls that finish just before it, ServerStreams that hit it mid-stream, and client
/// cancellations shortly before it.
pub(crate) async fn deadlines(targets: &[String], log: &Log) {
    let ch = channel(&targets[0]).await;
    let mut id = 0u64;
    let spec = |method: &'static str, r: EchoRequest, t: f64, cancel_after: Option<f64>| Spec {
        method,
        msgs: Msgs::Echo(vec![r]),
        timeout: Some(t),
        cancel_after,
        tag: None,
    };
    let sleep = |message: String, ms: f64| EchoRequest {
        sleep_ms: ms as i32,
        ..e(message)
    };
    for t in [0.02f64, 0.05, 0.1, 0.25, 1.0] {
        let m = t * 1000.0;
        let margin = (m * 0.04).max(8.0);
        for rep in 0..3 {
            id += 1;
            let r = sleep(format!("late-{t}-{rep}"), m * 1.5 + 20.0);
            run_spec(&ch, log, 0, spec("Unary", r, t, None), id, None).await;
            id += 1;
            let r = sleep(format!("ontime-{t}-{rep}"), m - margin);
            run_spec(&ch, log, 0, spec("Unary", r, t, None), id, None).await;
        }
        let jobs: Vec<_> = (0..4)
            .map(|j| {
                id += 1;
                let (ch, log, n) = (ch.clone(), log.clone(), id);
                let s = spec(
                    "Unary",
                    sleep(format!("conc-{t}-{j}"), m * 2.0 + 20.0),
                    t,
                    None,
                );
                tokio::spawn(async move { run_spec(&ch, &log, 0, s, n, None).await })
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
        id += 1;
        let r = sleep(format!("cancel-u-{t}"), m * 2.0 + 20.0);
        run_spec(&ch, log, 0, spec("Unary", r, t, Some(t * 0.7)), id, None).await;
        id += 1;
        let r = EchoRequest {
            reply_count: 20,
            ..sleep(format!("cancel-s-{t}"), m / 4.0)
        };
        run_spec(
            &ch,
            log,
            0,
            spec("ServerStream", r, t, Some(t * 0.8)),
            id,
            None,
        )
        .await;
        if t >= 0.1 {
            for rep in 0..2 {
                id += 1;
                let r = EchoRequest {
                    reply_count: 20,
                    ..sleep(format!("midstream-{t}-{rep}"), m / 4.0)
                };
                run_spec(&ch, log, 0, spec("ServerStream", r, t, None), id, None).await;
            }
        }
    }
    // The last reset reaches the wire before the connection closes.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

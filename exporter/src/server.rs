//! `/metrics` over HTTP: a small synchronous server on its own thread (no async runtime in the
//! binary). A scrape encodes the registry from atomics; it never waits for decoding.
//!
//! Content negotiation as Prometheus does it: a scraper that accepts
//! `application/openmetrics-text` gets OpenMetrics 1.0 (with exemplars); anyone else gets the
//! classic text format 0.0.4.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus_client::registry::Registry;

/// Default listening port: the one grpctap documents (docs/metrics.md).
pub const DEFAULT_PORT: u16 = 9464;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry as text, OpenMetrics or classic.
pub fn render(registry: &Registry, openmetrics: bool) -> String {
    let mut om = String::new();
    if prometheus_client::encoding::text::encode(&mut om, registry).is_err() {
        return String::new();
    }
    if openmetrics { om } else { to_classic(&om) }
}

/// OpenMetrics text to Prometheus' classic text format: counter families are named with their
/// `_total` suffix, `# UNIT` and `# EOF` lines and exemplars are dropped.
pub fn to_classic(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        // Exemplars (` # {trace_id="..."} 1.0`) exist only in OpenMetrics.
        let sample = line.split_once(" # ").map_or(line, |(s, _)| s);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// A running `/metrics` server.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Listens on `addr` ("127.0.0.1:9464", ":9464" for every address) and serves `registry`.
    pub fn start(addr: &str, registry: Arc<Registry>) -> std::io::Result<MetricsServer> {
        let addr = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.to_owned()
        };
        let server = Arc::new(
            tiny_http::Server::http(&addr)
                .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?,
        );
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not an IP address"))?;
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    let _ = respond(req, &registry);
                }
            })?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(req: tiny_http::Request, registry: &Registry) -> std::io::Result<()> {
    let header = |v: &str| tiny_http::Header::from_bytes(&b"Content-Type"[..], v.as_bytes()).ok();
    match req.url().split('?').next() {
        Some("/metrics") => {
            let om = req.headers().iter().any(|h| {
                h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
            });
            let body = render(registry, om);
            let mut resp = tiny_http::Response::from_string(body);
            if let Some(h) = header(if om { OPENMETRICS } else { CLASSIC }) {
                resp = resp.with_header(h);
            }
            req.respond(resp)
        }
        Some("/") => req.respond(tiny_http::Response::from_string(
            "grpctap: metrics at /metrics\n",
        )),
        _ => req.respond(tiny_http::Response::from_string("not found\n").with_status_code(404)),
    }
}

//! An echo backend modelled on the Gateway API conformance suite's echo server.
//!
//! Every request is answered `200 application/json` with an [`EchoBody`]: what the backend saw (request
//! target, host, method, protocol, headers grouped per canonical name) plus the backend's identity
//! (namespace, service, pod), so a test can tell which backend a proxy picked and what the proxy changed.
//!
//! Behaviour a request can ask for, as the conformance suite uses it:
//! - `X-Echo-Set-Header: Name-1:value1,Name-2:value2` sets those response headers (an empty value sets nothing);
//! - `?delay=<Go duration>` (`1s`, `500ms`, `1m30s`) sleeps before answering;
//! - `?uuid=<id>&succeedAfter=<n>[&responseCode=<code>][&delayRetry=<Go duration>]` is the retry
//!   simulator (`delayRetry` delays each failing attempt): the first `n` requests
//!   with that uuid fail, with HTTP `<code>` or, without `responseCode`, by resetting the connection without
//!   a response (HTTP/2: the stream is reset); later ones succeed;
//! - `Upgrade: websocket` (HTTP/1.1) is accepted and text/binary messages are echoed back.
//!
//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) are served on the same port; `proto` reports which.
//! The server counts requests and keeps the most recent ones ([`EchoServer::recent_requests`]) so mirror
//! tests can check what arrived.
//!
//! [`EchoServer::start`] runs the server on a background runtime it owns, for synchronous tests;
//! [`EchoServer::start_async`] runs it on the caller's tokio runtime. Dropping the server (or
//! [`EchoServer::shutdown`]) closes the listener and every open connection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::serve::{self, RequestLog, lock};
use crate::websocket::{self, Message};

mod parse;
mod reset;

use parse::query_param;
pub use parse::{canonical_header_name, parse_go_duration};
use reset::{AbortConnection, ResettableStream};

/// How many recent requests a server remembers.
pub const HISTORY_CAPACITY: usize = 1024;
/// How many retry-simulator uuids a server tracks before forgetting the oldest.
pub const MAX_RETRY_IDS: usize = 10_000;

/// Who an echo server claims to be (reported in every response).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EchoIdentity {
    /// Kubernetes namespace of the backend.
    pub namespace: String,
    /// Service name.
    pub service: String,
    /// Pod name.
    pub pod: String,
}

impl EchoIdentity {
    /// Convenience constructor.
    pub fn new(
        namespace: impl Into<String>,
        service: impl Into<String>,
        pod: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
            pod: pod.into(),
        }
    }
}

/// The JSON body an echo server answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoBody {
    /// Request target as received: path plus query (`/a/b?x=1`).
    pub path: String,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2).
    pub host: String,
    /// Request method.
    pub method: String,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    pub proto: String,
    /// HTTP version number: `1.0`, `1.1` or `2`.
    #[serde(rename = "httpVersion")]
    pub http_version: String,
    /// Request headers (without `Host`) by canonical name (`X-Foo-Bar`), values in arrival order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The backend's namespace.
    pub namespace: String,
    /// The backend's service.
    pub service: String,
    /// The backend's pod.
    pub pod: String,
}

impl EchoBody {
    /// Values of a request header as the backend saw them (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[String]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Values of a header joined with `,` (as a proxy would fold them), if present.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| v.join(","))
    }
}

/// One request as an echo server recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// 1-based arrival number on this server.
    pub seq: u64,
    /// Request method.
    pub method: String,
    /// Request target (path plus query).
    pub path: String,
    /// `Host` / `:authority`.
    pub host: String,
    /// `HTTP/1.1` or `HTTP/2.0` (or `HTTP/1.0`).
    pub proto: String,
    /// All headers in arrival order, names lowercase, `Host` included.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// Values of a header (case-insensitive name) joined with `,`.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

struct Shared {
    identity: EchoIdentity,
    log: RequestLog,
    retries: Mutex<RetryCounters>,
    shutdown: watch::Sender<bool>,
}

#[derive(Default)]
struct RetryCounters {
    attempts: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl RetryCounters {
    /// Records one attempt for `uuid` and returns the attempt number (1-based).
    fn attempt(&mut self, uuid: &str) -> u64 {
        if let Some(n) = self.attempts.get_mut(uuid) {
            *n += 1;
            return *n;
        }
        while self.order.len() >= MAX_RETRY_IDS {
            if let Some(old) = self.order.pop_front() {
                self.attempts.remove(&old);
            }
        }
        self.order.push_back(uuid.to_owned());
        self.attempts.insert(uuid.to_owned(), 1);
        1
    }
}

/// A running echo server. Stops when dropped.
pub struct EchoServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for EchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoServer")
            .field("addr", &self.addr)
            .field("identity", &self.shared.identity)
            .finish_non_exhaustive()
    }
}

impl EchoServer {
    /// Binds `bind` (port 0 picks a free port) and serves on a background runtime owned by the server.
    /// Usable from synchronous code; do not call it from inside a tokio runtime (use
    /// [`EchoServer::start_async`] there).
    pub fn start(identity: EchoIdentity, bind: SocketAddr) -> Result<EchoServer> {
        let runtime = serve::own_runtime("echo-server")?;
        let mut server = {
            let _entered = runtime.enter();
            Self::spawn(identity, bind)?
        };
        server.runtime = Some(runtime);
        Ok(server)
    }

    /// Binds `bind` and serves on the current tokio runtime.
    pub async fn start_async(identity: EchoIdentity, bind: SocketAddr) -> Result<EchoServer> {
        Self::spawn(identity, bind)
    }

    /// Must run inside a runtime context.
    fn spawn(identity: EchoIdentity, bind: SocketAddr) -> Result<EchoServer> {
        let (listener, addr) = serve::bind(bind, "echo server")?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            identity,
            log: RequestLog::new(),
            retries: Mutex::new(RetryCounters::default()),
            shutdown,
        });
        let connections = shared.clone();
        let accept_task = tokio::spawn(serve::accept_loop(listener, move |stream| {
            serve_connection(stream, connections.clone())
        }));
        Ok(EchoServer {
            addr,
            shared,
            accept_task,
            runtime: None,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The identity this server reports.
    pub fn identity(&self) -> &EchoIdentity {
        &self.shared.identity
    }

    /// Requests received so far (every request counts, including failed retry attempts and upgrades).
    pub fn request_count(&self) -> u64 {
        self.shared.log.count()
    }

    /// The last `n` requests received (at most [`HISTORY_CAPACITY`]), oldest first.
    pub fn recent_requests(&self, n: usize) -> Vec<RecordedRequest> {
        self.shared.log.recent(n)
    }

    /// Forgets the request count, the history and the retry-simulator counters.
    pub fn reset(&self) {
        self.shared.log.clear();
        *lock(&self.shared.retries) = RetryCounters::default();
    }

    /// Blocks (polling) until at least `count` requests have arrived; returns the count reached, or an
    /// error naming the count seen when `timeout` passes. Useful for mirrored requests, which arrive
    /// asynchronously.
    pub fn wait_for_request_count(&self, count: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.request_count();
            if seen >= count {
                return Ok(seen);
            }
            if Instant::now() >= deadline {
                bail!(
                    "echo server {} ({}) saw {seen} requests, expected at least {count} within {timeout:?}",
                    self.addr,
                    self.shared.identity.service
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server: closes the listener and all connections (including WebSockets).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        serve::stop(&self.accept_task, self.runtime.take());
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let reset_on_drop = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResettableStream {
        inner: stream,
        reset_on_drop: reset_on_drop.clone(),
    });
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        let reset_on_drop = reset_on_drop.clone();
        async move { handle(req, shared, reset_on_drop).await }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = builder.serve_connection_with_upgrades(io, service).await;
}

fn proto_of(version: Version) -> (&'static str, &'static str) {
    match version {
        Version::HTTP_09 => ("HTTP/0.9", "0.9"),
        Version::HTTP_10 => ("HTTP/1.0", "1.0"),
        Version::HTTP_2 => ("HTTP/2.0", "2"),
        Version::HTTP_3 => ("HTTP/3.0", "3"),
        _ => ("HTTP/1.1", "1.1"),
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Applies `X-Echo-Set-Header` instructions to a response.
fn apply_set_headers(req: &Request<Incoming>, response: &mut Response<Full<Bytes>>) {
    for instruction in req.headers().get_all("x-echo-set-header") {
        let Ok(instruction) = instruction.to_str() else {
            continue;
        };
        for item in instruction.split(',') {
            let Some((name, value)) = item.trim().split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
    }
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    let upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        });
    upgrade && req.version() == Version::HTTP_11
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    reset_on_drop: Arc<AtomicBool>,
) -> std::result::Result<Response<Full<Bytes>>, AbortConnection> {
    let (proto, http_version) = proto_of(req.version());
    let uri = req.uri();
    let path = match (req.version(), uri.scheme()) {
        (Version::HTTP_2, _) | (_, None) => uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| uri.to_string()),
        (_, Some(_)) => uri.to_string(),
    };
    let query = uri.query().unwrap_or("").to_owned();
    let host_header = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok());
    let authority = uri.authority().map(|a| a.as_str());
    let host = if req.version() == Version::HTTP_2 {
        authority.or(host_header)
    } else {
        host_header.or(authority)
    }
    .unwrap_or("")
    .to_owned();

    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut raw_headers = Vec::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        raw_headers.push((name.as_str().to_owned(), value.clone()));
        if name != hyper::header::HOST {
            headers
                .entry(canonical_header_name(name.as_str()))
                .or_default()
                .push(value);
        }
    }

    shared.log.record(|seq| RecordedRequest {
        seq,
        method: req.method().as_str().to_owned(),
        path: path.clone(),
        host: host.clone(),
        proto: proto.to_owned(),
        headers: raw_headers,
    });

    // Retry simulator.
    if let (Some(uuid), Some(succeed_after)) = (
        query_param(&query, "uuid"),
        query_param(&query, "succeedAfter"),
    ) {
        let Ok(succeed_after) = succeed_after.parse::<u64>() else {
            return Ok(text_response(
                StatusCode::BAD_REQUEST,
                format!("invalid succeedAfter {succeed_after:?}\n"),
            ));
        };
        let attempt = lock(&shared.retries).attempt(&uuid);
        if attempt <= succeed_after {
            // `delayRetry`: a failing attempt is slow too (the suite uses it to make per-try and
            // request timeouts fire before the failure arrives).
            if let Some(delay) = query_param(&query, "delayRetry") {
                let Some(duration) = parse_go_duration(&delay) else {
                    return Ok(text_response(
                        StatusCode::BAD_REQUEST,
                        format!("invalid delayRetry {delay:?}\n"),
                    ));
                };
                tokio::time::sleep(duration).await;
            }
            match query_param(&query, "responseCode") {
                Some(code) => {
                    let Some(status) = code
                        .parse::<u16>()
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                    else {
                        return Ok(text_response(
                            StatusCode::BAD_REQUEST,
                            format!("invalid responseCode {code:?}\n"),
                        ));
                    };
                    let mut response = text_response(
                        status,
                        format!(
                            "retry simulator: attempt {attempt} of {succeed_after} failing for uuid {uuid}\n"
                        ),
                    );
                    apply_set_headers(&req, &mut response);
                    return Ok(response);
                }
                None => {
                    reset_on_drop.store(true, Ordering::SeqCst);
                    return Err(AbortConnection);
                }
            }
        }
    }

    if let Some(delay) = query_param(&query, "delay") {
        let Some(duration) = parse_go_duration(&delay) else {
            return Ok(text_response(
                StatusCode::BAD_REQUEST,
                format!("invalid delay {delay:?}\n"),
            ));
        };
        tokio::time::sleep(duration).await;
    }

    if is_websocket_upgrade(&req) {
        let Some(key) = req
            .headers()
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(text_response(
                StatusCode::BAD_REQUEST,
                "missing Sec-WebSocket-Key\n".into(),
            ));
        };
        let accept = websocket::accept_key(key);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let shutdown = shared.shutdown.subscribe();
        tokio::spawn(websocket_echo(on_upgrade, shutdown));
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(
            hyper::header::UPGRADE,
            HeaderValue::from_static("websocket"),
        );
        h.insert(
            hyper::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert("sec-websocket-accept", v);
        }
        apply_set_headers(&req, &mut response);
        return Ok(response);
    }

    let body = EchoBody {
        path,
        host,
        method: req.method().as_str().to_owned(),
        proto: proto.to_owned(),
        http_version: http_version.to_owned(),
        headers,
        namespace: shared.identity.namespace.clone(),
        service: shared.identity.service.clone(),
        pod: shared.identity.pod.clone(),
    };
    let mut response = match serde_json::to_vec(&body) {
        Ok(json) => json_response(StatusCode::OK, json),
        Err(e) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the echo body: {e}\n"),
        ),
    };
    apply_set_headers(&req, &mut response);
    Ok(response)
}

async fn websocket_echo(
    on_upgrade: hyper::upgrade::OnUpgrade,
    mut shutdown: watch::Receiver<bool>,
) {
    let Ok(upgraded) = on_upgrade.await else {
        return;
    };
    let mut io = TokioIo::new(upgraded);
    loop {
        let message = tokio::select! {
            m = websocket::read_message(&mut io) => m,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let reply = match message {
            Ok(Message::Text(t)) => Message::Text(t),
            Ok(Message::Binary(b)) => Message::Binary(b),
            Ok(Message::Ping(p)) => Message::Pong(p),
            Ok(Message::Pong(_)) => continue,
            Ok(Message::Close(code, reason)) => {
                let _ =
                    websocket::write_message(&mut io, &Message::Close(code, reason), false).await;
                return;
            }
            Err(_) => return,
        };
        if websocket::write_message(&mut io, &reply, false)
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests;

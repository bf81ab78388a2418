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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::websocket::{self, Message};

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
    request_count: AtomicU64,
    history: Mutex<VecDeque<RecordedRequest>>,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("echo-server")
            .enable_all()
            .build()
            .context("building the echo server's tokio runtime")?;
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
        let std_listener = std::net::TcpListener::bind(bind)
            .with_context(|| format!("echo server: binding {bind}"))?;
        std_listener
            .set_nonblocking(true)
            .with_context(|| format!("echo server: making the listener on {bind} non-blocking"))?;
        let addr = std_listener
            .local_addr()
            .with_context(|| format!("echo server: reading the bound address of {bind}"))?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .with_context(|| format!("echo server: registering the listener on {addr}"))?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            identity,
            request_count: AtomicU64::new(0),
            history: Mutex::new(VecDeque::with_capacity(64)),
            retries: Mutex::new(RetryCounters::default()),
            shutdown,
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
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
        self.shared.request_count.load(Ordering::SeqCst)
    }

    /// The last `n` requests received (at most [`HISTORY_CAPACITY`]), oldest first.
    pub fn recent_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let history = lock(&self.shared.history);
        let skip = history.len().saturating_sub(n);
        history.iter().skip(skip).cloned().collect()
    }

    /// Forgets the request count, the history and the retry-simulator counters.
    pub fn reset(&self) {
        let mut history = lock(&self.shared.history);
        history.clear();
        self.shared.request_count.store(0, Ordering::SeqCst);
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
        self.accept_task.abort();
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    // Dropping this set (when the task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _peer)) => {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(serve_connection(stream, shared.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A TCP stream that closes with a RST instead of a FIN when asked to (retry simulator).
struct ResettableStream {
    inner: TcpStream,
    reset_on_drop: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset_on_drop.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.reset_on_drop.load(Ordering::SeqCst) {
            // A graceful shutdown would send a FIN before the RST; skip it.
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a handler returns to make hyper drop the connection (HTTP/1) or reset the stream (HTTP/2).
#[derive(Debug, thiserror::Error)]
#[error("retry simulator: dropping the connection without a response")]
struct AbortConnection;

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

/// Go's `CanonicalMIMEHeaderKey`: `x-foo-bar` → `X-Foo-Bar`; names with characters outside the token set
/// are returned unchanged.
pub fn canonical_header_name(name: &str) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5s`, `1m30s`, `-2h`, `0`). Negative durations are
/// returned as zero (Go's `time.Sleep` returns at once for them).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_nanos += value * scale;
        rest = after;
    }
    if negative || !total_nanos.is_finite() {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(total_nanos.min(u64::MAX as f64) as u64))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match b {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b),
            },
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// First value of query parameter `name` (decoded).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
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

    let seq = shared.request_count.fetch_add(1, Ordering::SeqCst) + 1;
    {
        let mut history = lock(&shared.history);
        if history.len() >= HISTORY_CAPACITY {
            history.pop_front();
        }
        history.push_back(RecordedRequest {
            seq,
            method: req.method().as_str().to_owned(),
            path: path.clone(),
            host: host.clone(),
            proto: proto.to_owned(),
            headers: raw_headers,
        });
    }

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
mod tests {
    use super::*;
    use crate::client::{ClientError, HttpClient, HttpVersion, Request};
    use crate::websocket::Message;
    use std::io::{Read as _, Write as _};

    fn server(service: &str) -> EchoServer {
        EchoServer::start(
            EchoIdentity::new(
                "gateway-conformance-infra",
                service,
                format!("{service}-pod-1"),
            ),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn echoes_request_and_identity_over_http1() {
        let echo = server("infra-backend-v1");
        let response = HttpClient::http1(echo.addr())
            .send(
                &Request::new("PATCH", "/some/path?a=1&b=%2F")
                    .with_host("example.com:8080")
                    .with_header("x-lower-case", "one")
                    .with_header("X-Repeated", "first")
                    .with_header("x-repeated", "second")
                    .with_body("payload"),
            )
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type").as_deref(),
            Some("application/json")
        );
        let body = response.echo().unwrap();
        assert_eq!(body.path, "/some/path?a=1&b=%2F");
        assert_eq!(body.host, "example.com:8080");
        assert_eq!(body.method, "PATCH");
        assert_eq!(body.proto, "HTTP/1.1");
        assert_eq!(body.http_version, "1.1");
        assert_eq!(body.namespace, "gateway-conformance-infra");
        assert_eq!(body.service, "infra-backend-v1");
        assert_eq!(body.pod, "infra-backend-v1-pod-1");
        assert_eq!(
            body.headers.get("X-Lower-Case").unwrap(),
            &vec!["one".to_owned()]
        );
        assert_eq!(
            body.headers.get("X-Repeated").unwrap(),
            &vec!["first".to_owned(), "second".to_owned()]
        );
        assert_eq!(body.header("content-length").unwrap(), ["7".to_owned()]);
        assert!(
            body.header("host").is_none(),
            "Host is reported in `host`, not in headers"
        );
        // The raw JSON uses the conformance field names.
        let json = response.json().unwrap();
        for field in [
            "path",
            "host",
            "method",
            "proto",
            "headers",
            "namespace",
            "service",
            "pod",
            "httpVersion",
        ] {
            assert!(json.get(field).is_some(), "missing {field} in {json}");
        }
    }

    #[test]
    fn speaks_h2c_on_the_same_port() {
        let echo = server("h2");
        let response = HttpClient::h2c(echo.addr())
            .send(
                &Request::get("/h2?x=y")
                    .with_host("h2.example")
                    .with_header("x-test", "v"),
            )
            .unwrap();
        assert_eq!(response.version, HttpVersion::Http2);
        let body = response.echo().unwrap();
        assert_eq!(body.proto, "HTTP/2.0");
        assert_eq!(body.http_version, "2");
        assert_eq!(body.host, "h2.example");
        assert_eq!(body.path, "/h2?x=y");
        assert_eq!(body.header("x-test").unwrap(), ["v".to_owned()]);
        // And HTTP/1.1 still works on the same listener.
        let body = HttpClient::http1(echo.addr())
            .send(&Request::get("/"))
            .unwrap()
            .echo()
            .unwrap();
        assert_eq!(body.proto, "HTTP/1.1");
        assert_eq!(body.host, echo.addr().to_string());
    }

    #[test]
    fn x_echo_set_header_sets_response_headers() {
        let echo = server("set-header");
        let response = HttpClient::http1(echo.addr())
            .send(
                &Request::get("/")
                    .with_header(
                        "X-Echo-Set-Header",
                        "X-Header-Set-1:value1, X-Header-Set-2:value2,X-Empty:",
                    )
                    .with_header("X-Echo-Set-Header", "X-Header-Set-1:again"),
            )
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("x-header-set-1").as_deref(),
            Some("value1,again")
        );
        assert_eq!(response.header("x-header-set-2").as_deref(), Some("value2"));
        assert_eq!(response.header("x-empty"), None);
        // The instruction itself is echoed as a request header.
        assert!(
            response
                .echo()
                .unwrap()
                .header("x-echo-set-header")
                .is_some()
        );
    }

    #[test]
    fn delay_query_sleeps_before_answering() {
        let echo = server("delay");
        let started = Instant::now();
        let response = HttpClient::http1(echo.addr())
            .send(&Request::get("/?delay=300ms"))
            .unwrap();
        assert_eq!(response.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        let err = HttpClient::http1(echo.addr())
            .with_timeout(Duration::from_millis(200))
            .send(&Request::get("/?delay=5s"))
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        let bad = HttpClient::http1(echo.addr())
            .send(&Request::get("/?delay=soon"))
            .unwrap();
        assert_eq!(bad.status, 400);
    }

    #[test]
    fn retry_simulator_fails_with_status_then_succeeds() {
        let echo = server("retry");
        let client = HttpClient::http1(echo.addr());
        let request = Request::get("/?uuid=abc&succeedAfter=2&responseCode=503");
        assert_eq!(client.send(&request).unwrap().status, 503);
        assert_eq!(client.send(&request).unwrap().status, 503);
        let ok = client.send(&request).unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.echo().unwrap().service, "retry");
        // Another uuid has its own counter.
        assert_eq!(
            client
                .send(&Request::get(
                    "/?uuid=other&succeedAfter=1&responseCode=500"
                ))
                .unwrap()
                .status,
            500
        );
        assert_eq!(echo.request_count(), 4);
    }

    #[test]
    fn retry_simulator_delays_only_failing_attempts() {
        let echo = server("slow-retry");
        let client = HttpClient::http1(echo.addr());
        let request = Request::get("/?uuid=d&succeedAfter=1&responseCode=500&delayRetry=300ms");
        let started = std::time::Instant::now();
        assert_eq!(client.send(&request).unwrap().status, 500);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "the failing attempt is delayed"
        );
        assert_eq!(client.send(&request).unwrap().status, 200);
    }

    #[test]
    fn retry_simulator_without_code_drops_the_connection() {
        let echo = server("reset");
        let client = HttpClient::http1(echo.addr());
        let request = Request::get("/?uuid=r1&succeedAfter=2");
        for _ in 0..2 {
            let err = client.send(&request).unwrap_err();
            // A RST, not a graceful close: the client sees "connection reset".
            assert!(
                err.is_connection_closed() && err.to_string().contains("reset"),
                "{err}"
            );
        }
        assert_eq!(client.send(&request).unwrap().status, 200);
        // HTTP/2: the stream is reset instead, and the third attempt succeeds.
        let h2 = HttpClient::h2c(echo.addr());
        let request = Request::get("/?uuid=r2&succeedAfter=1");
        assert!(h2.send(&request).is_err());
        assert_eq!(h2.send(&request).unwrap().status, 200);
    }

    #[test]
    fn websocket_upgrade_echoes_messages() {
        let echo = server("ws");
        let mut ws = HttpClient::http1(echo.addr())
            .websocket(
                // As the conformance case sends it: its own Connection/Upgrade headers are not duplicated.
                &Request::get("/ws")
                    .with_host("ws.example")
                    .with_header("Connection", "Upgrade")
                    .with_header("Upgrade", "websocket")
                    .with_header("Origin", "ws://gateway/test"),
            )
            .unwrap();
        assert_eq!(ws.handshake_response().status, 101);
        assert_eq!(ws.echo_text("hello").unwrap(), "hello");
        ws.send(&Message::Binary(vec![0, 1, 2, 255])).unwrap();
        assert_eq!(ws.recv().unwrap(), Message::Binary(vec![0, 1, 2, 255]));
        ws.send(&Message::Ping(b"p".to_vec())).unwrap();
        assert_eq!(ws.recv().unwrap(), Message::Pong(b"p".to_vec()));
        ws.close().unwrap();
        let seen = echo.recent_requests(1);
        assert_eq!(
            seen.first().unwrap().header("upgrade").as_deref(),
            Some("websocket")
        );
    }

    #[test]
    fn counts_and_remembers_requests() {
        let echo = server("mirror");
        let client = HttpClient::http1(echo.addr());
        for i in 0..5 {
            client
                .send(&Request::get(format!("/r{i}")).with_header("x-n", i.to_string()))
                .unwrap();
        }
        assert_eq!(echo.request_count(), 5);
        assert_eq!(
            echo.wait_for_request_count(5, Duration::from_secs(1))
                .unwrap(),
            5
        );
        let last = echo.recent_requests(2);
        assert_eq!(
            last.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
            ["/r3", "/r4"]
        );
        assert_eq!(last.first().unwrap().header("X-N").as_deref(), Some("3"));
        assert_eq!(last.first().unwrap().seq, 4);
        assert_eq!(echo.recent_requests(100).len(), 5);
        let err = echo
            .wait_for_request_count(6, Duration::from_millis(100))
            .unwrap_err();
        assert!(err.to_string().contains("saw 5"), "{err}");
        echo.reset();
        assert_eq!(echo.request_count(), 0);
        assert!(echo.recent_requests(10).is_empty());
    }

    #[test]
    fn shutdown_closes_listener_and_open_connections() {
        let echo = server("bye");
        let addr = echo.addr();
        let mut open = std::net::TcpStream::connect(addr).unwrap();
        open.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut first = [0u8; 12];
        open.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        echo.shutdown();
        // The keep-alive connection is closed (EOF or reset) after the rest of the response.
        let mut rest = Vec::new();
        let _ = open.read_to_end(&mut rest);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }

    #[tokio::test]
    async fn runs_on_the_callers_runtime() {
        let echo = EchoServer::start_async(
            EchoIdentity::new("ns", "svc", "pod"),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let body = HttpClient::http1(echo.addr())
            .send_async(&Request::get("/async"))
            .await
            .unwrap()
            .echo()
            .unwrap();
        assert_eq!(body.path, "/async");
        assert_eq!(echo.identity().service, "svc");
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("1s"), Some(ms(1000)));
        assert_eq!(parse_go_duration("500ms"), Some(ms(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
        assert_eq!(parse_go_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_go_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_go_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("10µs"), Some(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("-1s"), Some(Duration::ZERO));
        for bad in ["", "1", "s", "1x", "1.s.", "abc", "-"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn canonical_names_follow_go() {
        assert_eq!(canonical_header_name("x-foo-bar"), "X-Foo-Bar");
        assert_eq!(canonical_header_name("CONTENT-TYPE"), "Content-Type");
        assert_eq!(canonical_header_name("x_underscore"), "X_underscore");
        assert_eq!(canonical_header_name("bad name"), "bad name");
    }

    #[test]
    fn retry_ids_are_bounded() {
        let mut counters = RetryCounters::default();
        for i in 0..(MAX_RETRY_IDS + 10) {
            assert_eq!(counters.attempt(&i.to_string()), 1);
        }
        assert_eq!(counters.attempts.len(), MAX_RETRY_IDS);
        assert_eq!(counters.attempt(&(MAX_RETRY_IDS + 9).to_string()), 2);
        // The oldest were forgotten and start over.
        assert_eq!(counters.attempt("0"), 1);
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param("a=1&uuid=x%2Fy&b", "uuid").as_deref(),
            Some("x/y")
        );
        assert_eq!(query_param("b", "b").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "uuid"), None);
    }
}

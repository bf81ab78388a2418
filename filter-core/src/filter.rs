//! The host-independent adapter: what the filter does for each request, written against [`Host`] so
//! it runs natively under test. Configure time is [`crate::configure`] (re-exported here).
//!
//! Request flow (`on_request_headers`):
//! 1. remove every client-supplied internal header (`x-gateway-wasm-*`, and in Envoy the `x-envoy-*`
//!    retry/timeout controls the filter owns), so a client can never pick a backend or a policy;
//! 2. learn the Gateway port ([`gateway_port`]) and the TLS server name, evaluate the request;
//! 3. answer locally (redirects, 404/421/500, CORS preflights), or apply the header edits and
//!    rewrites, hand the chosen upstream to the host, set timeouts and retries, send mirrors.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use engine::config::UpstreamSelector;
use engine::{
    Action, Forward, GrpcCode, HeaderEdit, LocalReason, LocalResponse, RandomSource, Redirect,
    Request, SplitMix64,
};

pub use crate::configure::{Compiled, configure};
use crate::host::{Host, HostError, LogLevel, Metric};

/// The request header the filter sets for Envoy's catch-all route (`cluster_header`).
pub const UPSTREAM_HEADER: &str = "x-gateway-wasm-upstream";
/// Every request header with this prefix is internal: client copies are removed before routing.
pub const INTERNAL_HEADER_PREFIX: &str = "x-gateway-wasm-";
/// Prefix of the Envoy filter chain names the shim writes: `gateway-wasm:<gateway port>:<listener>`.
pub const FILTER_CHAIN_PREFIX: &str = "gateway-wasm:";

/// Envoy router controls the filter sets from the route's timeouts and retry policy. Client copies are
/// removed so that only the configuration decides them.
pub const ENVOY_TIMEOUT_HEADER: &str = "x-envoy-upstream-rq-timeout-ms";
pub const ENVOY_PER_TRY_TIMEOUT_HEADER: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
pub const ENVOY_RETRY_ON_HEADER: &str = "x-envoy-retry-on";
pub const ENVOY_RETRIABLE_CODES_HEADER: &str = "x-envoy-retriable-status-codes";
pub const ENVOY_MAX_RETRIES_HEADER: &str = "x-envoy-max-retries";
const ENVOY_CONTROL_HEADERS: [&str; 9] = [
    ENVOY_TIMEOUT_HEADER,
    ENVOY_PER_TRY_TIMEOUT_HEADER,
    ENVOY_RETRY_ON_HEADER,
    ENVOY_RETRIABLE_CODES_HEADER,
    ENVOY_MAX_RETRIES_HEADER,
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-header-names",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-rq-timeout-alt-response",
];
/// Retry conditions besides status codes: failures to get a response at all.
const ENVOY_RETRY_ON_CONNECTION: &str = "connect-failure,refused-stream,reset";

/// How long a mirror request may take before the host gives up on it.
pub const MIRROR_TIMEOUT_MS: u64 = 5_000;
/// Mirrors in flight per VM (per worker thread); more are dropped and counted.
pub const MAX_MIRRORS_IN_FLIGHT: usize = 256;
/// Largest request body copied to mirrors; a larger body drops the mirror.
pub const MIRROR_BODY_LIMIT: usize = 64 * 1024;
/// Request text quoted in local-reply bodies is cut to this many bytes.
const QUOTE_LIMIT: usize = 200;

/// Per-VM state shared by a root context and its HTTP contexts: the random generator for weighted
/// picks and the in-flight mirror deadlines.
#[derive(Debug, Default)]
pub struct Shared {
    rng: Cell<u64>,
    mirror_deadlines: RefCell<VecDeque<u64>>,
    /// Kong only: what the filter learned about its Kong (the version).
    kong: crate::kong::KongState,
}

impl Shared {
    pub fn new(seed: u64) -> Shared {
        Shared {
            rng: Cell::new(seed),
            mirror_deadlines: RefCell::new(VecDeque::new()),
            kong: crate::kong::KongState::default(),
        }
    }

    /// Reserves a mirror slot until `now + timeout`; false when too many are in flight.
    fn reserve_mirror(&self, now: u64) -> bool {
        let mut deadlines = self.mirror_deadlines.borrow_mut();
        while deadlines.front().is_some_and(|d| *d <= now) {
            deadlines.pop_front();
        }
        if deadlines.len() >= MAX_MIRRORS_IN_FLIGHT {
            return false;
        }
        deadlines.push_back(now.saturating_add(MIRROR_TIMEOUT_MS.saturating_mul(1_000_000)));
        true
    }

    /// A mirror finished before its deadline: frees a slot. For hosts that report completions
    /// (the Envoy dynamic module); without it a slot is held for [`MIRROR_TIMEOUT_MS`].
    pub fn release_mirror(&self) {
        self.mirror_deadlines.borrow_mut().pop_front();
    }
}

struct SharedRng<'a>(&'a Cell<u64>);

impl RandomSource for SharedRng<'_> {
    fn next_u64(&mut self) -> u64 {
        let mut generator = SplitMix64(self.0.get());
        let value = generator.next_u64();
        self.0.set(generator.0);
        value
    }
}

/// What the host should do with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the request (or response) go on.
    Continue,
    /// The filter answered (or reset) the request; stop processing it.
    Stop,
}

/// A header edit with owned strings, kept from the request phase for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEdit {
    Set(String, String),
    Add(String, String),
    Remove(String),
}

impl From<&HeaderEdit<'_>> for OwnedEdit {
    fn from(edit: &HeaderEdit<'_>) -> Self {
        match edit {
            HeaderEdit::Set(n, v) => OwnedEdit::Set((*n).to_owned(), v.to_string()),
            HeaderEdit::Add(n, v) => OwnedEdit::Add((*n).to_owned(), v.to_string()),
            HeaderEdit::Remove(n) => OwnedEdit::Remove((*n).to_owned()),
        }
    }
}

/// Mirrors waiting for the request body.
#[derive(Debug, Default)]
struct PendingMirrors {
    calls: Vec<MirrorCall>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Where one mirror goes: the upstream to dispatch to and, in Kong, the `:path` that routes it.
#[derive(Debug)]
struct MirrorCall {
    upstream: String,
    path: Option<String>,
}

/// Per-request state between callbacks.
#[derive(Debug, Default)]
pub struct Stream {
    response_edits: Vec<OwnedEdit>,
    mirrors: Option<PendingMirrors>,
}

impl Stream {
    /// Response header edits still to apply.
    pub fn response_edits(&self) -> &[OwnedEdit] {
        &self.response_edits
    }

    /// True while mirrors wait for the rest of the request body.
    pub fn awaiting_body(&self) -> bool {
        self.mirrors.is_some()
    }
}

fn is_internal(name: &str) -> bool {
    name.get(..INTERNAL_HEADER_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(INTERNAL_HEADER_PREFIX))
}

fn is_envoy_control(name: &str) -> bool {
    ENVOY_CONTROL_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// Cuts `text` to at most `QUOTE_LIMIT` bytes on a character boundary.
fn quote(text: &str) -> &str {
    if text.len() <= QUOTE_LIMIT {
        return text;
    }
    let mut end = QUOTE_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// The Gateway listener port a request arrived on, in order of preference:
/// 1. the Envoy filter chain name the shim wrote, `gateway-wasm:<port>:…` (property
///    `xds.filter_chain_name`), which survives any bind-port mapping;
/// 2. the only port of the configuration, when every listener shares one (Kong);
/// 3. the port the connection arrived on (`destination.port`).
pub fn gateway_port(host: &impl Host, compiled: &Compiled) -> Option<u16> {
    // One Gateway port: nothing to ask (a property read costs about 3 µs per request in Envoy's
    // V8, as much as the rest of a small table's matching).
    if let [only] = compiled.ports.as_slice() {
        return Some(*only);
    }
    if let Ok(Some(name)) = host.property(&["xds", "filter_chain_name"])
        && let Some(port) = parse_filter_chain_port(&name)
    {
        return Some(port);
    }
    let raw = host.property(&["destination", "port"]).ok().flatten()?;
    decode_port(&raw)
}

/// `gateway-wasm:8443:https-a` → 8443.
pub fn parse_filter_chain_port(name: &[u8]) -> Option<u16> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name.strip_prefix(FILTER_CHAIN_PREFIX)?;
    let digits = rest.split(':').next()?;
    digits.parse().ok()
}

/// Envoy encodes integer properties as 8 little-endian bytes; other hosts may send decimal text.
pub fn decode_port(raw: &[u8]) -> Option<u16> {
    if let Ok(bytes) = <[u8; 8]>::try_from(raw) {
        return u16::try_from(u64::from_le_bytes(bytes)).ok();
    }
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

/// Answers with a 500 after a host failure; resets the stream when even that fails.
fn fail(host: &mut impl Host, error: &HostError) -> Verdict {
    host.log(LogLevel::Error, &format!("answering 500: {error}"));
    host.increment(Metric::HostError);
    let sent = host.send_local_response(
        500,
        &[("content-type", "text/plain; charset=utf-8")],
        b"gateway-wasm: internal error\n",
    );
    if sent.is_err() {
        host.reset_stream();
    }
    Verdict::Stop
}

/// Handles the request headers. `compiled` is `None` before any configuration was accepted.
pub fn on_request_headers(
    host: &mut impl Host,
    compiled: Option<&Compiled>,
    shared: &Shared,
    end_of_stream: bool,
    stream: &mut Stream,
) -> Verdict {
    match handle_request(host, compiled, shared, end_of_stream, stream) {
        Ok(verdict) => verdict,
        Err(error) => fail(host, &error),
    }
}

fn handle_request(
    host: &mut impl Host,
    compiled: Option<&Compiled>,
    shared: &Shared,
    end_of_stream: bool,
    stream: &mut Stream,
) -> Result<Verdict, HostError> {
    let envoy = compiled.is_none_or(|c| c.selector == UpstreamSelector::EnvoyClusterHeader);
    let kong = !envoy;
    let mut headers = host.request_headers()?;
    // Strip first, before anything can read them: a client must never choose a backend or policy.
    let mut removed: Vec<String> = Vec::new();
    for (name, _) in &headers {
        if (is_internal(name) || (envoy && is_envoy_control(name)))
            && !removed.iter().any(|r| r.eq_ignore_ascii_case(name))
        {
            removed.push(name.clone());
        }
    }
    for name in &removed {
        host.remove_request_header(name)?;
    }
    headers.retain(|(name, _)| !removed.iter().any(|r| r.eq_ignore_ascii_case(name)));

    let Some(compiled) = compiled else {
        host.increment(Metric::NoConfig);
        host.send_local_response(
            503,
            &[("content-type", "text/plain; charset=utf-8")],
            b"gateway-wasm: no configuration has been accepted yet\n",
        )?;
        return Ok(Verdict::Stop);
    };

    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let method = match pseudo(":method") {
        Some(m) => m,
        None => property_text(host, &["request", "method"]).unwrap_or_default(),
    };
    // Kong's `:path` is nginx's normalized URI: route and forward on the raw request target.
    let raw_target = if kong {
        crate::kong::request_target(host)
    } else {
        None
    };
    let path = match raw_target.or_else(|| pseudo(":path")) {
        Some(p) => p,
        None => property_text(host, &["request", "path"]).unwrap_or_else(|| "/".to_owned()),
    };
    let authority = match pseudo(":authority") {
        Some(a) => a,
        None => headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    };
    let sni = if compiled.has_https {
        property_text(host, &["connection", "requested_server_name"]).filter(|s| !s.is_empty())
    } else {
        None
    };
    let port = if kong {
        crate::kong::gateway_port(host, &compiled.ports, compiled.kong.as_ref())
    } else {
        gateway_port(host, compiled)
    }
    .unwrap_or(0);
    // ngx_wasm_module never says end-of-stream here; without a body it never calls back later.
    let end_of_stream = end_of_stream || (kong && crate::kong::has_no_body(&headers));
    let plain: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| !n.starts_with(':'))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = Request {
        port,
        sni: sni.as_deref(),
        method: &method,
        authority: &authority,
        path: &path,
        headers: &plain,
    };
    let decision = compiled
        .table
        .evaluate(&request, &mut SharedRng(&shared.rng));
    match decision.action {
        Action::Respond(response) => {
            respond(
                host,
                &response,
                &method,
                &authority,
                &path,
                port,
                sni.as_deref(),
            )?;
            Ok(Verdict::Stop)
        }
        Action::Redirect(redirect) => {
            send_redirect(host, &redirect)?;
            host.increment(Metric::Redirected);
            Ok(Verdict::Stop)
        }
        Action::Forward(forward) => {
            let target = RequestTarget {
                original: &path,
                end_of_stream,
            };
            forward_request(host, compiled, shared, &forward, &target, stream)?;
            host.increment(Metric::Forwarded);
            Ok(Verdict::Continue)
        }
    }
}

fn property_text(host: &impl Host, path: &[&str]) -> Option<String> {
    let raw = host.property(path).ok().flatten()?;
    String::from_utf8(raw).ok()
}

/// Applies edits to a list of headers that will be sent as a local reply.
fn edit_list(list: &mut Vec<(String, String)>, edits: &[HeaderEdit<'_>]) {
    for edit in edits {
        match edit {
            HeaderEdit::Set(name, value) => {
                list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                list.push(((*name).to_owned(), value.to_string()));
            }
            HeaderEdit::Add(name, value) => list.push(((*name).to_owned(), value.to_string())),
            HeaderEdit::Remove(name) => list.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
        }
    }
}

fn send_list(
    host: &mut impl Host,
    status: u16,
    list: &[(String, String)],
    body: &[u8],
) -> Result<(), HostError> {
    let pairs: Vec<(&str, &str)> = list.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    host.send_local_response(status, &pairs, body)
}

fn respond(
    host: &mut impl Host,
    response: &LocalResponse<'_>,
    method: &str,
    authority: &str,
    path: &str,
    port: u16,
    sni: Option<&str>,
) -> Result<(), HostError> {
    let host_name = engine::request::host_of(authority);
    let path_only = engine::request::split_query(path).0;
    let (metric, body) = match &response.reason {
        LocalReason::NoListener => (
            Metric::NoListener,
            format!("no listener for host {} on port {port}\n", quote(host_name)),
        ),
        LocalReason::Misdirected => (
            Metric::Misdirected,
            format!(
                "misdirected request: TLS server name {} does not select the listener of host {}\n",
                quote(sni.unwrap_or_default()),
                quote(host_name)
            ),
        ),
        LocalReason::NoRoute => (
            Metric::NoRoute,
            format!(
                "no route for {} {}{}\n",
                quote(method),
                quote(host_name),
                quote(path_only)
            ),
        ),
        LocalReason::NoBackends => (
            Metric::NoBackends,
            "the matching route rule has no backend to forward to\n".to_owned(),
        ),
        LocalReason::InvalidBackend { backend, reason } => (
            Metric::InvalidBackend,
            format!("backend {backend} is not usable: {reason}\n"),
        ),
        LocalReason::UnresolvedFilter { reason } => (
            Metric::UnresolvedFilter,
            format!("the matching route rule has a filter that cannot be applied: {reason}\n"),
        ),
        LocalReason::CorsPreflight => (Metric::CorsPreflight, String::new()),
    };
    if let Some(code) = response.grpc {
        send_grpc_answer(host, code, body.trim_end())?;
        host.increment(metric);
        return Ok(());
    }
    let mut list: Vec<(String, String)> = Vec::new();
    if !body.is_empty() {
        list.push((
            "content-type".to_owned(),
            "text/plain; charset=utf-8".to_owned(),
        ));
    }
    edit_list(&mut list, &response.headers);
    send_list(host, response.status, &list, body.as_bytes())?;
    host.increment(metric);
    Ok(())
}

/// A gRPC answer as a trailers-only response (gRPC over HTTP2: "Trailers-Only is permitted for
/// calls that produce an immediate error"): HTTP 200, `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in the one HEADERS frame, no body. Envoy keeps a `grpc-status`
/// the filter set and sends the headers with end of stream when there is no body
/// (`Utility::sendLocalReply`, source/common/http/utility.cc); Kong sends what it is given.
fn send_grpc_answer(host: &mut impl Host, code: GrpcCode, message: &str) -> Result<(), HostError> {
    let status = code.code().to_string();
    let message = percent_encode_grpc_message(message);
    host.send_local_response(
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-status", &status),
            ("grpc-message", &message),
        ],
        b"",
    )
}

/// gRPC over HTTP2: "Percent-Encoded → 1*(Percent-Byte-Unencoded / Percent-Byte-Encoded)
/// Percent-Byte-Unencoded → 1*( %x20-%x24 / %x26-%x7E ) ; space and VCHAR, except %" — every
/// other byte of the UTF-8 message is sent as `%XX`.
pub fn percent_encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn send_redirect(host: &mut impl Host, redirect: &Redirect<'_>) -> Result<(), HostError> {
    let mut list = vec![("location".to_owned(), redirect.location.clone())];
    edit_list(&mut list, &redirect.response_headers);
    send_list(host, redirect.status, &list, b"")
}

/// The request target as received, and whether the request has no body left to come.
struct RequestTarget<'a> {
    original: &'a str,
    end_of_stream: bool,
}

fn forward_request(
    host: &mut impl Host,
    compiled: &Compiled,
    shared: &Shared,
    forward: &Forward<'_>,
    target: &RequestTarget<'_>,
    stream: &mut Stream,
) -> Result<(), HostError> {
    for edit in &forward.request_headers {
        match edit {
            // Configured edits never touch the internal headers.
            HeaderEdit::Set(name, _) | HeaderEdit::Add(name, _) | HeaderEdit::Remove(name)
                if is_internal(name) => {}
            HeaderEdit::Set(name, value) => host.set_request_header(name, value)?,
            HeaderEdit::Add(name, value) => host.add_request_header(name, value)?,
            HeaderEdit::Remove(name) => host.remove_request_header(name)?,
        }
    }
    match compiled.selector {
        UpstreamSelector::EnvoyClusterHeader => {
            if let Some(path) = &forward.path {
                host.set_request_header(":path", path)?;
            }
            if let Some(authority) = forward.authority {
                host.set_request_header(":authority", authority)?;
            }
            set_envoy_controls(host, forward)?;
            // Last: Envoy re-selects the route when a filter changes headers, and the catch-all
            // route's `cluster_header` reads this one.
            host.set_request_header(UPSTREAM_HEADER, forward.upstream)?;
        }
        UpstreamSelector::KongRoute => crate::kong::route_to_backend(
            host,
            &shared.kong,
            forward.upstream,
            forward.path.as_deref().unwrap_or(target.original),
            forward.authority,
        )?,
    }
    stream.response_edits = forward
        .response_headers
        .iter()
        .map(OwnedEdit::from)
        .collect();
    if !forward.mirrors.is_empty() {
        start_mirrors(host, compiled, forward, shared, target, stream)?;
    }
    Ok(())
}

fn set_envoy_controls(host: &mut impl Host, forward: &Forward<'_>) -> Result<(), HostError> {
    if let Some(ms) = forward.request_timeout_ms {
        // 0 disables Envoy's route timeout, as `0s` disables the Gateway API request timeout.
        host.set_request_header(ENVOY_TIMEOUT_HEADER, &ms.to_string())?;
    }
    if let Some(ms) = forward.backend_request_timeout_ms
        && ms > 0
    {
        host.set_request_header(ENVOY_PER_TRY_TIMEOUT_HEADER, &ms.to_string())?;
    }
    if let Some(retry) = &forward.retry
        && retry.attempts > 0
    {
        host.set_request_header(ENVOY_MAX_RETRIES_HEADER, &retry.attempts.to_string())?;
        if retry.codes.is_empty() {
            host.set_request_header(ENVOY_RETRY_ON_HEADER, ENVOY_RETRY_ON_CONNECTION)?;
        } else {
            let codes: Vec<String> = retry.codes.iter().map(u16::to_string).collect();
            host.set_request_header(
                ENVOY_RETRY_ON_HEADER,
                &format!("retriable-status-codes,{ENVOY_RETRY_ON_CONNECTION}"),
            )?;
            host.set_request_header(ENVOY_RETRIABLE_CODES_HEADER, &codes.join(","))?;
        }
    }
    Ok(())
}

/// Headers never copied to a mirror: internal ones, the router controls, and framing (the mirror
/// carries the whole body, or none).
fn mirror_keeps(name: &str) -> bool {
    !(is_internal(name)
        || is_envoy_control(name)
        || name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("transfer-encoding"))
}

fn start_mirrors(
    host: &mut impl Host,
    compiled: &Compiled,
    forward: &Forward<'_>,
    shared: &Shared,
    target: &RequestTarget<'_>,
    stream: &mut Stream,
) -> Result<(), HostError> {
    // The request as it will be forwarded, after the edits and rewrites above.
    let kong = compiled.kong.as_ref();
    let headers: Vec<(String, String)> = host
        .request_headers()?
        .into_iter()
        // Kong's loopback listener is plain HTTP: a mirror never asks the dispatcher for TLS; and
        // the dispatcher writes the Host from `:authority`, so the client's `host` is not copied.
        .filter(|(n, _)| {
            mirror_keeps(n)
                && !(kong.is_some() && (n == ":scheme" || n.eq_ignore_ascii_case("host")))
        })
        .map(|(n, v)| match (kong, n.as_str(), forward.authority) {
            // `:authority` is read-only in Kong: the rewritten host goes into the mirror itself.
            (Some(_), ":authority", Some(authority)) => (n, authority.to_owned()),
            _ => (n, v),
        })
        .collect();
    let forwarded_target = forward.path.as_deref().unwrap_or(target.original);
    let calls = forward
        .mirrors
        .iter()
        .map(|m| match kong {
            Some(kong) => {
                let (upstream, path) = crate::kong::mirror_call(kong, m.upstream, forwarded_target);
                MirrorCall {
                    upstream,
                    path: Some(path),
                }
            }
            None => MirrorCall {
                upstream: m.upstream.to_owned(),
                path: None,
            },
        })
        .collect();
    let pending = PendingMirrors {
        calls,
        headers,
        body: Vec::new(),
    };
    if target.end_of_stream {
        dispatch_mirrors(host, shared, &pending);
    } else {
        stream.mirrors = Some(pending);
    }
    Ok(())
}

/// Collects the request body for pending mirrors; sends them at the end of the stream.
pub fn on_request_body(
    host: &mut impl Host,
    shared: &Shared,
    body_size: usize,
    end_of_stream: bool,
    stream: &mut Stream,
) {
    let Some(pending) = stream.mirrors.as_mut() else {
        return;
    };
    if pending.body.len().saturating_add(body_size) > MIRROR_BODY_LIMIT {
        for _ in &pending.calls {
            host.increment(Metric::MirrorsDropped);
        }
        host.log(
            LogLevel::Debug,
            "request body too large to mirror; mirror dropped",
        );
        stream.mirrors = None;
        return;
    }
    if body_size > 0 {
        match host.request_body(body_size) {
            Ok(Some(chunk)) => pending.body.extend_from_slice(&chunk),
            Ok(None) => {}
            Err(error) => {
                host.log(LogLevel::Warn, &format!("mirror dropped: {error}"));
                for _ in &pending.calls {
                    host.increment(Metric::MirrorsDropped);
                }
                stream.mirrors = None;
                return;
            }
        }
    }
    if end_of_stream && let Some(pending) = stream.mirrors.take() {
        dispatch_mirrors(host, shared, &pending);
    }
}

fn dispatch_mirrors(host: &mut impl Host, shared: &Shared, pending: &PendingMirrors) {
    let length = pending.body.len().to_string();
    let mut headers: Vec<(&str, &str)> = pending
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if !pending.body.is_empty() {
        headers.push(("content-length", &length));
    }
    let body = (!pending.body.is_empty()).then_some(pending.body.as_slice());
    for call in &pending.calls {
        let upstream = &call.upstream;
        if !shared.reserve_mirror(host.now_nanos()) {
            host.increment(Metric::MirrorsDropped);
            continue;
        }
        let routed: Vec<(&str, &str)>;
        let call_headers = match &call.path {
            Some(path) => {
                routed = std::iter::once((":path", path.as_str()))
                    .chain(headers.iter().copied().filter(|(n, _)| *n != ":path"))
                    .collect();
                &routed
            }
            None => &headers,
        };
        match host.dispatch_http_call(upstream, call_headers, body, MIRROR_TIMEOUT_MS) {
            Ok(_) => host.increment(Metric::MirrorsSent),
            Err(error) => {
                host.log(
                    LogLevel::Warn,
                    &format!("mirror to {upstream} not sent: {error}"),
                );
                host.increment(Metric::MirrorsDropped);
            }
        }
    }
}

/// Applies the response header edits kept from the request phase (ResponseHeaderModifier, CORS).
pub fn on_response_headers(host: &mut impl Host, stream: &mut Stream) -> Verdict {
    let edits = std::mem::take(&mut stream.response_edits);
    for edit in &edits {
        let result = match edit {
            OwnedEdit::Set(name, value) => host.set_response_header(name, value),
            OwnedEdit::Add(name, value) => host.add_response_header(name, value),
            OwnedEdit::Remove(name) => host.remove_response_header(name),
        };
        if let Err(error) = result {
            // The response is already on its way; a missing header is better than a reset.
            host.log(
                LogLevel::Warn,
                &format!("response header edit skipped: {error}"),
            );
        }
    }
    Verdict::Continue
}

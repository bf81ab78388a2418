//! The host operations the adapter needs, as a trait: the proxy-wasm glue implements it with
//! `proxy_wasm::hostcalls` (Envoy, Kong), the unit tests with a recording mock.
//!
//! Every fallible operation returns a `Result`: a host that refuses a call must lead to a local
//! error reply, never to an aborted VM (the SDK's convenience methods unwrap and would abort it).

use std::fmt;

/// Log severity, mapped onto the host's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// A host call that failed: which call, and the status the host returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub call: &'static str,
    pub status: String,
}

impl HostError {
    pub fn new(call: &'static str, status: impl Into<String>) -> HostError {
        HostError {
            call,
            status: status.into(),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host call {} failed: {}", self.call, self.status)
    }
}

impl std::error::Error for HostError {}

/// Counters the filter keeps. The glue defines one host metric per variant at VM start; names are
/// stable (dashboards and tests read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    ConfigAccepted,
    ConfigRejected,
    Forwarded,
    Redirected,
    NoListener,
    Misdirected,
    NoRoute,
    NoBackends,
    InvalidBackend,
    UnresolvedFilter,
    CorsPreflight,
    /// A request arrived before any configuration was accepted.
    NoConfig,
    /// A host call failed while handling a request; the request was answered with a 500.
    HostError,
    MirrorsSent,
    /// A mirror was not sent: too many in flight, body too large, or the host refused the call.
    MirrorsDropped,
}

impl Metric {
    /// Every metric, in definition order.
    pub const ALL: [Metric; 15] = [
        Metric::ConfigAccepted,
        Metric::ConfigRejected,
        Metric::Forwarded,
        Metric::Redirected,
        Metric::NoListener,
        Metric::Misdirected,
        Metric::NoRoute,
        Metric::NoBackends,
        Metric::InvalidBackend,
        Metric::UnresolvedFilter,
        Metric::CorsPreflight,
        Metric::NoConfig,
        Metric::HostError,
        Metric::MirrorsSent,
        Metric::MirrorsDropped,
    ];

    /// The metric name as defined in the host. Envoy shows custom metrics as
    /// `wasmcustom.<name>` in its stats.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ConfigAccepted => "gateway_wasm.config.accepted",
            Metric::ConfigRejected => "gateway_wasm.config.rejected",
            Metric::Forwarded => "gateway_wasm.requests.forwarded",
            Metric::Redirected => "gateway_wasm.requests.redirected",
            Metric::NoListener => "gateway_wasm.requests.no_listener",
            Metric::Misdirected => "gateway_wasm.requests.misdirected",
            Metric::NoRoute => "gateway_wasm.requests.no_route",
            Metric::NoBackends => "gateway_wasm.requests.no_backends",
            Metric::InvalidBackend => "gateway_wasm.requests.invalid_backend",
            Metric::UnresolvedFilter => "gateway_wasm.requests.unresolved_filter",
            Metric::CorsPreflight => "gateway_wasm.requests.cors_preflight",
            Metric::NoConfig => "gateway_wasm.requests.no_config",
            Metric::HostError => "gateway_wasm.requests.host_error",
            Metric::MirrorsSent => "gateway_wasm.mirrors.sent",
            Metric::MirrorsDropped => "gateway_wasm.mirrors.dropped",
        }
    }

    /// The index of this metric in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the adapter asks of the proxy. Request-phase methods act on the current HTTP stream.
pub trait Host {
    fn log(&self, level: LogLevel, message: &str);

    /// Wall-clock time in nanoseconds since the Unix epoch (for compile-time logs and mirror
    /// bookkeeping); 0 when the host cannot tell.
    fn now_nanos(&self) -> u64;

    /// Every request header, pseudo-headers (`:method`, `:path`, …) included, in order.
    fn request_headers(&self) -> Result<Vec<(String, String)>, HostError>;
    /// Replaces every value of a request header.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Appends one more value.
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError>;

    /// Answers the request locally; the request never reaches an upstream.
    fn send_local_response(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;
    /// Last resort when even a local response failed: reset the stream.
    fn reset_stream(&mut self);

    /// A host property (`["xds", "filter_chain_name"]`); `None` when the host does not have it.
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> Result<(), HostError>;

    /// The current chunk of the request body (`size` bytes from the start of the buffered data).
    fn request_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;

    fn increment(&mut self, metric: Metric);
    /// Defines the filter's metrics in the host, once the host is known to implement them (Envoy;
    /// Kong from 3.8: earlier ngx_wasm_module traps on `proxy_define_metric`). Counts made
    /// before are kept and added then.
    fn enable_metrics(&mut self) {}

    /// Sends a request to an upstream outside the stream (mirrors); the response is ignored.
    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Result<u32, HostError>;
}

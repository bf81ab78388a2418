//! What the engine decided for one request, for the host adapter to apply.
//!
//! Decisions borrow names and values from the compiled table, so the common case (forward with a few
//! configured header edits) allocates only the small vectors that hold the edits.

use std::borrow::Cow;

/// The outcome of evaluating one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'t> {
    /// The listener the request was matched against.
    pub listener: Option<&'t str>,
    /// The route rule that matched, if any.
    pub route: Option<RouteIdentity<'t>>,
    pub action: Action<'t>,
}

/// Which route rule (and which of its matches) a request matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteIdentity<'t> {
    /// HTTPRoute (`routes`) or GRPCRoute (`grpcRoutes`): one namespace/name may be both.
    pub kind: RouteKind,
    pub namespace: &'t str,
    pub name: &'t str,
    pub rule_index: usize,
    pub rule_name: Option<&'t str>,
    pub match_index: usize,
}

/// The kind of route a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    HTTPRoute,
    GRPCRoute,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::HTTPRoute => "HTTPRoute",
            RouteKind::GRPCRoute => "GRPCRoute",
        }
    }
}

/// `ns/name rules[0] (rule name)`; a GRPCRoute says so first (`GRPCRoute ns/name rules[0]`), an
/// HTTPRoute reads as it always did.
impl std::fmt::Display for RouteIdentity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == RouteKind::GRPCRoute {
            write!(f, "GRPCRoute ")?;
        }
        write!(
            f,
            "{}/{} rules[{}]",
            self.namespace, self.name, self.rule_index
        )?;
        if let Some(name) = self.rule_name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'t> {
    /// Send the request upstream.
    Forward(Forward<'t>),
    /// Answer with a redirect.
    Redirect(Redirect<'t>),
    /// Answer locally (404, 421, 500, CORS preflight).
    Respond(LocalResponse<'t>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward<'t> {
    /// The `backends` key that was picked.
    pub backend: &'t str,
    /// The host's upstream name (Envoy cluster, or Kong `host:port`).
    pub upstream: &'t str,
    /// Request header edits, in the order they must be applied.
    pub request_headers: Vec<HeaderEdit<'t>>,
    /// New request target (path plus the original query), when a filter rewrote the path.
    pub path: Option<String>,
    /// New Host / `:authority`, when a filter rewrote it.
    pub authority: Option<&'t str>,
    /// Response header edits, in order (ResponseHeaderModifier, CORS).
    pub response_headers: Vec<HeaderEdit<'t>>,
    /// Total time for the request, 0 = disabled, None = the host's default.
    pub request_timeout_ms: Option<u64>,
    /// Time for each upstream attempt.
    pub backend_request_timeout_ms: Option<u64>,
    pub retry: Option<RetryPolicy<'t>>,
    /// Upstreams that get a copy of the request (responses ignored).
    pub mirrors: Vec<Mirror<'t>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect<'t> {
    pub status: u16,
    pub location: String,
    /// Response header edits from the rule (ResponseHeaderModifier, CORS).
    pub response_headers: Vec<HeaderEdit<'t>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse<'t> {
    /// The HTTP status; 200 for a gRPC answer (see `grpc`).
    pub status: u16,
    pub reason: LocalReason<'t>,
    pub headers: Vec<HeaderEdit<'t>>,
    /// A gRPC request gets a gRPC answer: HTTP 200, `content-type: application/grpc`, this
    /// `grpc-status` and a `grpc-message` (a trailers-only response). "A gRPC client reads any HTTP
    /// error status as UNKNOWN": the host adapter sends it so, never with a body.
    pub grpc: Option<GrpcCode>,
}

/// The gRPC status codes the engine answers with itself (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    /// 12: "The operation is not implemented or is not supported/enabled in this service": no
    /// listener or no route takes the call.
    Unimplemented,
    /// 14: "The service is currently unavailable": the GRPCRoute rule has nothing usable to
    /// forward to (an invalid picked backend, no backends or weight 0, an unresolved filter).
    Unavailable,
}

impl GrpcCode {
    /// The number sent as `grpc-status`.
    pub fn code(self) -> u32 {
        match self {
            GrpcCode::Unimplemented => 12,
            GrpcCode::Unavailable => 14,
        }
    }

    /// The name grpc-go prints (`codes.Code.String`).
    pub fn name(self) -> &'static str {
        match self {
            GrpcCode::Unimplemented => "Unimplemented",
            GrpcCode::Unavailable => "Unavailable",
        }
    }
}

/// Why the engine answered by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReason<'t> {
    /// No listener accepts this port and host (404).
    NoListener,
    /// The Host selects a different listener than the TLS server name (421).
    Misdirected,
    /// No route rule matched (404).
    NoRoute,
    /// The rule has no backendRefs, or all weights are 0 (500).
    NoBackends,
    /// The picked backendRef could not be resolved (500); carries the reason.
    InvalidBackend { backend: &'t str, reason: &'t str },
    /// The rule has a filter the shim could not resolve (500).
    UnresolvedFilter { reason: &'t str },
    /// The gateway answers a CORS preflight.
    CorsPreflight,
}

impl LocalReason<'_> {
    /// A stable, low-cardinality name for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            LocalReason::NoListener => "no_listener",
            LocalReason::Misdirected => "misdirected",
            LocalReason::NoRoute => "no_route",
            LocalReason::NoBackends => "no_backends",
            LocalReason::InvalidBackend { .. } => "invalid_backend",
            LocalReason::UnresolvedFilter { .. } => "unresolved_filter",
            LocalReason::CorsPreflight => "cors_preflight",
        }
    }
}

/// One header operation. `Set` replaces every value, `Add` appends one more value, `Remove` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'t> {
    Set(&'t str, Cow<'t, str>),
    Add(&'t str, Cow<'t, str>),
    Remove(&'t str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy<'t> {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Statuses that trigger a retry (empty: the host's default for connection failures only).
    pub codes: &'t [u16],
    pub backoff_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirror<'t> {
    pub backend: &'t str,
    pub upstream: &'t str,
}

impl Action<'_> {
    /// The HTTP status the client will see when the engine answers itself.
    pub fn local_status(&self) -> Option<u16> {
        match self {
            Action::Forward(_) => None,
            Action::Redirect(r) => Some(r.status),
            Action::Respond(r) => Some(r.status),
        }
    }
}

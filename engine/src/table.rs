//! The compiled route table of one Gateway: what [`crate::compile`] builds once per config push and
//! every request only reads.

use crate::config::*;
use crate::cors::CompiledCors;
use crate::decision::RouteKind;
use crate::error::ConfigError;
use crate::grpc::{GrpcBucket, GrpcCandidate};
use crate::index::HostIndex;
use crate::matchers::{HeaderCondition, QueryCondition};
use crate::precedence::{GrpcMatchRank, HostnameMatch, HttpMatch, PathMatchRank, Precedence};
use crate::time::Timestamp;
use crate::validate::{BackendIds, BackendKeys, validate_with};

/// A compiled, immutable route table for one Gateway.
///
/// Built once per configuration push ([`RouteTable::from_json`], [`RouteTable::compile`]) and then
/// only read: [`RouteTable::evaluate`] decides one request without allocating, except for the
/// decision's own edit lists, rewritten path or redirect location.
///
/// # Precedence
///
/// When several route rules match a request, the winner is the one with the greatest
/// [`Precedence`], compared in the Gateway API spec's order, continuing on ties:
///
/// 1. **Hostname** (HTTPRoute `hostnames`: "precedence must be given to rules from the HTTPRoute
///    with the largest number of: Characters in a matching non-wildcard hostname. Characters in a
///    matching hostname."): the request host itself, then wildcards by length
///    (`*.a.example.com` before `*.example.com`), then routes without hostnames.
/// 2. **Path** (HTTPRouteRule `matches`: ""Exact" path match. "Prefix" path match with largest
///    number of characters."): `Exact`, then `RegularExpression` (longer patterns first; "the
///    precedence of RegularExpression path matches are implementation-specific", we place them
///    between Exact and PathPrefix as Envoy Gateway does), then `PathPrefix` by the number of
///    characters as written (`/foo/` before `/foo`; prefixes match whole path segments).
/// 3. **Method**: a match that names a method.
/// 4. **Headers**: more header matches.
/// 5. **Query parameters**: more query parameter matches.
/// 6. **Age**: the oldest route by `creationTimestamp` (a route without one after those with one).
/// 7. **Name**: the route first in alphabetical order by `{namespace}/{name}`.
/// 8. **Rule order**: "the FIRST matching rule (in list order)", then the first of its `matches`.
///
/// # GRPCRoute precedence
///
/// A request is a gRPC request when its method is `POST` and its `content-type` is
/// `application/grpc`, `application/grpc+…` or `application/grpc;…`; its `:path` is
/// `/<service>/<method>`. For a gRPC request the GRPCRoute rules of the listener are tried first
/// (HTTPRoutes only when none matches), the winner having the greatest
/// [`Precedence`]`<`[`GrpcMatchRank`]`>`, in GRPCRouteRule's order:
///
/// 1. **Hostname**, as for HTTPRoute ("Characters in a matching non-wildcard hostname. Characters
///    in a matching hostname.").
/// 2. **Service** ("Characters in a matching service."): an `Exact` service (the request's own,
///    so the most characters a match can have), then `RegularExpression` services (longer
///    patterns first; the spec leaves regular expressions to implementations), then matches
///    without a service.
/// 3. **Method** ("Characters in a matching method."): likewise `Exact`, `RegularExpression`,
///    absent.
/// 4. **Headers** ("Header matches."): more header matches.
/// 5. **Age**, 6. **Name**, 7. **Rule order**, as for HTTPRoute.
///
/// A gRPC request nothing matches is answered `grpc-status: 12` (UNIMPLEMENTED) with HTTP 200;
/// a GRPCRoute rule with nothing usable to forward to, `grpc-status: 14` (UNAVAILABLE), never an
/// HTTP 500 (see [`LocalResponse::grpc`](crate::LocalResponse::grpc)).
///
/// ```
/// use engine::{Action, Request, RouteTable, SplitMix64};
///
/// let table = RouteTable::from_json(br#"{
///   "schemaVersion": 1, "gateway": {"namespace": "infra", "name": "gw"},
///   "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
///   "routes": [{"namespace": "app", "name": "web",
///               "parents": [{"listener": "http"}],
///               "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
///                          "backendRefs": [{"backend": "app/root:80"}]},
///                         {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
///                          "backendRefs": [{"backend": "app/api:80"}]}]}],
///   "backends": {"app/root:80": {"upstream": "root"}, "app/api:80": {"upstream": "api"}}
/// }"#).unwrap();
/// let request = Request { port: 80, sni: None, method: "GET", authority: "example.com",
///                         path: "/api/v1", headers: &[("accept", "*/*")] };
/// let Action::Forward(forward) = table.evaluate(&request, &mut SplitMix64(1)).action else {
///     panic!("expected a forward")
/// };
/// // The longer prefix wins although its rule comes second.
/// assert_eq!(forward.upstream, "api");
/// ```
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) revision: String,
    pub(crate) gateway: ObjectRef,
    pub(crate) listeners: Vec<CompiledListener>,
    pub(crate) routes: Vec<RouteMeta>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) candidates: Vec<Candidate>,
    /// GRPCRoute matches; their rules are in `rules` with the HTTPRoute rules.
    pub(crate) grpc_candidates: Vec<GrpcCandidate>,
    pub(crate) backends: Vec<CompiledBackend>,
}

#[derive(Debug)]
pub(crate) struct CompiledListener {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) hostname: Option<String>,
    pub(crate) hosts: HostIndex,
    /// GRPCRoute matches by hostname, then service and method.
    pub(crate) grpc_hosts: HostIndex<GrpcBucket>,
}

#[derive(Debug)]
pub(crate) struct RouteMeta {
    pub(crate) kind: RouteKind,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) created: Option<Timestamp>,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) route: u32,
    pub(crate) index: u32,
    pub(crate) name: Option<String>,
    pub(crate) filters: Vec<CompiledFilter>,
    pub(crate) backends: Vec<CompiledBackendRef>,
    pub(crate) total_weight: u64,
    /// Timeouts and retry, boxed because few rules set them: inline they were 64 of a rule's 120
    /// bytes on wasm32, 1.5 MB of the Envoy benchmark's 10,000-route table (every byte of the
    /// table is a page a fresh VM touches, `docs/benchmarks.md`, *The lean Wasm path*).
    pub(crate) policy: Option<Box<RulePolicy>>,
}

#[derive(Debug)]
pub(crate) struct RulePolicy {
    pub(crate) request_timeout_ms: Option<u64>,
    pub(crate) backend_request_timeout_ms: Option<u64>,
    pub(crate) retry: Option<CompiledRetry>,
}

#[derive(Debug)]
pub(crate) struct CompiledRetry {
    pub(crate) attempts: u32,
    pub(crate) codes: Vec<u16>,
    pub(crate) backoff_ms: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct CompiledBackendRef {
    pub(crate) backend: u32,
    pub(crate) weight: u32,
    pub(crate) filters: Vec<CompiledFilter>,
}

#[derive(Debug)]
pub(crate) struct CompiledBackend {
    pub(crate) key: String,
    upstream: Upstream,
    pub(crate) invalid_reason: String,
}

/// Where a backend forwards to. The controller-shim names every upstream after its backend key, so
/// the key is not copied a second time for it (20,000 strings fewer to allocate, fault in and free
/// at 10,000 routes).
#[derive(Debug)]
enum Upstream {
    SameAsKey,
    Named(String),
    Invalid,
}

impl CompiledBackend {
    pub(crate) fn new(key: &str, upstream: Option<&str>, invalid_reason: &str) -> CompiledBackend {
        CompiledBackend {
            key: key.to_owned(),
            upstream: match upstream {
                Some(upstream) if upstream == key => Upstream::SameAsKey,
                Some(upstream) => Upstream::Named(upstream.to_owned()),
                None => Upstream::Invalid,
            },
            invalid_reason: invalid_reason.to_owned(),
        }
    }

    /// The upstream (Envoy cluster or Kong upstream) to forward to; `None` for an invalid backend.
    pub(crate) fn upstream(&self) -> Option<&str> {
        match &self.upstream {
            Upstream::SameAsKey => Some(&self.key),
            Upstream::Named(upstream) => Some(upstream),
            Upstream::Invalid => None,
        }
    }
}

#[derive(Debug)]
pub(crate) enum CompiledFilter {
    RequestHeaders(HeaderModifier),
    ResponseHeaders(HeaderModifier),
    Redirect(RequestRedirect),
    Rewrite(UrlRewrite),
    /// Mirror with probability numerator/denominator.
    Mirror {
        backend: u32,
        numerator: u32,
        denominator: u32,
    },
    Cors(Box<CompiledCors>),
    Unresolved(String),
}

/// One `matches[]` entry of one rule: what must hold besides the path.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) rule: u32,
    pub(crate) match_index: u32,
    pub(crate) path: PathMatch,
    pub(crate) method: Option<Box<str>>,
    pub(crate) headers: Box<[HeaderCondition]>,
    pub(crate) query: Box<[QueryCondition]>,
}

impl RouteTable {
    /// Parses, validates and compiles a PluginConfig document.
    pub fn from_json(json: &[u8]) -> Result<RouteTable, ConfigError> {
        let config = crate::parse(json)?;
        RouteTable::compile(&config)
    }

    /// Validates and compiles an already parsed config.
    pub fn compile(config: &PluginConfig) -> Result<RouteTable, ConfigError> {
        validate_with(config, BackendKeys::ResolvedByCompile)?;
        let backend_ids = BackendIds::of(config);
        crate::compile::compile_validated(config, backend_ids)
    }

    /// The producer's revision string of the config this table was compiled from.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The Gateway this table routes for.
    pub fn gateway(&self) -> &ObjectRef {
        &self.gateway
    }

    /// Counts for logs: (listeners, routes, rules, match candidates), GRPCRoutes and their
    /// rules and matches included.
    pub fn stats(&self) -> (usize, usize, usize, usize) {
        (
            self.listeners.len(),
            self.routes.len(),
            self.rules.len(),
            self.candidates.len() + self.grpc_candidates.len(),
        )
    }

    /// Every upstream name the table can forward or mirror to (for host-side sanity checks).
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.backends.iter().filter_map(CompiledBackend::upstream)
    }

    /// The precedence of candidate `id` when found in a hostname bucket that matched as
    /// `hostname`; `None` for an id that is not in the table.
    pub(crate) fn precedence(&self, hostname: HostnameMatch, id: u32) -> Option<Precedence<'_>> {
        let candidate = self.candidates.get(id as usize)?;
        self.precedence_of(
            hostname,
            candidate.rule,
            candidate.match_index,
            candidate.http_match(),
        )
    }

    /// The precedence of GRPCRoute candidate `id` in a hostname bucket that matched as `hostname`.
    pub(crate) fn grpc_precedence(
        &self,
        hostname: HostnameMatch,
        id: u32,
    ) -> Option<Precedence<'_, GrpcMatchRank>> {
        let candidate = self.grpc_candidates.get(id as usize)?;
        self.precedence_of(
            hostname,
            candidate.rule,
            candidate.match_index,
            candidate.rank(),
        )
    }

    /// A match's precedence: its protocol criteria `request`, with its route's tie-breaks.
    fn precedence_of<M>(
        &self,
        hostname: HostnameMatch,
        rule: u32,
        match_index: u32,
        request: M,
    ) -> Option<Precedence<'_, M>> {
        let rule = self.rules.get(rule as usize)?;
        let route = self.routes.get(rule.route as usize)?;
        Some(Precedence {
            hostname,
            request,
            created: route.created,
            namespace: &route.namespace,
            name: &route.name,
            rule_index: rule.index,
            match_index,
        })
    }
}

impl Candidate {
    /// This match's HTTPRoute criteria, for [`Precedence`].
    fn http_match(&self) -> HttpMatch {
        let chars = self.path.value.len();
        HttpMatch {
            path: match self.path.kind {
                PathMatchType::Exact => PathMatchRank::Exact,
                PathMatchType::RegularExpression => PathMatchRank::RegularExpression { chars },
                PathMatchType::PathPrefix => PathMatchRank::Prefix { chars },
            },
            method: self.method.is_some(),
            headers: self.headers.len(),
            query_params: self.query.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CompiledBackend;

    #[test]
    fn an_upstream_named_like_its_key_reads_back_the_same() {
        let same = CompiledBackend::new("ns/svc:80", Some("ns/svc:80"), "");
        assert_eq!(same.upstream(), Some("ns/svc:80"));
        let named = CompiledBackend::new("ns/svc:80", Some("ns_svc_80"), "");
        assert_eq!(named.upstream(), Some("ns_svc_80"));
        let invalid = CompiledBackend::new("invalid:x:ns/svc:80", None, "RefNotPermitted");
        assert_eq!(invalid.upstream(), None);
        assert_eq!(invalid.invalid_reason, "RefNotPermitted");
    }
}

//! GRPCRoute at request time: which requests are gRPC calls, the match index of one hostname
//! bucket (exact service and method by hash, the rest in precedence order), the per-candidate
//! conditions, and the gRPC form of the engine's own answers.
//!
//! Per-call cost does not grow with the number of GRPCRoutes: a bucket is found by hostname as for
//! HTTPRoute; in it, matches with an Exact service and method are one hash probe on
//! `service/method`, matches with only an Exact service one probe on the service, matches with
//! only an Exact method one probe on the method; only RegularExpression and match-everything
//! entries are walked. The lists are merged at request time by their precedence position in the
//! bucket, so the first candidate whose conditions hold is the winner.

use std::fmt;

use crate::compile::compile_headers;
use crate::config::GrpcMatch;
use crate::decision::{Action, Decision, GrpcCode, LocalReason, RouteKind};
use crate::error::{ConfigError, JsonPath};
use crate::hash::FastMap;
use crate::matchers::{HeaderCondition, ValueMatcher};
use crate::precedence::{GrpcMatchRank, NameMatchRank};
use crate::request::{Request, split_query};
use crate::table::{CompiledListener, RouteTable};
use crate::trace::Tracer;

/// The `content-type` of a gRPC request: "application/grpc" or "application/grpc+{subtype}"
/// (gRPC over HTTP2, "Content-Type → "content-type" "application/grpc" [("+proto" / "+json" /
/// {custom})]"), parameters after `;` allowed. Media types compare case-insensitively.
pub fn is_grpc_content_type(value: &str) -> bool {
    const BASE: &str = "application/grpc";
    let Some(head) = value.get(..BASE.len()) else {
        return false;
    };
    let rest = value.get(BASE.len()..).unwrap_or_default();
    head.eq_ignore_ascii_case(BASE) && (rest.is_empty() || rest.starts_with(['+', ';']))
}

/// A gRPC call: the request is `POST` with a gRPC `content-type`, and its `:path` is
/// `/<service>/<method>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrpcCall<'r> {
    /// Between the leading `/` and the last `/` (empty when the path has a single segment).
    pub(crate) service: &'r str,
    /// After the last `/`.
    pub(crate) method: &'r str,
    /// `service/method`: the key of matches with an Exact service and method.
    key: &'r str,
}

impl<'r> GrpcCall<'r> {
    /// The call, when the request is a gRPC request (only those can match GRPCRoutes).
    pub(crate) fn of<H: AsRef<str>>(request: &Request<'r, H>) -> Option<GrpcCall<'r>> {
        if request.method != "POST"
            || !request
                .header("content-type")
                .is_some_and(is_grpc_content_type)
        {
            return None;
        }
        let path = split_query(request.path).0;
        let key = path.strip_prefix('/').unwrap_or(path);
        let (service, method) = key.rsplit_once('/').unwrap_or(("", key));
        Some(GrpcCall {
            service,
            method,
            key,
        })
    }
}

/// One `matches[]` entry of one GRPCRoute rule.
#[derive(Debug)]
pub(crate) struct GrpcCandidate {
    pub(crate) rule: u32,
    pub(crate) match_index: u32,
    /// `None` matches every service.
    pub(crate) service: Option<ValueMatcher>,
    /// `None` matches every method.
    pub(crate) method: Option<ValueMatcher>,
    pub(crate) headers: Box<[HeaderCondition]>,
}

impl GrpcCandidate {
    /// One GRPCRouteMatch: service and method matchers (absent = any) and header conditions.
    pub(crate) fn compile(
        rule: u32,
        match_index: u32,
        m: &GrpcMatch,
        path: &JsonPath<'_>,
    ) -> Result<GrpcCandidate, ConfigError> {
        let method_path = path.field("method");
        let name = |value: Option<&String>, kind, field| {
            value
                .map(|v| ValueMatcher::new(kind, v).map_err(|e| method_path.field(field).error(e)))
                .transpose()
        };
        let (service, method) = match &m.method {
            Some(mm) => (
                name(mm.service.as_ref(), mm.kind, "service")?,
                name(mm.method.as_ref(), mm.kind, "method")?,
            ),
            None => (None, None),
        };
        Ok(GrpcCandidate {
            rule,
            match_index,
            service,
            method,
            headers: compile_headers(&m.headers, path)?,
        })
    }

    /// This match's GRPCRoute criteria, for [`crate::Precedence`].
    pub(crate) fn rank(&self) -> GrpcMatchRank {
        GrpcMatchRank {
            service: name_rank(self.service.as_ref()),
            method: name_rank(self.method.as_ref()),
            headers: self.headers.len(),
        }
    }

    /// The Exact service of this match, if it has one (the index key).
    pub(crate) fn exact_service(&self) -> Option<&str> {
        exact(self.service.as_ref())
    }

    pub(crate) fn exact_method(&self) -> Option<&str> {
        exact(self.method.as_ref())
    }

    /// Service, method and header conditions.
    fn check<'c, 'r, H: AsRef<str>>(
        &'c self,
        call: &GrpcCall<'r>,
        request: &Request<'r, H>,
    ) -> Result<(), GrpcMismatch<'c, 'r>> {
        if let Some(service) = &self.service
            && !service.matches(call.service)
        {
            return Err(GrpcMismatch::Service {
                wanted: service,
                got: call.service,
            });
        }
        if let Some(method) = &self.method
            && !method.matches(call.method)
        {
            return Err(GrpcMismatch::Method {
                wanted: method,
                got: call.method,
            });
        }
        if let Some(header) = self.headers.iter().find(|h| !h.holds(request.headers)) {
            return Err(GrpcMismatch::Header(header));
        }
        Ok(())
    }
}

fn name_rank(matcher: Option<&ValueMatcher>) -> NameMatchRank {
    match matcher {
        None => NameMatchRank::Any,
        Some(ValueMatcher::Exact(value)) => NameMatchRank::Exact { chars: value.len() },
        Some(ValueMatcher::Regex(re)) => NameMatchRank::RegularExpression {
            chars: re.as_str().len(),
        },
    }
}

fn exact(matcher: Option<&ValueMatcher>) -> Option<&str> {
    match matcher {
        Some(ValueMatcher::Exact(value)) => Some(value),
        _ => None,
    }
}

/// Why a GRPCRoute candidate did not match (formatted only when a trace displays it).
#[derive(Debug, Clone, Copy)]
enum GrpcMismatch<'c, 'r> {
    Service {
        wanted: &'c ValueMatcher,
        got: &'r str,
    },
    Method {
        wanted: &'c ValueMatcher,
        got: &'r str,
    },
    Header(&'c HeaderCondition),
}

impl fmt::Display for GrpcMismatch<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrpcMismatch::Service { wanted, got } => write!(f, "service {got:?} is not {wanted}"),
            GrpcMismatch::Method { wanted, got } => write!(f, "method {got:?} is not {wanted}"),
            GrpcMismatch::Header(h) => write!(f, "header {} {} does not hold", h.name, h.value),
        }
    }
}

/// A candidate id with its position in its bucket's precedence order (0 = greatest).
type Ranked = (u32, u32);

/// The GRPCRoute matches of one hostname bucket.
#[derive(Debug, Default)]
pub(crate) struct GrpcBucket {
    /// Exact service and Exact method, under `service/method`.
    both: FastMap<Box<str>, Vec<Ranked>>,
    /// Exact service; method RegularExpression or absent.
    service: FastMap<Box<str>, Vec<Ranked>>,
    /// Exact method; service RegularExpression or absent.
    method: FastMap<Box<str>, Vec<Ranked>>,
    /// Neither Exact.
    rest: Vec<Ranked>,
}

impl GrpcBucket {
    pub(crate) fn insert(&mut self, candidate: &GrpcCandidate, id: u32) {
        let entry = (0, id);
        match (candidate.exact_service(), candidate.exact_method()) {
            (Some(service), Some(method)) => self
                .both
                .entry(format!("{service}/{method}").into())
                .or_default()
                .push(entry),
            (Some(service), None) => self.service.entry(service.into()).or_default().push(entry),
            (None, Some(method)) => self.method.entry(method.into()).or_default().push(entry),
            (None, None) => self.rest.push(entry),
        }
    }

    fn lists_mut(&mut self) -> impl Iterator<Item = &mut Vec<Ranked>> {
        self.both
            .values_mut()
            .chain(self.service.values_mut())
            .chain(self.method.values_mut())
            .chain(std::iter::once(&mut self.rest))
    }

    /// Orders the bucket by `order` (greatest precedence first): every candidate gets its position
    /// in that order, and every list is sorted by position.
    pub(crate) fn sort(&mut self, order: &crate::sort::IdOrder<'_>) {
        let mut all: Vec<u32> = Vec::new();
        for list in self.lists_mut() {
            all.extend(list.iter().map(|(_, id)| *id));
        }
        crate::sort::sort_ids(&mut all, order);
        let position: FastMap<u32, u32> = all
            .iter()
            .enumerate()
            .map(|(position, id)| (*id, position as u32))
            .collect();
        for list in self.lists_mut() {
            for entry in list.iter_mut() {
                entry.0 = position.get(&entry.1).copied().unwrap_or(u32::MAX);
            }
            crate::sort::sort_through_positions(list, &|a, b| a.cmp(b));
            list.dedup();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.both.is_empty()
            && self.service.is_empty()
            && self.method.is_empty()
            && self.rest.is_empty()
    }

    /// Calls `visit` with the candidates that may match `call`, in precedence order, until it
    /// returns `true`.
    fn visit(&self, call: &GrpcCall<'_>, visit: &mut impl FnMut(u32) -> bool) -> bool {
        let none: &[Ranked] = &[];
        let mut lists = [
            self.both.get(call.key).map_or(none, Vec::as_slice),
            self.service.get(call.service).map_or(none, Vec::as_slice),
            self.method.get(call.method).map_or(none, Vec::as_slice),
            &self.rest,
        ];
        loop {
            // The list whose head comes first in precedence order.
            let next = lists
                .iter_mut()
                .filter_map(|list| Some((list.first()?.0, list)))
                .min_by_key(|(position, _)| *position);
            let Some((_, list)) = next else {
                return false;
            };
            let Some(((_, id), rest)) = list.split_first() else {
                return false;
            };
            *list = rest;
            if visit(*id) {
                return true;
            }
        }
    }
}

impl RouteTable {
    /// The first GRPCRoute candidate of the listener, in precedence order, whose conditions hold.
    pub(crate) fn best_grpc_candidate<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        listener: &'a CompiledListener,
        host: &str,
        call: &GrpcCall<'a>,
        request: &Request<'a, H>,
        tracer: &mut T,
    ) -> Option<&'a GrpcCandidate> {
        let mut winner = None;
        listener.grpc_hosts.buckets(host).any(|(host_hit, bucket)| {
            !bucket.is_empty()
                && bucket.visit(call, &mut |id| {
                    let Some(candidate) = self.grpc_candidates.get(id as usize) else {
                        return false;
                    };
                    let verdict = candidate.check(call, request);
                    if tracer.enabled() {
                        let who = self.describe_match(candidate.rule, candidate.match_index);
                        tracer.note(|| match &verdict {
                            Ok(()) => format!("  {who} [{host_hit}]: matches"),
                            Err(why) => format!("  {who} [{host_hit}]: {why}"),
                        });
                    }
                    if verdict.is_ok() {
                        winner = Some(candidate);
                    }
                    verdict.is_ok()
                })
        });
        winner
    }
}

/// The gRPC form of a local answer to a gRPC request: HTTP 200 with a `grpc-status` ("a gRPC
/// client reads any HTTP error status as UNKNOWN"). Nothing took the call (no listener, no route
/// of either kind): 12 UNIMPLEMENTED. A GRPCRoute rule with nothing usable to forward to: 14
/// UNAVAILABLE. A gRPC request an HTTPRoute matched keeps HTTPRoute semantics (500 for an invalid
/// backend, "requests that would have been sent to an invalid backend MUST receive a 500"); a
/// misdirected request keeps its 421, which asks the client to retry on another connection.
pub(crate) fn grpc_answer<T: Tracer>(decision: &mut Decision<'_>, tracer: &mut T) {
    let Action::Respond(response) = &mut decision.action else {
        return;
    };
    let grpc_rule = decision
        .route
        .is_none_or(|route| route.kind == RouteKind::GRPCRoute);
    let code = match response.reason {
        LocalReason::NoListener | LocalReason::NoRoute => GrpcCode::Unimplemented,
        LocalReason::NoBackends
        | LocalReason::InvalidBackend { .. }
        | LocalReason::UnresolvedFilter { .. }
            if grpc_rule =>
        {
            GrpcCode::Unavailable
        }
        _ => return,
    };
    tracer.note(|| {
        format!(
            "gRPC answer: HTTP 200, grpc-status {} ({}) instead of HTTP {}",
            code.code(),
            code.name(),
            response.status
        )
    });
    response.status = 200;
    response.grpc = Some(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'r>(method: &'r str, content_type: &'r str, path: &'r str) -> Option<GrpcCall<'r>> {
        let headers = Box::leak(Box::new([("content-type", content_type)]));
        let request = Request {
            port: 80,
            sni: None,
            method,
            authority: "h",
            path,
            headers: &headers[..],
        };
        GrpcCall::of(&request)
    }

    #[test]
    fn grpc_requests_are_posts_with_a_grpc_content_type() {
        for content_type in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;charset=utf-8",
            "Application/GRPC+json",
        ] {
            assert!(is_grpc_content_type(content_type), "{content_type}");
        }
        for content_type in [
            "application/grpc-web",
            "application/grpcx",
            "application/json",
            "",
        ] {
            assert!(!is_grpc_content_type(content_type), "{content_type}");
        }
        assert!(call("POST", "application/grpc", "/a.B/C").is_some());
        assert!(call("GET", "application/grpc", "/a.B/C").is_none());
        assert!(call("POST", "application/grpc-web", "/a.B/C").is_none());
    }

    #[test]
    fn the_path_splits_at_the_last_slash() {
        let c = call("POST", "application/grpc", "/pkg.v1.Svc/Get");
        assert_eq!(
            c.map(|c| (c.service, c.method, c.key)),
            Some(("pkg.v1.Svc", "Get", "pkg.v1.Svc/Get"))
        );
        let c = call("POST", "application/grpc", "/a/b/C");
        assert_eq!(c.map(|c| (c.service, c.method)), Some(("a/b", "C")));
        let c = call("POST", "application/grpc", "/Only");
        assert_eq!(c.map(|c| (c.service, c.method)), Some(("", "Only")));
    }

    fn candidate(service: Option<ValueMatcher>, method: Option<ValueMatcher>) -> GrpcCandidate {
        GrpcCandidate {
            rule: 0,
            match_index: 0,
            service,
            method,
            headers: Box::new([]),
        }
    }

    #[test]
    fn a_bucket_visits_candidates_of_the_call_in_position_order() {
        use crate::config::ValueMatchType::{Exact, RegularExpression};
        let m = |kind, v: &str| ValueMatcher::new(kind, v).ok();
        let candidates = [
            candidate(m(Exact, "a.S"), m(Exact, "M")),
            candidate(m(Exact, "a.S"), None),
            candidate(None, m(Exact, "M")),
            candidate(m(RegularExpression, "a\\..*"), None),
            candidate(None, None),
            candidate(m(Exact, "b.S"), m(Exact, "M")),
        ];
        let mut bucket = GrpcBucket::default();
        for (id, c) in candidates.iter().enumerate() {
            bucket.insert(c, id as u32);
        }
        // Precedence as the table computes it: by rank, greatest first.
        bucket.sort(&|a, b| {
            let rank = |id: u32| candidates.get(id as usize).map(GrpcCandidate::rank);
            rank(b).cmp(&rank(a))
        });
        let mut seen = Vec::new();
        let call = call("POST", "application/grpc", "/a.S/M");
        let Some(call) = call else {
            unreachable!("a gRPC call")
        };
        bucket.visit(&call, &mut |id| {
            seen.push(id);
            false
        });
        // b.S/M is never visited: its key is another service's.
        assert_eq!(seen, [0, 1, 3, 2, 4]);
    }
}

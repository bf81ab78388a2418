//! Evaluation: one request against a compiled [`RouteTable`], into a [`Decision`].

use std::cmp::Reverse;
use std::fmt;
use std::ops::ControlFlow;

use crate::config::{PathMatch, PathMatchType};
use crate::decision::*;
use crate::filters::Edits;
use crate::grpc::{GrpcCall, grpc_answer};
use crate::index::{HostHit, hostname_specificity};
use crate::matchers::{HeaderCondition, QueryCondition};
use crate::request::{RandomSource, Request, ascii_lowercase, below, host_of, split_query};
use crate::table::{
    Candidate, CompiledBackend, CompiledBackendRef, CompiledListener, CompiledRule, RouteTable,
};
use crate::trace::{NoTrace, Trace, Tracer};

impl RouteTable {
    /// Decides what to do with one request. `random` drives weighted backend picks and mirror
    /// percentages.
    pub fn evaluate<'a, H: AsRef<str>>(
        &'a self,
        request: &Request<'a, H>,
        random: &mut impl RandomSource,
    ) -> Decision<'a> {
        self.evaluate_with(request, random, &mut NoTrace)
    }

    /// The same evaluation, also returning the story of how the decision was reached.
    pub fn explain<'a, H: AsRef<str>>(
        &'a self,
        request: &Request<'a, H>,
        random: &mut impl RandomSource,
    ) -> (Decision<'a>, Trace) {
        let mut trace = Trace::default();
        let decision = self.evaluate_with(request, random, &mut trace);
        (decision, trace)
    }

    /// Evaluation with any [`Tracer`]. With [`NoTrace`] nothing is formatted and nothing is
    /// allocated but the decision's own edit lists, rewritten path or redirect location.
    pub fn evaluate_with<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        request: &Request<'a, H>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Decision<'a> {
        let call = GrpcCall::of(request);
        if let Some(call) = &call {
            tracer.note(|| {
                format!(
                    "gRPC request: service {:?}, method {:?}",
                    call.service, call.method
                )
            });
        }
        let mut decision = self.decide(request, call.as_ref(), random, tracer);
        if call.is_some() {
            grpc_answer(&mut decision, tracer);
        }
        decision
    }

    /// Listener, then (for a gRPC call) the GRPCRoute rules, then the HTTPRoute rules.
    fn decide<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        request: &Request<'a, H>,
        call: Option<&GrpcCall<'a>>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Decision<'a> {
        let raw_host = host_of(request.authority);
        let mut host_buffer = None;
        let host = ascii_lowercase(raw_host, &mut host_buffer);
        let listener = match self.listener_for(request, &host, tracer) {
            ControlFlow::Continue(listener) => listener,
            ControlFlow::Break(answer) => return answer,
        };
        if let Some(call) = call
            && let Some(candidate) =
                self.best_grpc_candidate(listener, &host, call, request, tracer)
        {
            let selected = Selected {
                rule: candidate.rule,
                match_index: candidate.match_index,
                matched_path: None,
            };
            return self.take(request, listener, raw_host, selected, random, tracer);
        }
        let Some(candidate) = self.best_candidate(listener, &host, request, tracer) else {
            tracer.note(|| "404: no route rule matches".to_owned());
            return respond(Some(listener), None, 404, LocalReason::NoRoute);
        };
        let selected = Selected {
            rule: candidate.rule,
            match_index: candidate.match_index,
            matched_path: Some(&candidate.path),
        };
        self.take(request, listener, raw_host, selected, random, tracer)
    }

    /// Applies the rule of the winning match (of either route kind).
    fn take<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        request: &Request<'a, H>,
        listener: &'a CompiledListener,
        raw_host: &'a str,
        selected: Selected<'a>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Decision<'a> {
        let Some(rule) = self.rules.get(selected.rule as usize) else {
            return respond(Some(listener), None, 500, LocalReason::NoBackends);
        };
        let identity = self.identity(rule, selected.match_index);
        tracer.note(|| format!("selected {identity} matches[{}]", selected.match_index));
        let context = Context {
            request,
            listener,
            matched_path: selected.matched_path,
            host: raw_host,
            identity,
        };
        self.apply_rule(&context, rule, random, tracer)
    }

    /// The listener for the request's port and host, or the answer: 421 when the TLS server name
    /// and the Host select different listeners (misdirected), 404 when none accepts the host.
    fn listener_for<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        request: &Request<'a, H>,
        host: &str,
        tracer: &mut T,
    ) -> ControlFlow<Decision<'a>, &'a CompiledListener> {
        let by_host = self.select_listener(request.port, host);
        let index = match request.sni {
            Some(sni) => {
                let mut sni_buffer = None;
                let sni = ascii_lowercase(sni, &mut sni_buffer);
                let by_sni = self.select_listener(request.port, &sni);
                if by_sni != by_host {
                    tracer.note(|| {
                        format!(
                            "421: TLS server name {sni:?} selects listener {} but Host {host:?} selects {}",
                            self.listener_name(by_sni),
                            self.listener_name(by_host)
                        )
                    });
                    return ControlFlow::Break(respond(
                        self.listener_at(by_sni),
                        None,
                        421,
                        LocalReason::Misdirected,
                    ));
                }
                by_sni
            }
            None => by_host,
        };
        let Some(listener) = self.listener_at(index) else {
            tracer.note(|| {
                format!(
                    "404: no listener on port {} accepts host {host:?}",
                    request.port
                )
            });
            return ControlFlow::Break(respond(None, None, 404, LocalReason::NoListener));
        };
        tracer.note(|| {
            format!(
                "listener {:?} (port {}, hostname {}) accepts host {host:?}",
                listener.name,
                listener.port,
                listener.hostname.as_deref().unwrap_or("<any>")
            )
        });
        ControlFlow::Continue(listener)
    }

    /// The first candidate, in precedence order, whose method, header and query conditions hold.
    fn best_candidate<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        listener: &'a CompiledListener,
        host: &str,
        request: &Request<'a, H>,
        tracer: &mut T,
    ) -> Option<&'a Candidate> {
        let (path, query) = split_query(request.path);
        let mut winner = None;
        listener.hosts.visit(host, path, &mut |host_hit, id| {
            let Some(candidate) = self.candidates.get(id as usize) else {
                return false;
            };
            let verdict = check(candidate, request, query);
            if tracer.enabled() {
                self.trace_candidate(tracer, candidate, host_hit, &verdict);
            }
            if verdict.is_ok() {
                winner = Some(candidate);
            }
            verdict.is_ok()
        });
        winner
    }

    fn trace_candidate<T: Tracer>(
        &self,
        tracer: &mut T,
        candidate: &Candidate,
        host_hit: HostHit<'_>,
        verdict: &Result<(), Mismatch<'_, '_>>,
    ) {
        let bucket = host_hit.to_string();
        // The index files each candidate under its own path kind, so that is where it was found.
        let kind = match candidate.path.kind {
            PathMatchType::Exact => "Exact",
            PathMatchType::RegularExpression => "RegularExpression",
            PathMatchType::PathPrefix => "PathPrefix",
        };
        let how = format!("{kind} {:?}", candidate.path.value);
        let who = self.describe_match(candidate.rule, candidate.match_index);
        tracer.note(|| match verdict {
            Ok(()) => format!("  {who} [{bucket}, path {how}]: matches"),
            Err(why) => format!("  {who} [{bucket}, path {how}]: {why}"),
        });
    }

    fn select_listener(&self, port: u16, host: &str) -> Option<usize> {
        self.listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.port == port)
            .filter_map(|(i, l)| {
                hostname_specificity(l.hostname.as_deref(), host).map(|s| (s, Reverse(i)))
            })
            .max()
            .map(|(_, Reverse(i))| i)
    }

    fn listener_at(&self, index: Option<usize>) -> Option<&CompiledListener> {
        index.and_then(|i| self.listeners.get(i))
    }

    fn listener_name(&self, index: Option<usize>) -> String {
        self.listener_at(index)
            .map_or_else(|| "<none>".to_owned(), |l| format!("{:?}", l.name))
    }

    /// `ns/name rules[1] matches[0]` (GRPCRoutes say so first), for traces.
    pub(crate) fn describe_match(&self, rule: u32, match_index: u32) -> String {
        match self.rules.get(rule as usize) {
            Some(rule) => format!(
                "{} matches[{match_index}]",
                self.identity(rule, match_index)
            ),
            None => "?".to_owned(),
        }
    }

    pub(crate) fn identity<'a>(
        &'a self,
        rule: &'a CompiledRule,
        match_index: u32,
    ) -> RouteIdentity<'a> {
        let route = self.routes.get(rule.route as usize);
        RouteIdentity {
            kind: route.map_or(RouteKind::HTTPRoute, |r| r.kind),
            namespace: route.map_or("", |r| r.namespace.as_str()),
            name: route.map_or("", |r| r.name.as_str()),
            rule_index: rule.index as usize,
            rule_name: rule.name.as_deref(),
            match_index: match_index as usize,
        }
    }

    /// The rule's filters, a weighted backend pick, then that backendRef's own filters.
    fn apply_rule<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        rule: &'a CompiledRule,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Decision<'a> {
        let mut edits = Edits::default();
        if let ControlFlow::Break(answer) =
            self.apply_filters(cx, &rule.filters, &mut edits, random, tracer)
        {
            return answer;
        }
        let Picked {
            backend_ref,
            backend,
            upstream,
        } = match self.pick_backend(cx, rule, random, tracer) {
            ControlFlow::Continue(picked) => picked,
            ControlFlow::Break(answer) => return answer,
        };
        if let ControlFlow::Break(answer) =
            self.apply_filters(cx, &backend_ref.filters, &mut edits, random, tracer)
        {
            return answer;
        }
        let policy = rule.policy.as_deref();
        Decision {
            listener: Some(&cx.listener.name),
            route: Some(cx.identity),
            action: Action::Forward(Forward {
                backend: &backend.key,
                upstream,
                request_headers: edits.request,
                path: edits.path,
                authority: edits.authority,
                response_headers: edits.response,
                request_timeout_ms: policy.and_then(|p| p.request_timeout_ms),
                backend_request_timeout_ms: policy.and_then(|p| p.backend_request_timeout_ms),
                retry: policy.and_then(|p| p.retry.as_ref()).map(|r| RetryPolicy {
                    attempts: r.attempts,
                    codes: &r.codes,
                    backoff_ms: r.backoff_ms,
                }),
                mirrors: edits.mirrors,
            }),
        }
    }

    /// A backendRef drawn by weight, its backend and that backend's upstream; a 500 when the rule
    /// has no weight to draw from or the drawn backend is invalid ("requests that would have been
    /// sent to an invalid backend MUST receive a 500").
    fn pick_backend<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        rule: &'a CompiledRule,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> ControlFlow<Decision<'a>, Picked<'a>> {
        let fail = |reason| respond(Some(cx.listener), Some(cx.identity), 500, reason);
        if rule.total_weight == 0 {
            tracer.note(|| "500: the rule has no backendRefs with a weight above 0".to_owned());
            return ControlFlow::Break(fail(LocalReason::NoBackends));
        }
        let mut ticket = below(random.next_u64(), rule.total_weight);
        let picked = rule.backends.iter().find(|b| {
            let weight = u64::from(b.weight);
            if ticket < weight {
                true
            } else {
                ticket -= weight;
                false
            }
        });
        let Some((backend_ref, backend)) =
            picked.and_then(|r| Some((r, self.backends.get(r.backend as usize)?)))
        else {
            return ControlFlow::Break(fail(LocalReason::NoBackends));
        };
        let Some(upstream) = backend.upstream() else {
            tracer.note(|| {
                format!(
                    "500: picked backend {} is invalid ({})",
                    backend.key, backend.invalid_reason
                )
            });
            return ControlFlow::Break(fail(LocalReason::InvalidBackend {
                backend: &backend.key,
                reason: &backend.invalid_reason,
            }));
        };
        tracer.note(|| {
            format!(
                "backend {} (weight {} of {}) → upstream {upstream}",
                backend.key, backend_ref.weight, rule.total_weight
            )
        });
        ControlFlow::Continue(Picked {
            backend_ref,
            backend,
            upstream,
        })
    }
}

/// The match that won: its rule, its index in the rule's `matches`, and (HTTPRoute) its path.
struct Selected<'a> {
    rule: u32,
    match_index: u32,
    matched_path: Option<&'a PathMatch>,
}

/// What evaluation needs to carry from matching into the filters.
pub(crate) struct Context<'a, 'r, H: AsRef<str>> {
    pub(crate) request: &'r Request<'a, H>,
    pub(crate) listener: &'a CompiledListener,
    /// The HTTPRoute path match that selected the rule (ReplacePrefixMatch rewrites relative to
    /// it); `None` for a GRPCRoute rule.
    pub(crate) matched_path: Option<&'a PathMatch>,
    /// The request host without port, as sent (redirects keep the client's spelling).
    pub(crate) host: &'a str,
    pub(crate) identity: RouteIdentity<'a>,
}

/// Method, header and query conditions of one candidate (the index already checked host and path).
fn check<'c, 'r, H: AsRef<str>>(
    c: &'c Candidate,
    request: &Request<'r, H>,
    query: Option<&str>,
) -> Result<(), Mismatch<'c, 'r>> {
    if let Some(method) = &c.method
        && **method != *request.method
    {
        return Err(Mismatch::Method {
            wanted: method,
            got: request.method,
        });
    }
    if let Some(header) = c.headers.iter().find(|h| !h.holds(request.headers)) {
        return Err(Mismatch::Header(header));
    }
    if let Some(param) = c.query.iter().find(|q| !q.holds(query)) {
        return Err(Mismatch::Query(param));
    }
    Ok(())
}

/// Why a candidate did not match: borrowed from the table and the request, so that matching
/// formats (and allocates) nothing unless a trace displays it.
#[derive(Debug, Clone, Copy)]
enum Mismatch<'c, 'r> {
    Method { wanted: &'c str, got: &'r str },
    Header(&'c HeaderCondition),
    Query(&'c QueryCondition),
}

impl fmt::Display for Mismatch<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Method { wanted, got } => write!(f, "method {got} is not {wanted}"),
            Mismatch::Header(h) => write!(f, "header {} {} does not hold", h.name, h.value),
            Mismatch::Query(q) => {
                write!(f, "query parameter {} {} does not hold", q.name, q.value)
            }
        }
    }
}

/// The backendRef a weighted draw picked, its backend and that backend's upstream.
struct Picked<'a> {
    backend_ref: &'a CompiledBackendRef,
    backend: &'a CompiledBackend,
    upstream: &'a str,
}

pub(crate) fn respond<'a>(
    listener: Option<&'a CompiledListener>,
    route: Option<RouteIdentity<'a>>,
    status: u16,
    reason: LocalReason<'a>,
) -> Decision<'a> {
    Decision {
        listener: listener.map(|l| l.name.as_str()),
        route,
        action: Action::Respond(LocalResponse {
            status,
            reason,
            headers: Vec::new(),
            grpc: None,
        }),
    }
}

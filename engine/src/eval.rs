//! Evaluation: one request against a compiled [`RouteTable`], into a [`Decision`].

use std::borrow::Cow;
use std::cmp::Reverse;

use crate::config::{HeaderModifier, PathMatchType, PathModifier, RequestRedirect};
use crate::decision::*;
use crate::index::{HostHit, PathHit, hostname_specificity};
use crate::request::{RandomSource, Request, below, host_of, split_query};
use crate::table::{Candidate, CompiledFilter, CompiledListener, CompiledRule, RouteTable};
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

    /// Evaluation with any [`Tracer`].
    pub fn evaluate_with<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        request: &Request<'a, H>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Decision<'a> {
        let raw_host = host_of(request.authority);
        let host: Cow<'_, str> = if raw_host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(raw_host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(raw_host)
        };

        let by_host = self.select_listener(request.port, &host);
        let listener_index = match request.sni {
            Some(sni) => {
                let sni = sni.to_ascii_lowercase();
                let by_sni = self.select_listener(request.port, &sni);
                if by_sni != by_host {
                    tracer.note(|| {
                        format!(
                            "421: TLS server name {sni:?} selects listener {} but Host {host:?} selects {}",
                            self.listener_name(by_sni),
                            self.listener_name(by_host)
                        )
                    });
                    return respond(
                        self.listener_at(by_sni),
                        None,
                        421,
                        LocalReason::Misdirected,
                    );
                }
                by_sni
            }
            None => by_host,
        };
        let Some(listener) = listener_index.and_then(|i| self.listeners.get(i)) else {
            tracer.note(|| {
                format!(
                    "404: no listener on port {} accepts host {host:?}",
                    request.port
                )
            });
            return respond(None, None, 404, LocalReason::NoListener);
        };
        tracer.note(|| {
            format!(
                "listener {:?} (port {}, hostname {}) accepts host {host:?}",
                listener.name,
                listener.port,
                listener.hostname.as_deref().unwrap_or("<any>")
            )
        });

        let (path, query) = split_query(request.path);
        let mut winner: Option<&'a Candidate> = None;
        listener
            .hosts
            .visit(&host, path, &mut |host_hit, id, path_hit| {
                let Some(candidate) = self.candidates.get(id as usize) else {
                    return false;
                };
                let verdict = self.check(candidate, request, query);
                if tracer.enabled() {
                    let bucket = match host_hit {
                        HostHit::Exact(h) => format!("hostname {h}"),
                        HostHit::Wildcard(s) => format!("hostname *{s}"),
                        HostHit::Any => "any hostname".to_owned(),
                    };
                    let how = match path_hit {
                        PathHit::Exact => format!("Exact {:?}", candidate.path.value),
                        PathHit::Regex => format!("RegularExpression {:?}", candidate.path.value),
                        PathHit::Prefix(p) => format!("PathPrefix {p:?}"),
                    };
                    let who = self.describe_candidate(candidate);
                    tracer.note(|| match &verdict {
                        Ok(()) => format!("  {who} [{bucket}, path {how}]: matches"),
                        Err(why) => format!("  {who} [{bucket}, path {how}]: {why}"),
                    });
                }
                if verdict.is_ok() {
                    winner = Some(candidate);
                    true
                } else {
                    false
                }
            });

        let Some(candidate) = winner else {
            tracer.note(|| "404: no route rule matches".to_owned());
            return respond(Some(listener), None, 404, LocalReason::NoRoute);
        };
        let Some(rule) = self.rules.get(candidate.rule as usize) else {
            return respond(Some(listener), None, 500, LocalReason::NoBackends);
        };
        let identity = self.identity(rule, candidate);
        tracer.note(|| format!("selected {identity} matches[{}]", candidate.match_index));
        let context = Context {
            request,
            listener,
            candidate,
            host: raw_host,
            identity,
        };
        self.apply_rule(&context, rule, random, tracer)
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

    /// Method, header and query conditions of one candidate (the index already checked host and path).
    fn check<H: AsRef<str>>(
        &self,
        c: &Candidate,
        request: &Request<'_, H>,
        query: Option<&str>,
    ) -> Result<(), String> {
        if let Some(method) = &c.method
            && **method != *request.method
        {
            return Err(format!("method {} is not {method}", request.method));
        }
        for header in c.headers.iter() {
            if !header.holds(request.headers) {
                return Err(format!(
                    "header {} {} does not hold",
                    header.name,
                    header.value.describe()
                ));
            }
        }
        for param in c.query.iter() {
            if !param.holds(query) {
                return Err(format!(
                    "query parameter {} {} does not hold",
                    param.name,
                    param.value.describe()
                ));
            }
        }
        Ok(())
    }

    fn describe_candidate(&self, c: &Candidate) -> String {
        match self.rules.get(c.rule as usize) {
            Some(rule) => format!("{} matches[{}]", self.identity(rule, c), c.match_index),
            None => "?".to_owned(),
        }
    }

    fn identity<'a>(&'a self, rule: &'a CompiledRule, c: &Candidate) -> RouteIdentity<'a> {
        let route = self.routes.get(rule.route as usize);
        RouteIdentity {
            namespace: route.map_or("", |r| r.namespace.as_str()),
            name: route.map_or("", |r| r.name.as_str()),
            rule_index: rule.index as usize,
            rule_name: rule.name.as_deref(),
            match_index: c.match_index as usize,
        }
    }

    fn apply_rule<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        rule: &'a CompiledRule,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Decision<'a> {
        let mut edits = Edits::default();
        if let Some(done) = self.apply_filters(cx, &rule.filters, &mut edits, random, tracer) {
            return done;
        }
        if rule.total_weight == 0 {
            tracer.note(|| "500: the rule has no backendRefs with a weight above 0".to_owned());
            return respond(
                Some(cx.listener),
                Some(cx.identity),
                500,
                LocalReason::NoBackends,
            );
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
        let Some(backend_ref) = picked else {
            return respond(
                Some(cx.listener),
                Some(cx.identity),
                500,
                LocalReason::NoBackends,
            );
        };
        let Some(backend) = self.backends.get(backend_ref.backend as usize) else {
            return respond(
                Some(cx.listener),
                Some(cx.identity),
                500,
                LocalReason::NoBackends,
            );
        };
        let Some(upstream) = backend.upstream.as_deref() else {
            tracer.note(|| {
                format!(
                    "500: picked backend {} is invalid ({})",
                    backend.key, backend.invalid_reason
                )
            });
            return respond(
                Some(cx.listener),
                Some(cx.identity),
                500,
                LocalReason::InvalidBackend {
                    backend: &backend.key,
                    reason: &backend.invalid_reason,
                },
            );
        };
        tracer.note(|| {
            format!(
                "backend {} (weight {} of {}) → upstream {upstream}",
                backend.key, backend_ref.weight, rule.total_weight
            )
        });
        if let Some(done) = self.apply_filters(cx, &backend_ref.filters, &mut edits, random, tracer)
        {
            return done;
        }
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
                request_timeout_ms: rule.request_timeout_ms,
                backend_request_timeout_ms: rule.backend_request_timeout_ms,
                retry: rule.retry.as_ref().map(|r| RetryPolicy {
                    attempts: r.attempts,
                    codes: &r.codes,
                    backoff_ms: r.backoff_ms,
                }),
                mirrors: edits.mirrors,
            }),
        }
    }

    /// Applies filters in order; returns a decision when one of them answers the request itself.
    fn apply_filters<'a, H: AsRef<str>, T: Tracer>(
        &'a self,
        cx: &Context<'a, '_, H>,
        filters: &'a [CompiledFilter],
        edits: &mut Edits<'a>,
        random: &mut impl RandomSource,
        tracer: &mut T,
    ) -> Option<Decision<'a>> {
        for filter in filters {
            match filter {
                CompiledFilter::Unresolved(reason) => {
                    tracer.note(|| format!("500: unresolved filter ({reason})"));
                    return Some(respond(
                        Some(cx.listener),
                        Some(cx.identity),
                        500,
                        LocalReason::UnresolvedFilter { reason },
                    ));
                }
                CompiledFilter::RequestHeaders(m) => {
                    push_edits(m, &mut edits.request);
                    tracer.note(|| format!("RequestHeaderModifier: {}", describe_modifier(m)));
                }
                CompiledFilter::ResponseHeaders(m) => {
                    push_edits(m, &mut edits.response);
                    tracer.note(|| format!("ResponseHeaderModifier: {}", describe_modifier(m)));
                }
                CompiledFilter::Rewrite(rewrite) => {
                    if let Some(hostname) = &rewrite.hostname {
                        edits.authority = Some(hostname);
                    }
                    if let Some(modifier) = &rewrite.path {
                        edits.path = Some(self.modified_path(cx, modifier));
                    }
                    tracer.note(|| {
                        format!(
                            "URLRewrite: host {} path {}",
                            edits.authority.unwrap_or("<unchanged>"),
                            edits.path.as_deref().unwrap_or("<unchanged>")
                        )
                    });
                }
                CompiledFilter::Redirect(redirect) => {
                    let location = self.location(cx, redirect);
                    let status = redirect.status_code.unwrap_or(302);
                    tracer.note(|| format!("RequestRedirect: {status} to {location}"));
                    return Some(Decision {
                        listener: Some(&cx.listener.name),
                        route: Some(cx.identity),
                        action: Action::Redirect(Redirect {
                            status,
                            location,
                            response_headers: std::mem::take(&mut edits.response),
                        }),
                    });
                }
                CompiledFilter::Mirror {
                    backend,
                    numerator,
                    denominator,
                } => {
                    let Some(target) = self.backends.get(*backend as usize) else {
                        continue;
                    };
                    let sampled = *numerator >= *denominator
                        || (*numerator > 0
                            && below(random.next_u64(), u64::from(*denominator))
                                < u64::from(*numerator));
                    match (&target.upstream, sampled) {
                        (Some(upstream), true) => {
                            edits.mirrors.push(Mirror {
                                backend: &target.key,
                                upstream,
                            });
                            tracer.note(|| format!("RequestMirror: copy to {}", target.key));
                        }
                        (None, _) => tracer.note(|| {
                            format!("RequestMirror: {} is invalid, not mirrored", target.key)
                        }),
                        (_, false) => tracer.note(|| {
                            format!("RequestMirror: {} not sampled this time", target.key)
                        }),
                    }
                }
                CompiledFilter::Cors(cors) => {
                    let Some(origin) = cx.request.header("origin") else {
                        continue;
                    };
                    let requested_method = cx.request.header("access-control-request-method");
                    if cx.request.method == "OPTIONS" && requested_method.is_some() {
                        let headers = cors.preflight_headers(
                            origin,
                            requested_method,
                            cx.request.header("access-control-request-headers"),
                        );
                        tracer.note(|| {
                            format!(
                                "CORS: preflight from {origin:?} answered ({} allowed)",
                                if headers.is_empty() { "not" } else { "origin" }
                            )
                        });
                        return Some(Decision {
                            listener: Some(&cx.listener.name),
                            route: Some(cx.identity),
                            action: Action::Respond(LocalResponse {
                                status: 200,
                                reason: LocalReason::CorsPreflight,
                                headers,
                            }),
                        });
                    }
                    cors.response_headers(origin, &mut edits.response);
                    tracer.note(|| {
                        format!(
                            "CORS: origin {origin:?} {}",
                            if cors.allows(origin) {
                                "allowed"
                            } else {
                                "not allowed"
                            }
                        )
                    });
                }
            }
        }
        None
    }

    /// Applies a path modifier to the request path, keeping the query.
    fn modified_path<H: AsRef<str>>(
        &self,
        cx: &Context<'_, '_, H>,
        modifier: &PathModifier,
    ) -> String {
        let (path, query) = split_query(cx.request.path);
        let mut out = match modifier {
            PathModifier::ReplaceFullPath { replace_full_path } => replace_full_path.clone(),
            PathModifier::ReplacePrefixMatch {
                replace_prefix_match,
            } => {
                let matched = match cx.candidate.path.kind {
                    PathMatchType::PathPrefix => cx.candidate.path.value.trim_end_matches('/'),
                    _ => "",
                };
                let rest = path.get(matched.len()..).unwrap_or("");
                let mut out = replace_prefix_match.trim_end_matches('/').to_owned();
                out.push_str(rest);
                if out.is_empty() {
                    out.push('/');
                }
                out
            }
        };
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    /// The `Location` of a redirect, following the spec's scheme and port rules.
    fn location<H: AsRef<str>>(
        &self,
        cx: &Context<'_, '_, H>,
        redirect: &RequestRedirect,
    ) -> String {
        let scheme = redirect
            .scheme
            .as_deref()
            .unwrap_or(cx.listener.protocol.scheme());
        let host = redirect.hostname.as_deref().unwrap_or(cx.host);
        // "If no port is specified, the redirect port MUST be derived using the following rules:
        // if redirect scheme is not-empty, the redirect port MUST be the well-known port associated
        // with the redirect scheme [...]. If redirect scheme is empty, the redirect port MUST be the
        // Gateway Listener port."
        let port = match (redirect.port, redirect.scheme.as_deref()) {
            (Some(port), _) => port,
            (None, Some("https")) => 443,
            (None, Some(_)) => 80,
            (None, None) => cx.listener.port,
        };
        let path = match &redirect.path {
            Some(modifier) => self.modified_path(cx, modifier),
            None => cx.request.path.to_owned(),
        };
        // "Implementations SHOULD NOT add the port number in the 'Location' header" for http:80
        // and https:443.
        let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
        if default_port {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}:{port}{path}")
        }
    }
}

/// What evaluation needs to carry from matching into the filters.
struct Context<'a, 'r, H: AsRef<str>> {
    request: &'r Request<'a, H>,
    listener: &'a CompiledListener,
    candidate: &'a Candidate,
    /// The request host without port, as sent (redirects keep the client's spelling).
    host: &'a str,
    identity: RouteIdentity<'a>,
}

#[derive(Default)]
struct Edits<'a> {
    request: Vec<HeaderEdit<'a>>,
    response: Vec<HeaderEdit<'a>>,
    path: Option<String>,
    authority: Option<&'a str>,
    mirrors: Vec<Mirror<'a>>,
}

fn push_edits<'a>(m: &'a HeaderModifier, out: &mut Vec<HeaderEdit<'a>>) {
    out.reserve(m.set.len() + m.add.len() + m.remove.len());
    out.extend(
        m.set
            .iter()
            .map(|h| HeaderEdit::Set(&h.name, Cow::Borrowed(h.value.as_str()))),
    );
    out.extend(
        m.add
            .iter()
            .map(|h| HeaderEdit::Add(&h.name, Cow::Borrowed(h.value.as_str()))),
    );
    out.extend(m.remove.iter().map(|n| HeaderEdit::Remove(n)));
}

fn describe_modifier(m: &HeaderModifier) -> String {
    let mut parts = Vec::new();
    parts.extend(
        m.set
            .iter()
            .map(|h| format!("set {}={:?}", h.name, h.value)),
    );
    parts.extend(
        m.add
            .iter()
            .map(|h| format!("add {}={:?}", h.name, h.value)),
    );
    parts.extend(m.remove.iter().map(|n| format!("remove {n}")));
    parts.join(", ")
}

fn respond<'a>(
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
        }),
    }
}

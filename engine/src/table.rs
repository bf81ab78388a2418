//! Compilation: a validated PluginConfig becomes a [`RouteTable`], built once per config push and
//! then only read by every request.
//!
//! Precedence (Gateway API HTTPRouteRule, in the spec's order), continuing on ties:
//! 1. hostname: an exact hostname match, then wildcards by length, then routes without hostnames;
//! 2. path: `Exact`, then `RegularExpression` (longer patterns first — the spec leaves regex
//!    precedence to implementations; we place it between Exact and PathPrefix, as Envoy Gateway
//!    does), then `PathPrefix` by number of characters;
//! 3. a method match; 4. more header matches; 5. more query parameter matches;
//! 6. the oldest route (creationTimestamp); 7. `namespace/name` alphabetically;
//! 8. the first rule in the route, then the first match in the rule.

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;

use crate::config::*;
use crate::cors::CompiledCors;
use crate::error::{ConfigError, JsonPath};
use crate::index::HostIndex;
use crate::matchers::{HeaderCondition, QueryCondition, ValueMatcher, compile_full_match};
use crate::time::{Timestamp, parse_duration_ms, parse_rfc3339};
use crate::validate::validate;

/// A compiled, immutable route table for one Gateway.
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) revision: String,
    pub(crate) gateway: ObjectRef,
    pub(crate) listeners: Vec<CompiledListener>,
    pub(crate) routes: Vec<RouteMeta>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) backends: Vec<CompiledBackend>,
}

#[derive(Debug)]
pub(crate) struct CompiledListener {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) hostname: Option<String>,
    pub(crate) hosts: HostIndex,
}

#[derive(Debug)]
pub(crate) struct RouteMeta {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// `(false, ts)` sorts before `(true, _)`: routes with a timestamp before routes without.
    created: (bool, Timestamp),
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) route: u32,
    pub(crate) index: u32,
    pub(crate) name: Option<String>,
    pub(crate) filters: Vec<CompiledFilter>,
    pub(crate) backends: Vec<CompiledBackendRef>,
    pub(crate) total_weight: u64,
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
    pub(crate) upstream: Option<String>,
    pub(crate) invalid_reason: String,
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
        validate(config)?;
        let root = JsonPath::ROOT;

        let mut backend_ids = HashMap::with_capacity(config.backends.len());
        let mut backends = Vec::with_capacity(config.backends.len());
        for (key, backend) in &config.backends {
            backend_ids.insert(key.as_str(), backends.len() as u32);
            backends.push(CompiledBackend {
                key: key.clone(),
                upstream: backend.upstream.clone(),
                invalid_reason: backend
                    .invalid
                    .as_ref()
                    .map(|i| i.reason.clone())
                    .unwrap_or_default(),
            });
        }
        let backend_id = |key: &str| backend_ids.get(key).copied().unwrap_or(0);

        let mut listeners: Vec<CompiledListener> = config
            .listeners
            .iter()
            .map(|l| CompiledListener {
                name: l.name.clone(),
                port: l.port,
                protocol: l.protocol,
                hostname: l.hostname.clone(),
                hosts: HostIndex::default(),
            })
            .collect();
        let listener_ids: HashMap<&str, usize> = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), i))
            .collect();

        let mut routes = Vec::with_capacity(config.routes.len());
        let mut rules = Vec::new();
        let mut candidates = Vec::new();
        for (route_index, route) in config.routes.iter().enumerate() {
            let created = match &route.creation_timestamp {
                Some(ts) => (false, parse_rfc3339(ts).unwrap_or_default()),
                None => (true, Timestamp::default()),
            };
            routes.push(RouteMeta {
                namespace: route.namespace.clone(),
                name: route.name.clone(),
                created,
            });
            let route_path_parent = root.field("routes");
            let route_path = route_path_parent.index(route_index);
            for (rule_index, rule) in route.rules.iter().enumerate() {
                let rule_path_parent = route_path.field("rules");
                let rule_path = rule_path_parent.index(rule_index);
                let rule_id = rules.len() as u32;
                rules.push(compile_rule(
                    route_index as u32,
                    rule_index as u32,
                    rule,
                    &backend_id,
                ));
                let default_match = [Match::default()];
                let matches = if rule.matches.is_empty() {
                    &default_match[..]
                } else {
                    &rule.matches[..]
                };
                for (match_index, m) in matches.iter().enumerate() {
                    let match_path_parent = rule_path.field("matches");
                    let match_path = match_path_parent.index(match_index);
                    let candidate_id = candidates.len() as u32;
                    let candidate = compile_match(rule_id, match_index as u32, m, &match_path)?;
                    let path_regex = match candidate.path.kind {
                        PathMatchType::RegularExpression => Some(
                            compile_full_match(&candidate.path.value)
                                .map_err(|e| match_path.field("path").field("value").error(e))?,
                        ),
                        _ => None,
                    };
                    for parent in &route.parents {
                        let Some(&listener) = listener_ids.get(parent.listener.as_str()) else {
                            continue;
                        };
                        let Some(listener) = listeners.get_mut(listener) else {
                            continue;
                        };
                        let hostnames: Vec<Option<&str>> = if parent.hostnames.is_empty() {
                            vec![None]
                        } else {
                            parent.hostnames.iter().map(|h| Some(h.as_str())).collect()
                        };
                        for hostname in hostnames {
                            let bucket = listener.hosts.bucket(hostname);
                            match (&path_regex, candidate.path.kind) {
                                (Some(regex), _) => {
                                    bucket.insert_regex(regex.clone(), candidate_id)
                                }
                                (None, PathMatchType::Exact) => {
                                    bucket.insert_exact(&candidate.path.value, candidate_id)
                                }
                                (None, _) => {
                                    bucket.insert_prefix(&candidate.path.value, candidate_id)
                                }
                            }
                        }
                    }
                    candidates.push(candidate);
                }
            }
        }

        let order = |a: u32, b: u32| precedence(&candidates, &rules, &routes, a, b);
        for listener in &mut listeners {
            listener.hosts.sort(&order);
        }

        Ok(RouteTable {
            revision: config.revision.clone(),
            gateway: config.gateway.clone(),
            listeners,
            routes,
            rules,
            candidates,
            backends,
        })
    }

    /// The producer's revision string of the config this table was compiled from.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The Gateway this table routes for.
    pub fn gateway(&self) -> &ObjectRef {
        &self.gateway
    }

    /// Counts for logs: (listeners, routes, rules, match candidates).
    pub fn stats(&self) -> (usize, usize, usize, usize) {
        (
            self.listeners.len(),
            self.routes.len(),
            self.rules.len(),
            self.candidates.len(),
        )
    }

    /// Every upstream name the table can forward or mirror to (for host-side sanity checks).
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.backends.iter().filter_map(|b| b.upstream.as_deref())
    }
}

/// Precedence after the hostname and path criteria (which the index applies itself).
fn precedence(
    candidates: &[Candidate],
    rules: &[CompiledRule],
    routes: &[RouteMeta],
    a: u32,
    b: u32,
) -> Ordering {
    let key = |id: u32| {
        let c = candidates.get(id as usize);
        let rule = c.and_then(|c| rules.get(c.rule as usize));
        let route = rule.and_then(|r| routes.get(r.route as usize));
        (
            Reverse(c.is_some_and(|c| c.method.is_some())),
            Reverse(c.map_or(0, |c| c.headers.len())),
            Reverse(c.map_or(0, |c| c.query.len())),
            route.map(|r| r.created),
            route.map(|r| (r.namespace.as_str(), r.name.as_str())),
            rule.map(|r| r.index),
            c.map(|c| c.match_index),
        )
    };
    key(a).cmp(&key(b))
}

fn compile_match(
    rule: u32,
    match_index: u32,
    m: &Match,
    path: &JsonPath<'_>,
) -> Result<Candidate, ConfigError> {
    let mut headers: Vec<HeaderCondition> = Vec::with_capacity(m.headers.len());
    for (i, h) in m.headers.iter().enumerate() {
        let name = h.name.to_ascii_lowercase();
        // "If multiple entries specify equivalent header names, only the first entry with an
        // equivalent name MUST be considered for a match."
        if headers.iter().any(|c| *c.name == *name) {
            continue;
        }
        let value = ValueMatcher::new(h.kind, &h.value)
            .map_err(|e| path.field("headers").index(i).field("value").error(e))?;
        headers.push(HeaderCondition {
            name: name.into(),
            value,
        });
    }
    let mut query: Vec<QueryCondition> = Vec::with_capacity(m.query_params.len());
    for (i, q) in m.query_params.iter().enumerate() {
        if query.iter().any(|c| *c.name == *q.name) {
            continue;
        }
        let value = ValueMatcher::new(q.kind, &q.value)
            .map_err(|e| path.field("queryParams").index(i).field("value").error(e))?;
        query.push(QueryCondition {
            name: q.name.as_str().into(),
            value,
        });
    }
    Ok(Candidate {
        rule,
        match_index,
        path: m.path.clone().unwrap_or_default(),
        method: m.method.as_deref().map(Into::into),
        headers: headers.into_boxed_slice(),
        query: query.into_boxed_slice(),
    })
}

fn compile_rule(
    route: u32,
    index: u32,
    rule: &Rule,
    backend_id: &impl Fn(&str) -> u32,
) -> CompiledRule {
    let backends: Vec<CompiledBackendRef> = rule
        .backend_refs
        .iter()
        .map(|b| CompiledBackendRef {
            backend: backend_id(&b.backend),
            weight: b.weight,
            filters: compile_filters(&b.filters, backend_id),
        })
        .collect();
    let timeouts = rule.timeouts.as_ref();
    CompiledRule {
        route,
        index,
        name: rule.name.clone(),
        filters: compile_filters(&rule.filters, backend_id),
        total_weight: backends.iter().map(|b| u64::from(b.weight)).sum(),
        backends,
        // Validation already parsed these durations; a failure here cannot happen.
        request_timeout_ms: timeouts
            .and_then(|t| t.request.as_deref())
            .and_then(|d| parse_duration_ms(d).ok()),
        backend_request_timeout_ms: timeouts
            .and_then(|t| t.backend_request.as_deref())
            .and_then(|d| parse_duration_ms(d).ok()),
        retry: rule.retry.as_ref().map(|r| CompiledRetry {
            attempts: r.attempts.unwrap_or(0),
            codes: r.codes.clone(),
            backoff_ms: r.backoff.as_deref().and_then(|d| parse_duration_ms(d).ok()),
        }),
    }
}

fn compile_filters(filters: &[Filter], backend_id: &impl Fn(&str) -> u32) -> Vec<CompiledFilter> {
    filters
        .iter()
        .map(|f| match f {
            Filter::RequestHeaderModifier {
                request_header_modifier,
            } => CompiledFilter::RequestHeaders(request_header_modifier.clone()),
            Filter::ResponseHeaderModifier {
                response_header_modifier,
            } => CompiledFilter::ResponseHeaders(response_header_modifier.clone()),
            Filter::RequestRedirect { request_redirect } => {
                CompiledFilter::Redirect(request_redirect.clone())
            }
            Filter::UrlRewrite { url_rewrite } => CompiledFilter::Rewrite(url_rewrite.clone()),
            Filter::RequestMirror { request_mirror } => {
                let (numerator, denominator) =
                    match (request_mirror.percent, request_mirror.fraction) {
                        (Some(p), _) => (p, 100),
                        (None, Some(f)) => (f.numerator, f.denominator),
                        (None, None) => (1, 1),
                    };
                CompiledFilter::Mirror {
                    backend: backend_id(&request_mirror.backend),
                    numerator,
                    denominator,
                }
            }
            Filter::Cors { cors } => CompiledFilter::Cors(Box::new(CompiledCors::new(cors))),
            Filter::Unresolved { reason } => CompiledFilter::Unresolved(reason.clone()),
        })
        .collect()
}

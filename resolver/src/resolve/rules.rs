//! An HTTPRoute's rules → the engine's rules, defaults filled in exactly as the API server would,
//! so a route written without defaults resolves like its defaulted form.
//!
//! Rules the engine would reject are dropped, following the spec (GatewayListeners.allowedRoutes):
//! "All valid rules within a Route attached to this Listener should be implemented. Invalid Route
//! rules can be ignored (sometimes that will mean the full Route). ... even if a filter specified by
//! a Route rule is invalid, the rest of the rules within that Route should still be supported." and
//! (HTTPRouteRule.filters): "If all Route Rules in a Route are invalid, the entire Route would be
//! considered invalid. If only a portion of Route Rules are invalid, implementations MUST set the
//! "PartiallyInvalid" condition for the Route." That includes a `ReplacePrefixMatch` on a rule with
//! a non-`PathPrefix` match, whose own field doc asks for Accepted=False: we reject the rule, and
//! the route only when no valid rule is left, so one bad rule cannot take down a route's others.

use crate::api::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesMethod, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType,
};
use engine::config::{
    BackendRef, GrpcRule, HeaderMatch, Match, ObjectRef, PathMatch, PathMatchType, PluginConfig,
    QueryParamMatch, Retry, Route, Rule, SCHEMA_VERSION, Timeouts, UpstreamSelector,
    ValueMatchType,
};

use super::backends::{self, Backends};
use super::conditions::{Problem, route as reason};
use super::filters::{self, Context};
use super::{Lookup, namespace};

/// A route's valid rules, in order, in the engine's shape for its kind.
#[derive(Debug)]
pub enum Rules {
    Http(Vec<Rule>),
    Grpc(Vec<GrpcRule>),
}

impl Default for Rules {
    fn default() -> Self {
        Rules::Http(Vec::new())
    }
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        match self {
            Rules::Http(rules) => rules.is_empty(),
            Rules::Grpc(rules) => rules.is_empty(),
        }
    }
}

/// A route's rules as the data plane gets them.
#[derive(Debug, Default)]
pub struct Converted {
    /// The valid rules, in order.
    pub rules: Rules,
    /// Invalid rules: index and why.
    pub dropped: Vec<(usize, Problem)>,
    /// Backends of the valid rules, and the first ResolvedRefs problem of any rule.
    pub backends: Backends,
    /// Accepted-but-not-implemented notes for the Accepted message.
    pub notes: Vec<String>,
}

/// A rule's filters and backendRefs (weights defaulted, targets resolved, backend filters), and a
/// note for `sessionPersistence`, for the generated rule types of HTTPRoute and GRPCRoute alike
/// (same field names); `$rule_filter` and `$backend_filter` convert one filter of each level.
/// Returns `(filters, backend_refs)`; a filter or weight that cannot be converted returns the
/// rule's problem from the enclosing function.
macro_rules! filters_and_backend_refs {
    ($lookup:expr, $route_namespace:expr, $i:expr, $rule:expr, $backends:expr, $notes:expr,
     $rule_filter:path, $backend_filter:path) => {{
        let (lookup, route_namespace, i, rule) = ($lookup, $route_namespace, $i, $rule);
        let backends: &mut Backends = $backends;
        let notes: &mut Vec<String> = $notes;
        let mut filters = Vec::new();
        for (j, f) in rule.filters.iter().flatten().enumerate() {
            let mut cx = Context {
                lookup,
                route_namespace,
                backends,
                notes,
                location: format!("rules[{i}].filters[{j}]"),
            };
            filters.push($rule_filter(f, &mut cx)?);
        }

        let mut backend_refs = Vec::new();
        for (j, b) in rule.backend_refs.iter().flatten().enumerate() {
            // "If unspecified, weight defaults to 1."
            let weight = u32::try_from(b.weight.unwrap_or(1)).map_err(|_| {
                Problem::new(
                    reason::UNSUPPORTED_VALUE,
                    format!("rules[{i}].backendRefs[{j}].weight is negative"),
                )
            })?;
            let backend = backends.add(
                lookup,
                route_namespace,
                backends::Ref {
                    group: b.group.as_deref(),
                    kind: b.kind.as_deref(),
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    port: b.port,
                },
            );
            let mut backend_filters = Vec::new();
            for (k, f) in b.filters.iter().flatten().enumerate() {
                let mut cx = Context {
                    lookup,
                    route_namespace,
                    backends,
                    notes,
                    location: format!("rules[{i}].backendRefs[{j}].filters[{k}]"),
                };
                backend_filters.push($backend_filter(f, &mut cx)?);
            }
            backend_refs.push(BackendRef {
                backend,
                weight,
                filters: backend_filters,
            });
        }

        if rule.session_persistence.is_some() {
            notes.push(format!(
                "rules[{i}].sessionPersistence is not supported and is ignored"
            ));
        }
        (filters, backend_refs)
    }};
}
pub(super) use filters_and_backend_refs;

/// Converts every rule of a route.
pub fn convert(lookup: &Lookup<'_>, route: &HttpRoute) -> Converted {
    let route_namespace = namespace(&route.metadata);
    let mut out = Converted::default();
    let mut valid = Vec::new();
    // "+kubebuilder:default={{matches: {{path: {type: "PathPrefix", value: "/"}}}}}": a route
    // without rules gets one that matches everything and, having no backendRefs, answers 500.
    let default_rules = [HttpRouteRules::default()];
    let rules = route.spec.rules.as_deref().unwrap_or(&default_rules);
    for (i, rule) in rules.iter().enumerate() {
        let mut backends = Backends::default();
        let mut notes = Vec::new();
        let converted = convert_rule(lookup, route_namespace, i, rule, &mut backends, &mut notes)
            .and_then(|r| engine_check(i, r, &backends.entries));
        out.keep(i, converted, &mut valid, backends, notes);
    }
    out.rules = Rules::Http(valid);
    out
}

impl Converted {
    /// Records rule `i`: kept with its backends and notes, or dropped with its problem. A
    /// ResolvedRefs problem counts either way.
    pub fn keep<R>(
        &mut self,
        i: usize,
        converted: Result<R, Problem>,
        valid: &mut Vec<R>,
        mut backends: Backends,
        mut notes: Vec<String>,
    ) {
        if let Some(problem) = backends.problem.take() {
            self.backends.problem.get_or_insert(problem);
        }
        match converted {
            Ok(r) => {
                valid.push(r);
                self.backends.entries.append(&mut backends.entries);
                self.backends.targets.append(&mut backends.targets);
                self.notes.append(&mut notes);
            }
            Err(problem) => self.dropped.push((i, problem)),
        }
    }
}

fn convert_rule(
    lookup: &Lookup<'_>,
    route_namespace: &str,
    i: usize,
    rule: &HttpRouteRules,
    backends: &mut Backends,
    notes: &mut Vec<String>,
) -> Result<Rule, Problem> {
    let matches: Vec<Match> = match rule.matches.as_deref() {
        None | Some([]) => vec![default_match()],
        Some(matches) => matches.iter().map(convert_match).collect(),
    };

    let (filters, backend_refs) = filters_and_backend_refs!(
        lookup,
        route_namespace,
        i,
        rule,
        backends,
        notes,
        filters::rule_filter,
        filters::backend_filter
    );

    Ok(Rule {
        name: rule.name.clone(),
        matches,
        filters,
        backend_refs,
        timeouts: rule.timeouts.as_ref().map(|t| {
            Box::new(Timeouts {
                request: t.request.clone(),
                backend_request: t.backend_request.clone(),
            })
        }),
        retry: rule
            .retry
            .as_ref()
            .map(|r| convert_retry(i, r).map(Box::new))
            .transpose()?,
    })
}

fn convert_retry(
    i: usize,
    r: &crate::api::httproutes::HttpRouteRulesRetry,
) -> Result<Retry, Problem> {
    let bad = |what: String| {
        Problem::new(
            reason::UNSUPPORTED_VALUE,
            format!("rules[{i}].retry.{what}"),
        )
    };
    Ok(Retry {
        attempts: r
            .attempts
            .map(|a| u32::try_from(a).map_err(|_| bad(format!("attempts {a} is negative"))))
            .transpose()?,
        codes: r
            .codes
            .iter()
            .flatten()
            .map(|c| u16::try_from(*c).map_err(|_| bad(format!("codes: {c} is not a status code"))))
            .collect::<Result<_, _>>()?,
        backoff: r.backoff.clone(),
    })
}

/// HTTPRouteMatch `path`: "+kubebuilder:default={type: "PathPrefix", value: "/"}".
fn default_match() -> Match {
    Match {
        path: Some(PathMatch::default()),
        ..Match::default()
    }
}

fn convert_match(m: &HttpRouteRulesMatches) -> Match {
    let path = match &m.path {
        None => PathMatch::default(),
        Some(p) => PathMatch {
            // HTTPPathMatch: type "+kubebuilder:default=PathPrefix", value "+kubebuilder:default="/"".
            kind: match p.r#type {
                None | Some(HttpRouteRulesMatchesPathType::PathPrefix) => PathMatchType::PathPrefix,
                Some(HttpRouteRulesMatchesPathType::Exact) => PathMatchType::Exact,
                Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                    PathMatchType::RegularExpression
                }
            },
            value: p.value.clone().unwrap_or_else(|| "/".to_owned()),
        },
    };
    let headers = first_of_each_name(m.headers.iter().flatten().map(|h| HeaderMatch {
        kind: match h.r#type {
            None | Some(HttpRouteRulesMatchesHeadersType::Exact) => ValueMatchType::Exact,
            Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => {
                ValueMatchType::RegularExpression
            }
        },
        name: h.name.clone(),
        value: h.value.clone(),
    }));
    // "If multiple entries specify equivalent query param names, only the first entry with an
    // equivalent name MUST be considered for a match." Query parameter names are case-sensitive.
    let mut query_params: Vec<QueryParamMatch> = Vec::new();
    for q in m.query_params.iter().flatten() {
        if query_params.iter().any(|x| x.name == q.name) {
            continue;
        }
        query_params.push(QueryParamMatch {
            kind: match q.r#type {
                None | Some(HttpRouteRulesMatchesQueryParamsType::Exact) => ValueMatchType::Exact,
                Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => {
                    ValueMatchType::RegularExpression
                }
            },
            name: q.name.clone(),
            value: q.value.clone(),
        });
    }
    Match {
        path: Some(path),
        headers,
        query_params,
        method: m.method.as_ref().map(|m| method(m).to_owned()),
    }
}

/// HTTPHeaderMatch and GRPCHeaderMatch: "If multiple entries specify equivalent header names, the
/// first entry with an equivalent name MUST be considered for a match. Subsequent entries with an
/// equivalent header name MUST be ignored. Due to the case-insensitivity of header names, "foo"
/// and "Foo" are considered equivalent."
pub(super) fn first_of_each_name(headers: impl Iterator<Item = HeaderMatch>) -> Vec<HeaderMatch> {
    let mut out: Vec<HeaderMatch> = Vec::new();
    for h in headers {
        if !out.iter().any(|x| x.name.eq_ignore_ascii_case(&h.name)) {
            out.push(h);
        }
    }
    out
}

fn method(m: &HttpRouteRulesMatchesMethod) -> &'static str {
    match m {
        HttpRouteRulesMatchesMethod::Get => "GET",
        HttpRouteRulesMatchesMethod::Head => "HEAD",
        HttpRouteRulesMatchesMethod::Post => "POST",
        HttpRouteRulesMatchesMethod::Put => "PUT",
        HttpRouteRulesMatchesMethod::Delete => "DELETE",
        HttpRouteRulesMatchesMethod::Connect => "CONNECT",
        HttpRouteRulesMatchesMethod::Options => "OPTIONS",
        HttpRouteRulesMatchesMethod::Trace => "TRACE",
        HttpRouteRulesMatchesMethod::Patch => "PATCH",
    }
}

/// Asks the engine whether it accepts this rule on its own (validation and regex compilation), so
/// the whole Gateway config is never rejected because of one rule. The error names the rule the
/// way a user reads the route (`rules[2].matches[0].path.value: ...`).
fn engine_check(
    i: usize,
    rule: Rule,
    backends: &std::collections::BTreeMap<String, engine::config::Backend>,
) -> Result<Rule, Problem> {
    let mut config = rule_check_config(backends);
    config.routes.push(Route {
        namespace: RULE_CHECK.to_owned(),
        name: RULE_CHECK.to_owned(),
        creation_timestamp: None,
        parents: Vec::new(),
        rules: vec![rule],
    });
    engine_verdict(i, &config, "routes[0].rules[0]")?;
    Ok(config
        .routes
        .into_iter()
        .next()
        .and_then(|r| r.rules.into_iter().next())
        .unwrap_or_default())
}

const RULE_CHECK: &str = "rule-check";

/// A config with no route yet, for checking one rule against `backends`.
pub(super) fn rule_check_config(
    backends: &std::collections::BTreeMap<String, engine::config::Backend>,
) -> PluginConfig {
    PluginConfig {
        schema_version: SCHEMA_VERSION,
        revision: String::new(),
        gateway: ObjectRef {
            namespace: RULE_CHECK.to_owned(),
            name: RULE_CHECK.to_owned(),
        },
        listeners: Vec::new(),
        routes: Vec::new(),
        grpc_routes: Vec::new(),
        backends: backends.clone(),
        upstream_selector: UpstreamSelector::default(),
        kong: None,
    }
}

/// The engine's verdict on a config holding one rule of route number `i` at `prefix`; its error
/// rewritten to the route's own path (`rules[i]...`).
pub(super) fn engine_verdict(i: usize, config: &PluginConfig, prefix: &str) -> Result<(), Problem> {
    engine::RouteTable::compile(config)
        .map(|_| ())
        .map_err(|e| {
            let path = e
                .path
                .strip_prefix(prefix)
                .map_or_else(|| e.path.clone(), |rest| format!("rules[{i}]{rest}"));
            let incompatible = e.message.contains("cannot be used together");
            Problem::new(
                if incompatible {
                    reason::INCOMPATIBLE_FILTERS
                } else {
                    reason::UNSUPPORTED_VALUE
                },
                format!("{path}: {}", e.message),
            )
        })
}

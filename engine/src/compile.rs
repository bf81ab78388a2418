//! Compilation: a validated PluginConfig becomes a [`RouteTable`], once per config push.
//!
//! In steps: backend keys become dense ids ([`Compiler::new`]); each route, rule and match is
//! compiled in turn ([`Compiler::add_route`], [`Compiler::add_rule`], [`Compiler::add_match`]); every
//! match is inserted into the hostname and path buckets of each listener its route is attached to
//! ([`Compiler::index_match`]); last, every bucket is sorted by [`Precedence`](crate::Precedence)
//! ([`Compiler::finish`]).
//!
//! Validation ran first, except for backend keys: compilation resolves each backendRef and mirror
//! key to its id anyway, so it is the one place a missing key is reported (the path and message
//! [`crate::validate`] gives on its own). An unparsable time cannot happen here; if one does anyway
//! (a validation bug), compilation fails with the JSON path and the value rather than guessing.

use std::cell::Cell;
use std::collections::HashMap;

use regex_lite::Regex;

use crate::config::*;
use crate::cors::CompiledCors;
use crate::decision::RouteKind;
use crate::error::{ConfigError, JsonPath, quoted};
use crate::grpc::{GrpcBucket, GrpcCandidate};
use crate::hash::WordStr;
use crate::index::PathIndex;
use crate::matchers::{HeaderCondition, QueryCondition, ValueMatcher, compile_full_match};
use crate::table::*;
use crate::time::{parse_duration_ms, parse_rfc3339};
use crate::validate::{BackendIds, missing_backend};

/// Compiles a config that [`crate::validate`] accepted.
pub(crate) fn compile_validated<'c>(
    config: &'c PluginConfig,
    backend_ids: BackendIds<'c>,
) -> Result<RouteTable, ConfigError> {
    let mut compiler = Compiler::new(config, backend_ids);
    let routes = JsonPath::ROOT.field("routes");
    for (index, route) in config.routes.iter().enumerate() {
        compiler.add_route(route, &routes.index(index))?;
    }
    let grpc_routes = JsonPath::ROOT.field("grpcRoutes");
    for (index, route) in config.grpc_routes.iter().enumerate() {
        compiler.add_grpc_route(route, &grpc_routes.index(index))?;
    }
    Ok(compiler.finish())
}

/// The table under construction, with the name → id maps compilation needs.
struct Compiler<'c> {
    table: RouteTable,
    backend_ids: BackendIds<'c>,
    /// The id the last backend lookup found: a route's rules and weighted refs mostly name the
    /// same backend again, and comparing the key with that backend's costs less than hashing it
    /// (SipHash, see [`BackendIds`]).
    last_backend: Cell<Option<u32>>,
    listener_ids: HashMap<&'c str, usize>,
}

impl<'c> Compiler<'c> {
    /// Step 1: backends and listeners, which routes refer to by name.
    fn new(config: &'c PluginConfig, backend_ids: BackendIds<'c>) -> Compiler<'c> {
        let mut backends = Vec::with_capacity(config.backends.len());
        for (key, backend) in &config.backends {
            backends.push(CompiledBackend::new(
                key,
                backend.upstream.as_deref(),
                backend.invalid.as_ref().map_or("", |i| i.reason.as_str()),
            ));
        }
        let listeners = config
            .listeners
            .iter()
            .map(|l| CompiledListener {
                name: l.name.clone(),
                port: l.port,
                protocol: l.protocol,
                hostname: l.hostname.clone(),
                hosts: Default::default(),
                grpc_hosts: Default::default(),
            })
            .collect();
        let listener_ids = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.as_str(), i))
            .collect();
        // The lists are sized exactly up front: grown by doubling, they would be copied about once
        // over and leave their outgrown buffers behind. A rule without matches has one (the default).
        let http_rules = config.routes.iter().flat_map(|r| &r.rules);
        let grpc_rules = config.grpc_routes.iter().flat_map(|r| &r.rules);
        Compiler {
            table: RouteTable {
                revision: config.revision.clone(),
                gateway: config.gateway.clone(),
                listeners,
                routes: Vec::with_capacity(config.routes.len() + config.grpc_routes.len()),
                rules: Vec::with_capacity(http_rules.clone().count() + grpc_rules.clone().count()),
                candidates: Vec::with_capacity(http_rules.map(|r| r.matches.len().max(1)).sum()),
                grpc_candidates: Vec::with_capacity(
                    grpc_rules.map(|r| r.matches.len().max(1)).sum(),
                ),
                backends,
            },
            backend_ids,
            last_backend: Cell::new(None),
            listener_ids,
        }
    }

    /// Step 2: one route, rule by rule.
    fn add_route(&mut self, route: &Route, path: &JsonPath<'_>) -> Result<(), ConfigError> {
        let parents = self.listeners_of(&route.parents, path)?;
        let route_id = self.add_route_meta(
            RouteKind::HTTPRoute,
            &route.namespace,
            &route.name,
            route.creation_timestamp.as_deref(),
            path,
        )?;
        let rules = path.field("rules");
        for (index, rule) in route.rules.iter().enumerate() {
            self.add_rule(route_id, index as u32, rule, &parents, &rules.index(index))?;
        }
        Ok(())
    }

    /// The identity and age of a route of either kind; its id.
    fn add_route_meta(
        &mut self,
        kind: RouteKind,
        namespace: &str,
        name: &str,
        creation_timestamp: Option<&str>,
        path: &JsonPath<'_>,
    ) -> Result<u32, ConfigError> {
        let created = match creation_timestamp {
            Some(ts) => {
                Some(parse_rfc3339(ts).map_err(|e| path.field("creationTimestamp").error(e))?)
            }
            None => None,
        };
        let route_id = self.table.routes.len() as u32;
        self.table.routes.push(RouteMeta {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            created,
        });
        Ok(route_id)
    }

    /// Step 2 for a GRPCRoute: its rules share `rules` with HTTPRoute rules (filters and weighted
    /// backends work the same); its matches are indexed in each listener's GRPCRoute buckets. "If
    /// no matches are specified, the implementation MUST match every gRPC request."
    fn add_grpc_route(
        &mut self,
        route: &GrpcRoute,
        path: &JsonPath<'_>,
    ) -> Result<(), ConfigError> {
        let parents = self.listeners_of(&route.parents, path)?;
        let route_id = self.add_route_meta(
            RouteKind::GRPCRoute,
            &route.namespace,
            &route.name,
            route.creation_timestamp.as_deref(),
            path,
        )?;
        let rules_path = path.field("rules");
        for (index, rule) in route.rules.iter().enumerate() {
            let rule_path = rules_path.index(index);
            let backends = self.compile_backend_refs(&rule.backend_refs, &rule_path)?;
            let rule_id = self.table.rules.len() as u32;
            self.table.rules.push(CompiledRule {
                route: route_id,
                index: index as u32,
                name: rule.name.clone(),
                filters: self.compile_filters(&rule.filters, &rule_path.field("filters"))?,
                total_weight: backends.iter().map(|b| u64::from(b.weight)).sum(),
                backends,
                policy: None,
            });
            let default_match = [GrpcMatch::default()];
            let matches = if rule.matches.is_empty() {
                &default_match[..]
            } else {
                &rule.matches[..]
            };
            let matches_path = rule_path.field("matches");
            for (match_index, m) in matches.iter().enumerate() {
                let candidate = GrpcCandidate::compile(
                    rule_id,
                    match_index as u32,
                    m,
                    &matches_path.index(match_index),
                )?;
                let id = self.table.grpc_candidates.len() as u32;
                for parent in &parents {
                    let Some(listener) = self.table.listeners.get_mut(parent.listener) else {
                        continue;
                    };
                    let insert = |bucket: &mut GrpcBucket| bucket.insert(&candidate, id);
                    if parent.hostnames.is_empty() {
                        listener.grpc_hosts.with_bucket(None, insert);
                    }
                    for hostname in parent.hostnames {
                        listener.grpc_hosts.with_bucket(Some(hostname), insert);
                    }
                }
                self.table.grpc_candidates.push(candidate);
            }
        }
        Ok(())
    }

    /// Step 3: one rule (filters, backends, timeouts, retry), then each of its matches. "If no
    /// matches are specified, the default is a prefix path match on "/", which has the effect of
    /// matching every HTTP request."
    fn add_rule(
        &mut self,
        route: u32,
        index: u32,
        rule: &Rule,
        parents: &[Parent<'_>],
        path: &JsonPath<'_>,
    ) -> Result<(), ConfigError> {
        let compiled = self.compile_rule(route, index, rule, path)?;
        let rule_id = self.table.rules.len() as u32;
        self.table.rules.push(compiled);
        let default_match = [Match::default()];
        let matches = if rule.matches.is_empty() {
            &default_match[..]
        } else {
            &rule.matches[..]
        };
        let matches_path = path.field("matches");
        for (index, m) in matches.iter().enumerate() {
            self.add_match(
                rule_id,
                index as u32,
                m,
                parents,
                &matches_path.index(index),
            )?;
        }
        Ok(())
    }

    /// Step 4: one match becomes a candidate, indexed under every listener the route is attached to.
    fn add_match(
        &mut self,
        rule: u32,
        index: u32,
        m: &Match,
        parents: &[Parent<'_>],
        path: &JsonPath<'_>,
    ) -> Result<(), ConfigError> {
        let candidate = compile_match(rule, index, m, path)?;
        let regex = match candidate.path.kind {
            PathMatchType::RegularExpression => Some(
                compile_full_match(&candidate.path.value)
                    .map_err(|e| path.field("path").field("value").error(e))?,
            ),
            _ => None,
        };
        let id = self.table.candidates.len() as u32;
        self.index_match(parents, id, &candidate.path, regex.as_ref());
        self.table.candidates.push(candidate);
        Ok(())
    }

    /// Step 5: the candidate goes into the bucket of each effective hostname (or the any-host
    /// bucket) of each attached listener, by path kind.
    fn index_match(
        &mut self,
        parents: &[Parent<'_>],
        id: u32,
        path: &PathMatch,
        regex: Option<&Regex>,
    ) {
        for parent in parents {
            let Some(listener) = self.table.listeners.get_mut(parent.listener) else {
                continue;
            };
            let insert = |bucket: &mut PathIndex| match (regex, path.kind) {
                (Some(regex), _) => bucket.insert_regex(regex.clone(), id),
                (None, PathMatchType::Exact) => bucket.insert_exact(&path.value, id),
                (None, _) => bucket.insert_prefix(&path.value, id),
            };
            if parent.hostnames.is_empty() {
                listener.hosts.with_bucket(None, insert);
            }
            for hostname in parent.hostnames {
                listener.hosts.with_bucket(Some(hostname), insert);
            }
        }
    }

    /// Step 6: every bucket in precedence order, so evaluation can stop at the first candidate
    /// whose conditions hold.
    fn finish(mut self) -> RouteTable {
        let mut listeners = std::mem::take(&mut self.table.listeners);
        let table = &self.table;
        for listener in &mut listeners {
            // Greatest precedence first.
            listener.hosts.sort(&|hostname, a, b| {
                table
                    .precedence(hostname, b)
                    .cmp(&table.precedence(hostname, a))
            });
            listener
                .grpc_hosts
                .for_each_bucket(&mut |hostname, bucket| {
                    bucket.sort(&|a, b| {
                        table
                            .grpc_precedence(hostname, b)
                            .cmp(&table.grpc_precedence(hostname, a))
                    });
                });
        }
        self.table.listeners = listeners;
        self.table
    }

    /// The listeners a route is attached to, by index, with its hostnames there. Validation
    /// guarantees every listener exists; a missing one is an error naming the reference.
    fn listeners_of<'r>(
        &self,
        attachments: &'r [Attachment],
        path: &JsonPath<'_>,
    ) -> Result<Vec<Parent<'r>>, ConfigError> {
        let parents_path = path.field("parents");
        let mut parents = Vec::with_capacity(attachments.len());
        for (i, parent) in attachments.iter().enumerate() {
            let listener = self.listener_ids.get(parent.listener.as_str()).copied();
            let listener = listener.ok_or_else(|| {
                parents_path.index(i).field("listener").error(format!(
                    "{} is not a listener of this config",
                    quoted(&parent.listener)
                ))
            })?;
            parents.push(Parent {
                listener,
                hostnames: &parent.hostnames,
            });
        }
        Ok(parents)
    }

    /// The id of a `backends` key. Validation guarantees the key exists; a missing one is an error
    /// naming the reference, never a silent pick of some other backend.
    fn backend(&self, key: &str, path: &JsonPath<'_>) -> Result<u32, ConfigError> {
        if let Some(last) = self.last_backend.get()
            && self
                .table
                .backends
                .get(last as usize)
                .is_some_and(|backend| WordStr(&backend.key) == WordStr(key))
        {
            return Ok(last);
        }
        let id = self
            .backend_ids
            .get(key)
            .ok_or_else(|| missing_backend(path, key))?;
        self.last_backend.set(Some(id));
        Ok(id)
    }

    fn compile_rule(
        &self,
        route: u32,
        index: u32,
        rule: &Rule,
        path: &JsonPath<'_>,
    ) -> Result<CompiledRule, ConfigError> {
        let backends = self.compile_backend_refs(&rule.backend_refs, path)?;
        let timeouts = rule.timeouts.as_ref();
        let timeouts_path = path.field("timeouts");
        let retry_path = path.field("retry");
        Ok(CompiledRule {
            route,
            index,
            name: rule.name.clone(),
            filters: self.compile_filters(&rule.filters, &path.field("filters"))?,
            total_weight: backends.iter().map(|b| u64::from(b.weight)).sum(),
            backends,
            policy: if timeouts.is_none() && rule.retry.is_none() {
                None
            } else {
                Some(Box::new(RulePolicy {
                    request_timeout_ms: duration(
                        timeouts.and_then(|t| t.request.as_deref()),
                        &timeouts_path.field("request"),
                    )?,
                    backend_request_timeout_ms: duration(
                        timeouts.and_then(|t| t.backend_request.as_deref()),
                        &timeouts_path.field("backendRequest"),
                    )?,
                    retry: match &rule.retry {
                        Some(r) => Some(CompiledRetry {
                            attempts: r.attempts.unwrap_or(0),
                            codes: r.codes.clone(),
                            backoff_ms: duration(
                                r.backoff.as_deref(),
                                &retry_path.field("backoff"),
                            )?,
                        }),
                        None => None,
                    },
                }))
            },
        })
    }

    /// A rule's `backendRefs` (at `path.backendRefs`), of either route kind.
    fn compile_backend_refs(
        &self,
        refs: &[BackendRef],
        path: &JsonPath<'_>,
    ) -> Result<Vec<CompiledBackendRef>, ConfigError> {
        let refs_path = path.field("backendRefs");
        let mut backends = Vec::with_capacity(refs.len());
        for (i, backend_ref) in refs.iter().enumerate() {
            let ref_path = refs_path.index(i);
            backends.push(CompiledBackendRef {
                backend: self.backend(&backend_ref.backend, &ref_path.field("backend"))?,
                weight: backend_ref.weight,
                filters: self.compile_filters(&backend_ref.filters, &ref_path.field("filters"))?,
            });
        }
        Ok(backends)
    }

    fn compile_filters(
        &self,
        filters: &[Filter],
        path: &JsonPath<'_>,
    ) -> Result<Vec<CompiledFilter>, ConfigError> {
        let mut compiled = Vec::with_capacity(filters.len());
        for (i, filter) in filters.iter().enumerate() {
            compiled.push(match filter {
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
                    let filter_path = path.index(i);
                    let mirror_path = filter_path.field("requestMirror");
                    let backend_path = mirror_path.field("backend");
                    let (numerator, denominator) =
                        match (request_mirror.percent, request_mirror.fraction) {
                            (Some(p), _) => (p, 100),
                            (None, Some(f)) => (f.numerator, f.denominator),
                            (None, None) => (1, 1),
                        };
                    CompiledFilter::Mirror {
                        backend: self.backend(&request_mirror.backend, &backend_path)?,
                        numerator,
                        denominator,
                    }
                }
                Filter::Cors { cors } => CompiledFilter::Cors(Box::new(CompiledCors::new(cors))),
                Filter::Unresolved { reason } => CompiledFilter::Unresolved(reason.clone()),
            });
        }
        Ok(compiled)
    }
}

/// One attachment of a route: the listener's index and the route's effective hostnames there.
struct Parent<'r> {
    listener: usize,
    hostnames: &'r [String],
}

/// A GEP-2257 duration in milliseconds, when present.
fn duration(text: Option<&str>, path: &JsonPath<'_>) -> Result<Option<u64>, ConfigError> {
    text.map(|d| parse_duration_ms(d).map_err(|e| path.error(e)))
        .transpose()
}

/// One match: the path as written, the method, and the header and query conditions. "If multiple
/// entries specify equivalent header names, only the first entry with an equivalent name MUST be
/// considered for a match." (likewise for query parameters).
fn compile_match(
    rule: u32,
    match_index: u32,
    m: &Match,
    path: &JsonPath<'_>,
) -> Result<Candidate, ConfigError> {
    let headers = compile_headers(&m.headers, path)?;
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
        headers,
        query: query.into_boxed_slice(),
    })
}

/// Header conditions of a match of either kind; a repeated name after the first is left out.
pub(crate) fn compile_headers(
    matches: &[HeaderMatch],
    path: &JsonPath<'_>,
) -> Result<Box<[HeaderCondition]>, ConfigError> {
    let mut headers: Vec<HeaderCondition> = Vec::with_capacity(matches.len());
    for (i, h) in matches.iter().enumerate() {
        let name = h.name.to_ascii_lowercase();
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
    Ok(headers.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backend_ref: &str, mirror: &str) -> PluginConfig {
        parse_json(serde_json::json!({
            "schemaVersion": 1,
            "gateway": {"namespace": "infra", "name": "gw"},
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            "routes": [{"namespace": "app", "name": "web", "parents": [{"listener": "http"}],
                        "rules": [{"backendRefs": [{"backend": "app/a:80"}]},
                                  {"filters": [{"type": "RequestMirror",
                                                "requestMirror": {"backend": mirror}}],
                                   "backendRefs": [{"backend": "app/a:80"}, {"backend": backend_ref}]}]}],
            "backends": {"app/a:80": {"upstream": "a"}, "app/b:80": {"upstream": "b"}}
        }))
    }

    fn parse_json(document: serde_json::Value) -> PluginConfig {
        crate::parse(document.to_string().as_bytes())
            .unwrap_or_else(|e| unreachable!("test config: {e}"))
    }

    /// Compilation alone, past the validation that would reject these configs first.
    fn compile_unvalidated(config: &PluginConfig) -> Result<RouteTable, ConfigError> {
        compile_validated(config, BackendIds::of(config))
    }

    #[test]
    fn the_rule_and_candidate_lists_are_sized_exactly() {
        let mut config = config("app/b:80", "app/b:80");
        let api = parse_json(serde_json::json!({
            "schemaVersion": 1,
            "gateway": {"namespace": "infra", "name": "gw"},
            "listeners": [],
            "routes": [{
            "namespace": "app", "name": "api", "parents": [{"listener": "http"}],
            "rules": [{"matches": [{"path": {"type": "Exact", "value": "/a"}},
                                   {"path": {"type": "PathPrefix", "value": "/b"}},
                                   {"method": "GET"}],
                       "backendRefs": [{"backend": "app/a:80"}]}]
            }]
        }));
        config.routes.extend(api.routes);
        let table = compile_unvalidated(&config).unwrap_or_else(|e| unreachable!("{e}"));
        // Three rules (the first route's two and this one); five candidates (the first route's
        // rules have no matches, so one default match each). Doubling would give 4 and 8.
        assert_eq!((table.rules.len(), table.rules.capacity()), (3, 3));
        assert_eq!(
            (table.candidates.len(), table.candidates.capacity()),
            (5, 5)
        );
    }

    #[test]
    fn an_unknown_backend_key_is_an_error_not_the_first_backend() {
        // Past validation (which rejects this too): compilation must not fall back to backend 0.
        let error = compile_unvalidated(&config("app/missing:80", "app/b:80")).err();
        assert_eq!(
            error,
            Some(ConfigError::new(
                "routes[0].rules[1].backendRefs[1].backend",
                "\"app/missing:80\" is not a key of backends"
            ))
        );
        let error = compile_unvalidated(&config("app/b:80", "app/gone:80")).err();
        assert_eq!(
            error,
            Some(ConfigError::new(
                "routes[0].rules[1].filters[0].requestMirror.backend",
                "\"app/gone:80\" is not a key of backends"
            ))
        );
        assert!(compile_unvalidated(&config("app/b:80", "app/b:80")).is_ok());
    }

    #[test]
    fn every_reference_resolves_to_its_own_backend_when_keys_repeat_and_alternate() {
        // The lookup remembers the last key it resolved; a different key must not get its id.
        let config = config("app/b:80", "app/a:80");
        let table = compile_unvalidated(&config).unwrap_or_else(|e| unreachable!("{e}"));
        let keys: Vec<Vec<&str>> = table
            .rules
            .iter()
            .map(|rule| {
                rule.backends
                    .iter()
                    .filter_map(|r| table.backends.get(r.backend as usize))
                    .map(|b| b.key.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(keys, [vec!["app/a:80"], vec!["app/a:80", "app/b:80"]]);
        let mirrored = table
            .rules
            .get(1)
            .and_then(|rule| rule.filters.first())
            .and_then(|filter| match filter {
                CompiledFilter::Mirror { backend, .. } => table.backends.get(*backend as usize),
                _ => None,
            })
            .map(|b| b.key.as_str());
        assert_eq!(mirrored, Some("app/a:80"));
    }

    #[test]
    fn an_unknown_listener_is_an_error_not_a_route_left_out() {
        let mut bad = config("app/b:80", "app/b:80");
        if let Some(parent) = bad.routes.first_mut().and_then(|r| r.parents.first_mut()) {
            parent.listener = "https".to_owned();
        }
        assert_eq!(
            compile_unvalidated(&bad).err(),
            Some(ConfigError::new(
                "routes[0].parents[0].listener",
                "\"https\" is not a listener of this config"
            ))
        );
    }

    #[test]
    fn an_unparsable_time_is_an_error_not_a_default() {
        let mut bad = config("app/b:80", "app/b:80");
        if let Some(route) = bad.routes.first_mut() {
            route.creation_timestamp = Some("yesterday".to_owned());
        }
        let error = compile_unvalidated(&bad).err().map(|e| e.path);
        assert_eq!(error.as_deref(), Some("routes[0].creationTimestamp"));
    }
}

//! One route-table generator, two representations.
//!
//! [`Table::generate`] builds `n` HTTPRoutes in a neutral model; [`Table::plugin_config`] turns them
//! into the PluginConfig the filter compiles, [`Table::native_route_config`] into the Envoy
//! `RouteConfiguration` Envoy Gateway would generate for the same routes (one virtual host per
//! hostname, one Envoy route per rule match, sorted by Gateway API precedence). Both come from the
//! same model, so the two setups route exactly the same requests to the same clusters; the harness
//! checks that in Envoy before it measures.
//!
//! The shape (modelled on `engine/benches/tables.rs`, extended):
//! - half of the routes (even indexes) share one host, `api.example.com`, and are told apart by path
//!   only — the case where Envoy walks a long route list in one virtual host;
//! - the other half are spread over per-team hosts, ten routes per host, every fifth host a wildcard
//!   (`*.teamN.example.com`) — many small virtual hosts;
//! - every route has a `PathPrefix` rule (`/teamTT/svcNNNNN/v1`) and an `Exact` health rule; every
//!   fifth also a canary rule (header `x-canary: true`, weighted 90/10), every seventh a versioned
//!   rule (query `version=2`, with a RequestHeaderModifier);
//! - route `i` is `i` seconds younger than route 0, and service ids are zero-padded, so prefixes of a
//!   kind have one length and precedence ties fall back to age: Envoy's route order is index order;
//! - backends: 100 services (and their canaries) shared by all routes, so the cluster count stays
//!   the same order of magnitude for every table size.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use engine::{Action, Request, RouteIdentity, RouteTable, SplitMix64};
use serde_json::{Map, Value, json};

/// The host that carries half of the routes.
pub const API_HOST: &str = "api.example.com";
/// The Gateway listener port in the PluginConfig (Envoy binds another one; see the renderer).
pub const GATEWAY_PORT: u16 = 80;
/// Services behind the routes (each with a canary).
pub const SERVICES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

impl PathMatch {
    fn value(&self) -> &str {
        match self {
            PathMatch::Exact(v) | PathMatch::Prefix(v) => v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub path: PathMatch,
    /// Exact header matches (name, value).
    pub headers: Vec<(String, String)>,
    /// Exact query parameter matches (name, value).
    pub query: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    /// RequestHeaderModifier `set` entries.
    pub set_request_headers: Vec<(String, String)>,
    /// (backend key = cluster name, weight).
    pub backends: Vec<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub namespace: String,
    pub name: String,
    /// RFC 3339 creation timestamp (precedence tie-break: older first).
    pub created: String,
    /// The route's one hostname (exact or `*.` wildcard).
    pub hostname: String,
    pub rules: Vec<Rule>,
}

/// The generated rule behind the route identity the engine reports in a decision; `parts` gives a
/// route's namespace, name and rules, so the HTTP and the gRPC model share the lookup. An identity
/// the generator never wrote is an error, not a guess: the config and the model would disagree.
pub fn picked_rule<'r, R, Rule>(
    routes: &'r [R],
    id: &RouteIdentity<'_>,
    parts: impl Fn(&'r R) -> (&'r str, &'r str, &'r [Rule]),
) -> Result<&'r Rule> {
    let rules = routes
        .iter()
        .map(parts)
        .find(|(namespace, name, _)| *name == id.name && *namespace == id.namespace)
        .map(|(_, _, rules)| rules)
        .with_context(|| format!("the engine picked unknown route {id}"))?;
    rules
        .get(id.rule_index)
        .with_context(|| format!("the engine picked unknown rule {id}"))
}

/// A generated route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub routes: Vec<Route>,
    /// Pushes applied on top of the generated routes ([`Table::with_push`]); part of the revision.
    pub pushes: u32,
}

/// One request of the load mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchRequest {
    /// What the request exercises (`early`, `late`, `missing-host`, …).
    pub label: &'static str,
    pub host: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// What a request must get, decided by the engine on the PluginConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Forwarded by `route` rule `rule` to one of `clusters`.
    Forward {
        route: String,
        rule: usize,
        clusters: BTreeSet<String>,
    },
    /// Answered 404 (no route, or no host).
    NotFound,
}

fn team(i: usize) -> usize {
    i % 97
}

/// `/teamTT/svcNNNNN`: the path every rule of route `i` starts with.
pub fn base_path(i: usize) -> String {
    format!("/team{:02}/svc{i:05}", team(i))
}

/// The route's hostname: even routes share [`API_HOST`]; odd ones get a per-team host, ten per host,
/// every fifth host a wildcard.
pub fn hostname(i: usize) -> String {
    if i.is_multiple_of(2) {
        return API_HOST.to_owned();
    }
    let group = i / 20;
    if group % 5 == 4 {
        format!("*.team{group}.example.com")
    } else {
        format!("app{group}.example.com")
    }
}

/// A Host header that the route's hostname accepts.
pub fn request_host(i: usize) -> String {
    hostname(i).replace('*', "www")
}

fn service(i: usize) -> String {
    let s = i % SERVICES;
    format!("team{:02}/svc{s:03}:8080", s % 97)
}

fn canary(i: usize) -> String {
    let s = i % SERVICES;
    format!("team{:02}/svc{s:03}-canary:8080", s % 97)
}

/// `2025-01-01T00:00:00Z` plus `seconds`.
pub(crate) fn timestamp(seconds: usize) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    format!(
        "2025-01-{:02}T{:02}:{:02}:{:02}Z",
        1 + days,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn prefix(value: String) -> Match {
    Match {
        path: PathMatch::Prefix(value),
        headers: Vec::new(),
        query: Vec::new(),
    }
}

/// The largest even index below `n`: the last route on [`API_HOST`] in precedence order.
pub fn last_api_route(n: usize) -> usize {
    n.saturating_sub(1) / 2 * 2
}

impl Table {
    /// `n` routes (at least 1).
    pub fn generate(n: usize) -> Table {
        let n = n.max(1);
        let routes = (0..n)
            .map(|i| {
                let base = base_path(i);
                let mut rules = vec![
                    Rule {
                        matches: vec![prefix(format!("{base}/v1"))],
                        set_request_headers: Vec::new(),
                        backends: vec![(service(i), 1)],
                    },
                    Rule {
                        matches: vec![Match {
                            path: PathMatch::Exact(format!("{base}/health")),
                            headers: Vec::new(),
                            query: Vec::new(),
                        }],
                        set_request_headers: Vec::new(),
                        backends: vec![(service(i), 1)],
                    },
                ];
                if i.is_multiple_of(5) {
                    rules.push(Rule {
                        matches: vec![Match {
                            headers: vec![("x-canary".into(), "true".into())],
                            ..prefix(base.clone())
                        }],
                        set_request_headers: Vec::new(),
                        backends: vec![(canary(i), 90), (service(i), 10)],
                    });
                }
                if i.is_multiple_of(7) {
                    rules.push(Rule {
                        matches: vec![Match {
                            query: vec![("version".into(), "2".into())],
                            ..prefix(base.clone())
                        }],
                        set_request_headers: vec![("x-version".into(), "2".into())],
                        backends: vec![(canary(i), 1)],
                    });
                }
                Route {
                    namespace: format!("team{:02}", team(i)),
                    name: format!("route-{i:05}"),
                    created: timestamp(i),
                    hostname: hostname(i),
                    rules,
                }
            })
            .collect();
        Table { routes, pushes: 0 }
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The table after push number `k` (1, 2, …): the last route on [`API_HOST`] gains an exact
    /// rule `…/pushed-k`. Returns the new table and the request that answers 404 before the push
    /// and 200 once the push is in effect.
    pub fn with_push(&self, k: u32) -> (Table, BenchRequest) {
        let mut table = self.clone();
        table.pushes = k;
        let i = last_api_route(self.len());
        let path = format!("{}/pushed-{k}", base_path(i));
        if let Some(route) = table.routes.get_mut(i) {
            route.rules.push(Rule {
                matches: vec![Match {
                    path: PathMatch::Exact(path.clone()),
                    headers: Vec::new(),
                    query: Vec::new(),
                }],
                set_request_headers: Vec::new(),
                backends: vec![(service(i), 1)],
            });
        }
        let probe = BenchRequest {
            label: "push-probe",
            host: request_host(i),
            path,
            headers: Vec::new(),
        };
        (table, probe)
    }

    /// Every backend key (= Envoy cluster name) the routes use.
    pub fn backends(&self) -> BTreeSet<String> {
        self.routes
            .iter()
            .flat_map(|r| &r.rules)
            .flat_map(|r| &r.backends)
            .map(|(b, _)| b.clone())
            .collect()
    }

    pub fn revision(&self) -> String {
        format!("bench-{}-push-{}", self.len(), self.pushes)
    }

    /// The PluginConfig document (backend upstreams are the cluster names, i.e. the keys).
    pub fn plugin_config(&self) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|route| {
                let rules: Vec<Value> = route
                    .rules
                    .iter()
                    .map(|rule| {
                        let matches: Vec<Value> = rule
                            .matches
                            .iter()
                            .map(|m| {
                                let (kind, value) = match &m.path {
                                    PathMatch::Exact(v) => ("Exact", v),
                                    PathMatch::Prefix(v) => ("PathPrefix", v),
                                };
                                let mut o = Map::new();
                                o.insert("path".into(), json!({"type": kind, "value": value}));
                                if !m.headers.is_empty() {
                                    o.insert("headers".into(), name_values(&m.headers));
                                }
                                if !m.query.is_empty() {
                                    o.insert("queryParams".into(), name_values(&m.query));
                                }
                                Value::Object(o)
                            })
                            .collect();
                        let mut o = Map::new();
                        o.insert("matches".into(), Value::Array(matches));
                        if !rule.set_request_headers.is_empty() {
                            o.insert(
                                "filters".into(),
                                json!([{"type": "RequestHeaderModifier",
                                        "requestHeaderModifier": {"set": name_values(&rule.set_request_headers)}}]),
                            );
                        }
                        o.insert(
                            "backendRefs".into(),
                            rule.backends
                                .iter()
                                .map(|(b, w)| json!({"backend": b, "weight": w}))
                                .collect(),
                        );
                        Value::Object(o)
                    })
                    .collect();
                json!({
                    "namespace": route.namespace,
                    "name": route.name,
                    "creationTimestamp": route.created,
                    "parents": [{"listener": "http", "hostnames": [route.hostname]}],
                    "rules": rules,
                })
            })
            .collect();
        let backends: Map<String, Value> = self
            .backends()
            .into_iter()
            .map(|b| {
                let upstream = json!({"upstream": b});
                (b, upstream)
            })
            .collect();
        json!({
            "schemaVersion": 1,
            "revision": self.revision(),
            "gateway": {"namespace": "infra", "name": "bench"},
            "listeners": [{"name": "http", "port": GATEWAY_PORT, "protocol": "HTTP"}],
            "routes": routes,
            "backends": backends,
            "upstreamSelector": "envoyClusterHeader",
        })
    }

    /// The Envoy `RouteConfiguration` Envoy Gateway would generate for these routes: one virtual host
    /// per hostname (Envoy picks it by exact name, then longest wildcard), and in it one Envoy route
    /// per rule match, sorted by Gateway API precedence (Exact before PathPrefix, longer prefixes
    /// first, more header matches, more query matches, older route, namespace/name, rule order).
    /// PathPrefix becomes `path_separated_prefix` (element-wise, like Gateway API), header and query
    /// matches become exact `string_match`es, weights become `weighted_clusters`, and
    /// RequestHeaderModifier `set` becomes `request_headers_to_add` with `OVERWRITE_IF_EXISTS_OR_ADD`.
    /// Routes get `timeout: 0s`, like the filter's catch-all route, so neither setup arms a timer.
    pub fn native_route_config(&self, name: &str) -> Value {
        type Key<'a> = (
            std::cmp::Reverse<(u8, usize, usize, usize)>,
            &'a str,
            &'a str,
            &'a str,
            usize,
            usize,
        );
        let mut hosts: BTreeMap<&str, Vec<(Key<'_>, Value)>> = BTreeMap::new();
        for route in &self.routes {
            for (ri, rule) in route.rules.iter().enumerate() {
                for (mi, m) in rule.matches.iter().enumerate() {
                    let exact = u8::from(matches!(m.path, PathMatch::Exact(_)));
                    let key: Key<'_> = (
                        std::cmp::Reverse((
                            exact,
                            m.path.value().len(),
                            m.headers.len(),
                            m.query.len(),
                        )),
                        &route.created,
                        &route.namespace,
                        &route.name,
                        ri,
                        mi,
                    );
                    let entry = native_route(route, ri, rule, mi, m);
                    hosts.entry(&route.hostname).or_default().push((key, entry));
                }
            }
        }
        route_configuration(name, hosts)
    }

    /// The load mix: early, late, header, query and per-team-host routes, and two misses (unknown
    /// path on the big host, unknown host). Cycled in this order by the load generator.
    pub fn requests(&self) -> Vec<BenchRequest> {
        let n = self.len();
        let last = last_api_route(n);
        // Even multiples of 5 and of 7 near the middle: routes with a canary / versioned rule.
        let header = n / 2 / 10 * 10;
        let query = n / 2 / 14 * 14;
        let team = if n >= 2 { (n - 1) | 1 } else { 0 };
        let team = if team >= n {
            team.saturating_sub(2)
        } else {
            team
        };
        let plain = |label, host: String, path: String| BenchRequest {
            label,
            host,
            path,
            headers: Vec::new(),
        };
        vec![
            plain("early", request_host(0), format!("{}/health", base_path(0))),
            plain(
                "late",
                request_host(last),
                format!("{}/v1/orders", base_path(last)),
            ),
            BenchRequest {
                label: "header",
                host: request_host(header),
                path: format!("{}/items", base_path(header)),
                headers: vec![("x-canary".into(), "true".into())],
            },
            plain(
                "query",
                request_host(query),
                format!("{}/items?version=2", base_path(query)),
            ),
            plain(
                "team-host",
                request_host(team),
                format!("{}/v1/users/7", base_path(team)),
            ),
            plain("missing-path", API_HOST.to_owned(), "/nothing/here".into()),
            plain(
                "missing-host",
                "unknown.example.org".into(),
                format!("{}/v1", base_path(0)),
            ),
        ]
    }

    /// What each request must get, decided by the engine (the reference semantics) on
    /// [`Table::plugin_config`].
    pub fn expectations(&self, requests: &[BenchRequest]) -> Result<Vec<Expect>> {
        let json = self.plugin_config().to_string();
        let table = RouteTable::from_json(json.as_bytes())
            .map_err(|e| anyhow::anyhow!("the engine rejects the generated config: {e}"))?;
        requests
            .iter()
            .map(|r| {
                let request = Request {
                    port: GATEWAY_PORT,
                    sni: None,
                    method: "GET",
                    authority: &r.host,
                    path: &r.path,
                    headers: &r.headers,
                };
                let decision = table.evaluate(&request, &mut SplitMix64(1));
                match (decision.action, decision.route) {
                    (Action::Forward(_), Some(id)) => {
                        let rule =
                            picked_rule(&self.routes, &id, |r| (&r.namespace, &r.name, &r.rules))?;
                        Ok(Expect::Forward {
                            route: id.name.to_owned(),
                            rule: id.rule_index,
                            clusters: rule.backends.iter().map(|(b, _)| b.clone()).collect(),
                        })
                    }
                    (Action::Respond(response), _) if response.status == 404 => {
                        Ok(Expect::NotFound)
                    }
                    (action, _) => bail!(
                        "{} {}{}: unexpected engine decision {action:?}",
                        r.label,
                        r.host,
                        r.path
                    ),
                }
            })
            .collect()
    }
}

/// A `RouteConfiguration` with one virtual host per hostname (its only domain), each host's Envoy
/// routes sorted by their precedence keys.
pub(crate) fn route_configuration<K: Ord>(
    name: &str,
    hosts: BTreeMap<&str, Vec<(K, Value)>>,
) -> Value {
    let virtual_hosts: Vec<Value> = hosts
        .into_iter()
        .map(|(host, mut routes)| {
            routes.sort_by(|a, b| a.0.cmp(&b.0));
            json!({
                "name": host,
                "domains": [host],
                "routes": routes.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"name": name, "virtual_hosts": virtual_hosts})
}

fn name_values(pairs: &[(String, String)]) -> Value {
    pairs
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect()
}

fn native_route(route: &Route, ri: usize, rule: &Rule, mi: usize, m: &Match) -> Value {
    let mut matcher = Map::new();
    match &m.path {
        PathMatch::Exact(v) => {
            matcher.insert("path".into(), json!(v));
        }
        PathMatch::Prefix(v) if v == "/" => {
            matcher.insert("prefix".into(), json!("/"));
        }
        PathMatch::Prefix(v) => {
            matcher.insert(
                "path_separated_prefix".into(),
                json!(v.trim_end_matches('/')),
            );
        }
    }
    if !m.headers.is_empty() {
        matcher.insert(
            "headers".into(),
            m.headers
                .iter()
                .map(|(n, v)| json!({"name": n, "string_match": {"exact": v}}))
                .collect(),
        );
    }
    if !m.query.is_empty() {
        matcher.insert(
            "query_parameters".into(),
            m.query
                .iter()
                .map(|(n, v)| json!({"name": n, "string_match": {"exact": v}}))
                .collect(),
        );
    }
    let weighted: Vec<&(String, u32)> = rule.backends.iter().filter(|(_, w)| *w > 0).collect();
    let mut action = match weighted.as_slice() {
        [(cluster, _)] => json!({"cluster": cluster}),
        many => json!({"weighted_clusters": {"clusters": many
            .iter()
            .map(|(c, w)| json!({"name": c, "weight": w}))
            .collect::<Vec<_>>()}}),
    };
    if let Some(o) = action.as_object_mut() {
        o.insert("timeout".into(), json!("0s"));
    }
    let mut entry = Map::new();
    entry.insert(
        "name".into(),
        json!(format!(
            "httproute/{}/{}/rule/{ri}/match/{mi}",
            route.namespace, route.name
        )),
    );
    entry.insert("match".into(), Value::Object(matcher));
    entry.insert("route".into(), action);
    if !rule.set_request_headers.is_empty() {
        entry.insert(
            "request_headers_to_add".into(),
            rule.set_request_headers
                .iter()
                .map(|(n, v)| {
                    json!({"header": {"key": n, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
                })
                .collect(),
        );
    }
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_mix_hits_the_intended_rules_at_every_size() {
        for n in [1, 2, 10, 1_000, 10_000] {
            let table = Table::generate(n);
            let requests = table.requests();
            let expect = table.expectations(&requests).unwrap();
            for (r, e) in requests.iter().zip(&expect) {
                let want_rule = match r.label {
                    "early" => Some(1),
                    "late" | "team-host" => Some(0),
                    "header" | "query" => Some(2),
                    _ => None,
                };
                let want_rule = match (r.label, want_rule) {
                    // A multiple of 7 that is also a multiple of 5 has its canary rule first.
                    ("query", Some(_)) if (n / 2 / 14 * 14) % 5 != 0 => Some(2),
                    ("query", Some(_)) => Some(3),
                    (_, rule) => rule,
                };
                match (want_rule, e) {
                    (None, Expect::NotFound) => {}
                    (Some(rule), Expect::Forward { rule: got, .. }) => {
                        assert_eq!(*got, rule, "{} with {n} routes", r.label);
                    }
                    other => panic!("{} with {n} routes: {other:?}", r.label),
                }
            }
        }
    }

    #[test]
    fn pushes_turn_a_404_into_a_route() {
        let table = Table::generate(10);
        let (pushed, probe) = table.with_push(3);
        let before = table.expectations(std::slice::from_ref(&probe)).unwrap();
        let after = pushed.expectations(std::slice::from_ref(&probe)).unwrap();
        assert_eq!(before, [Expect::NotFound]);
        assert!(
            matches!(&after[0], Expect::Forward { route, .. } if route == "route-00008"),
            "{after:?}"
        );
        assert_ne!(table.revision(), pushed.revision());
    }

    #[test]
    fn native_routes_are_in_precedence_order_per_host() {
        let table = Table::generate(30);
        let config = table.native_route_config("bench");
        let hosts = config["virtual_hosts"].as_array().unwrap();
        let api = hosts.iter().find(|h| h["name"] == API_HOST).unwrap();
        let routes = api["routes"].as_array().unwrap();
        // 15 routes on the API host: 15 exact, 15 v1 prefixes, 3 canary and 3 versioned rules.
        assert_eq!(routes.len(), 15 + 15 + 3 + 3);
        assert_eq!(routes[0]["match"]["path"], "/team00/svc00000/health");
        assert_eq!(
            routes[15]["match"]["path_separated_prefix"],
            "/team00/svc00000/v1"
        );
        // Header matches before query matches at equal prefix length, older routes first.
        assert_eq!(routes[30]["match"]["headers"][0]["name"], "x-canary");
        assert_eq!(
            routes[30]["name"],
            "httproute/team00/route-00000/rule/2/match/0"
        );
        assert!(routes[35]["match"]["query_parameters"].is_array());
        assert_eq!(
            routes[30]["route"]["weighted_clusters"]["clusters"][0]["weight"],
            90
        );
        assert!(hosts.iter().any(|h| h["name"] == "*.team4.example.com") || table.len() < 80);
        let wild = Table::generate(100).native_route_config("b");
        assert!(
            wild["virtual_hosts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["domains"][0] == "*.team4.example.com")
        );
    }

    #[test]
    fn backends_stay_bounded() {
        assert_eq!(Table::generate(10_000).backends().len(), 2 * SERVICES);
        assert!(Table::generate(10).backends().len() <= 20);
    }

    #[test]
    fn timestamps_are_rfc3339_and_ordered() {
        assert_eq!(timestamp(0), "2025-01-01T00:00:00Z");
        assert_eq!(timestamp(3_661), "2025-01-01T01:01:01Z");
        assert_eq!(timestamp(86_400 + 59), "2025-01-02T00:00:59Z");
        assert!(timestamp(9_999) > timestamp(999));
    }
}

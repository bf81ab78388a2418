//! The GRPCRoute table of the gRPC rows: one generator, two representations, like
//! [`crate::tables`] for HTTPRoutes.
//!
//! [`GrpcTable::generate`] builds `n` GRPCRoutes; [`GrpcTable::plugin_config`] turns them into the
//! PluginConfig's `grpcRoutes`, [`GrpcTable::native_route_config`] into the Envoy
//! `RouteConfiguration` Envoy Gateway would generate for the same routes. Envoy Gateway's
//! translation (`internal/gatewayapi/route.go` in envoyproxy/gateway, `processGRPCRouteRule` and
//! `processGRPCRouteMethodExact`): one Envoy route per match; a method match with service and
//! method becomes an exact path `/<service>/<method>`, a service-only match a path prefix
//! `/<service>` (a non-root prefix becomes `path_separated_prefix` in its xDS translator, as for
//! HTTPRoute), a method-only match a header matcher on `:path` with the suffix `/<method>`; header
//! matches become exact header matchers.
//!
//! The real backend (testkit's tonic echo server) implements one service, the conformance suite's
//! `GrpcEcho` (`Echo`, `EchoTwo`). So every route names that service and the routes are told apart
//! by a tenant header (`x-tenant: tNNNNN`): all routes of a host share one path, and Envoy's native
//! router walks the host's route list evaluating header matchers — the long-list case.
//! - even routes share [`GRPC_HOST`]; odd ones get a per-group host (`grpcG.example.com`, 20
//!   routes per group);
//! - every route has an exact `GrpcEcho/Echo` rule; every fifth also a service-only rule that needs
//!   `x-canary: true` (to its canary backend), every seventh a method-only `EchoTwo` rule;
//! - route `i` is `i` seconds younger than route 0 (precedence ties fall back to age).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use engine::{Action, GrpcCode, Request, RouteTable, SplitMix64};
use serde_json::{Map, Value, json};
use testkit::grpc::proto::SERVICE;

use crate::tables::{GATEWAY_PORT, picked_rule, route_configuration, timestamp};

/// The host that carries half of the routes.
pub const GRPC_HOST: &str = "grpc.example.com";
/// Echo backends behind the routes (each with a canary): every one is its own echo server.
pub const BACKENDS: usize = 4;
const TENANT: &str = "x-tenant";
const CANARY: &str = "x-canary";

/// A GRPCRoute method match (type Exact); `None` = any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodMatch {
    pub service: Option<String>,
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRule {
    pub method: MethodMatch,
    /// Exact header matches (name, value).
    pub headers: Vec<(String, String)>,
    /// The backend key (= Envoy cluster name).
    pub backend: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRouteSpec {
    pub namespace: String,
    pub name: String,
    pub created: String,
    pub hostname: String,
    pub rules: Vec<GrpcRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTable {
    pub routes: Vec<GrpcRouteSpec>,
}

/// One call of the load mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub label: &'static str,
    pub authority: String,
    /// `/<service>/<method>`.
    pub path: String,
    pub metadata: Vec<(String, String)>,
}

/// What a call must get, decided by the engine on the PluginConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcExpect {
    /// Forwarded to `backend` (its echo server answers OK with its identity).
    Forward { route: String, backend: String },
    /// No route: the gateway answers `grpc-status: 12` (UNIMPLEMENTED).
    Unimplemented,
}

/// The backend key of echo server `k` (`canary`: its canary).
pub fn backend_key(k: usize, canary: bool) -> String {
    let suffix = if canary { "-canary" } else { "" };
    format!("grpc/echo-{k}{suffix}:9000")
}

/// Every backend key, in a fixed order.
pub fn all_backends() -> Vec<String> {
    (0..BACKENDS)
        .flat_map(|k| [backend_key(k, false), backend_key(k, true)])
        .collect()
}

fn tenant(i: usize) -> String {
    format!("t{i:05}")
}

fn hostname(i: usize) -> String {
    if i.is_multiple_of(2) {
        GRPC_HOST.to_owned()
    } else {
        format!("grpc{}.example.com", i / 20)
    }
}

/// The largest index below `n` that is a multiple of `step` and even (so on [`GRPC_HOST`]), near
/// the middle of the table.
fn middle_multiple(n: usize, step: usize) -> usize {
    n / 2 / (2 * step) * (2 * step)
}

impl GrpcTable {
    /// `n` GRPCRoutes (at least 1).
    pub fn generate(n: usize) -> GrpcTable {
        let n = n.max(1);
        let routes = (0..n)
            .map(|i| {
                let with_tenant = |extra: &[(&str, &str)]| {
                    let mut headers = vec![(TENANT.to_owned(), tenant(i))];
                    headers.extend(
                        extra
                            .iter()
                            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
                    );
                    headers
                };
                let mut rules = vec![GrpcRule {
                    method: MethodMatch {
                        service: Some(SERVICE.to_owned()),
                        method: Some("Echo".into()),
                    },
                    headers: with_tenant(&[]),
                    backend: backend_key(i % BACKENDS, false),
                }];
                if i.is_multiple_of(5) {
                    rules.push(GrpcRule {
                        method: MethodMatch {
                            service: Some(SERVICE.to_owned()),
                            method: None,
                        },
                        headers: with_tenant(&[(CANARY, "true")]),
                        backend: backend_key(i % BACKENDS, true),
                    });
                }
                if i.is_multiple_of(7) {
                    rules.push(GrpcRule {
                        method: MethodMatch {
                            service: None,
                            method: Some("EchoTwo".into()),
                        },
                        headers: with_tenant(&[]),
                        backend: backend_key((i + 1) % BACKENDS, false),
                    });
                }
                GrpcRouteSpec {
                    namespace: format!("team{:02}", i % 97),
                    name: format!("grpc-{i:05}"),
                    created: timestamp(i),
                    hostname: hostname(i),
                    rules,
                }
            })
            .collect();
        GrpcTable { routes }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn revision(&self) -> String {
        format!("bench-grpc-{}", self.len())
    }

    /// The PluginConfig document: only `grpcRoutes` (no HTTPRoutes), backends named by cluster.
    pub fn plugin_config(&self) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|route| {
                let rules: Vec<Value> = route
                    .rules
                    .iter()
                    .map(|rule| {
                        let mut method = Map::new();
                        method.insert("type".into(), json!("Exact"));
                        if let Some(s) = &rule.method.service {
                            method.insert("service".into(), json!(s));
                        }
                        if let Some(m) = &rule.method.method {
                            method.insert("method".into(), json!(m));
                        }
                        let headers: Vec<Value> = rule
                            .headers
                            .iter()
                            .map(|(n, v)| json!({"type": "Exact", "name": n, "value": v}))
                            .collect();
                        json!({
                            "matches": [{"method": method, "headers": headers}],
                            "backendRefs": [{"backend": rule.backend, "weight": 1}],
                        })
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
        let backends: Map<String, Value> = all_backends()
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
            "routes": [],
            "grpcRoutes": routes,
            "backends": backends,
            "upstreamSelector": "envoyClusterHeader",
        })
    }

    /// Envoy Gateway's translation (see the module doc), one virtual host per hostname, routes
    /// sorted as its xDS translator sorts a host's routes: exact paths before prefixes before
    /// none, longer paths first, more header matchers first, then the input order (older route,
    /// namespace/name, rule order). Routes get `timeout: 0s`, like the filter's catch-all route.
    pub fn native_route_config(&self, name: &str) -> Value {
        type Key<'a> = (
            std::cmp::Reverse<(u8, usize, usize)>,
            &'a str,
            &'a str,
            &'a str,
            usize,
        );
        let mut hosts: BTreeMap<&str, Vec<(Key<'_>, Value)>> = BTreeMap::new();
        for route in &self.routes {
            for (ri, rule) in route.rules.iter().enumerate() {
                let mut matcher = Map::new();
                let mut headers: Vec<Value> = Vec::new();
                let (kind, length) = match (&rule.method.service, &rule.method.method) {
                    (Some(s), Some(m)) => {
                        let path = format!("/{s}/{m}");
                        let length = path.len();
                        matcher.insert("path".into(), json!(path));
                        (2, length)
                    }
                    (Some(s), None) => {
                        let prefix = format!("/{s}");
                        let length = prefix.len();
                        matcher.insert("path_separated_prefix".into(), json!(prefix));
                        (1, length)
                    }
                    (None, method) => {
                        matcher.insert("prefix".into(), json!("/"));
                        if let Some(m) = method {
                            headers.push(json!({"name": ":path",
                                                "string_match": {"suffix": format!("/{m}")}}));
                        }
                        (0, 1)
                    }
                };
                headers.extend(
                    rule.headers
                        .iter()
                        .map(|(n, v)| json!({"name": n, "string_match": {"exact": v}})),
                );
                let header_count = headers.len();
                if !headers.is_empty() {
                    matcher.insert("headers".into(), Value::Array(headers));
                }
                let entry = json!({
                    "name": format!("grpcroute/{}/{}/rule/{ri}", route.namespace, route.name),
                    "match": matcher,
                    "route": {"cluster": rule.backend, "timeout": "0s"},
                });
                let key: Key<'_> = (
                    std::cmp::Reverse((kind, length, header_count)),
                    &route.created,
                    &route.namespace,
                    &route.name,
                    ri,
                );
                hosts.entry(&route.hostname).or_default().push((key, entry));
            }
        }
        route_configuration(name, hosts)
    }

    /// The load mix, cycled in this order: the first and the last route of the big host, a
    /// service-only (canary) rule and a method-only rule near the middle, a per-group host, and a
    /// miss (unknown tenant).
    pub fn calls(&self) -> Vec<GrpcCall> {
        let n = self.len();
        let last = n.saturating_sub(1) / 2 * 2;
        let group = if n >= 2 { (n - 1) | 1 } else { 0 };
        let group = if group >= n {
            group.saturating_sub(2)
        } else {
            group
        };
        let call = |label, i: usize, method: &str, extra: &[(&str, &str)]| {
            let mut metadata = vec![(TENANT.to_owned(), tenant(i))];
            metadata.extend(
                extra
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            GrpcCall {
                label,
                authority: hostname(i),
                path: format!("/{SERVICE}/{method}"),
                metadata,
            }
        };
        vec![
            call("early", 0, "Echo", &[]),
            call("late", last, "Echo", &[]),
            call(
                "service-only",
                middle_multiple(n, 5),
                "EchoTwo",
                &[(CANARY, "true")],
            ),
            call("method-only", middle_multiple(n, 7), "EchoTwo", &[]),
            call("group-host", group, "Echo", &[]),
            call("missing", 0, "Echo", &[]).with_tenant("t99999"),
        ]
    }

    /// What each call must get, decided by the engine (the reference semantics).
    pub fn expectations(&self, calls: &[GrpcCall]) -> Result<Vec<GrpcExpect>> {
        let json = self.plugin_config().to_string();
        let table = RouteTable::from_json(json.as_bytes())
            .map_err(|e| anyhow::anyhow!("the engine rejects the generated gRPC config: {e}"))?;
        calls
            .iter()
            .map(|c| {
                let mut headers = vec![
                    ("content-type".to_owned(), "application/grpc".to_owned()),
                    ("te".to_owned(), "trailers".to_owned()),
                ];
                headers.extend(c.metadata.iter().cloned());
                let request = Request {
                    port: GATEWAY_PORT,
                    sni: None,
                    method: "POST",
                    authority: &c.authority,
                    path: &c.path,
                    headers: &headers,
                };
                let decision = table.evaluate(&request, &mut SplitMix64(1));
                match (decision.action, decision.route) {
                    (Action::Forward(_), Some(id)) => {
                        let rule =
                            picked_rule(&self.routes, &id, |r| (&r.namespace, &r.name, &r.rules))?;
                        Ok(GrpcExpect::Forward {
                            route: id.name.to_owned(),
                            backend: rule.backend.clone(),
                        })
                    }
                    (Action::Respond(response), _)
                        if response.grpc == Some(GrpcCode::Unimplemented) =>
                    {
                        Ok(GrpcExpect::Unimplemented)
                    }
                    (action, _) => bail!(
                        "{} {}{}: unexpected engine decision {action:?}",
                        c.label,
                        c.authority,
                        c.path
                    ),
                }
            })
            .collect()
    }
}

impl GrpcCall {
    fn with_tenant(mut self, value: &str) -> GrpcCall {
        for (name, v) in &mut self.metadata {
            if name == TENANT {
                *v = value.to_owned();
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_engine_routes_every_call_of_the_mix_where_the_table_says() {
        for n in [1, 10, 1000] {
            let table = GrpcTable::generate(n);
            let calls = table.calls();
            let expect = table.expectations(&calls).unwrap();
            let labels: Vec<_> = calls.iter().map(|c| c.label).collect();
            assert_eq!(
                labels,
                [
                    "early",
                    "late",
                    "service-only",
                    "method-only",
                    "group-host",
                    "missing"
                ]
            );
            assert_eq!(expect.last(), Some(&GrpcExpect::Unimplemented), "{n}");
            // Every other call reaches a backend.
            let forwarded = expect
                .iter()
                .filter(|e| matches!(e, GrpcExpect::Forward { .. }))
                .count();
            assert_eq!(forwarded, calls.len() - 1, "{n}: {expect:?}");
        }
        let table = GrpcTable::generate(1000);
        let expect = table.expectations(&table.calls()).unwrap();
        assert_eq!(
            expect[..4],
            [
                GrpcExpect::Forward {
                    route: "grpc-00000".into(),
                    backend: backend_key(0, false)
                },
                GrpcExpect::Forward {
                    route: "grpc-00998".into(),
                    backend: backend_key(998 % BACKENDS, false)
                },
                GrpcExpect::Forward {
                    route: "grpc-00500".into(),
                    backend: backend_key(0, true)
                },
                GrpcExpect::Forward {
                    route: "grpc-00490".into(),
                    backend: backend_key(491 % BACKENDS, false)
                },
            ]
        );
    }

    #[test]
    fn native_routes_follow_envoy_gateways_translation() {
        let count = |n| {
            let config = GrpcTable::generate(n).native_route_config("n");
            config["virtual_hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["routes"].as_array().unwrap().len())
                .sum::<usize>()
        };
        // One Envoy route per rule match (docs/benchmarks.md states these counts).
        assert_eq!((count(10), count(1000)), (14, 1343));
        let config = GrpcTable::generate(10).native_route_config("n");
        let hosts = config["virtual_hosts"].as_array().unwrap();
        let big = hosts.iter().find(|h| h["name"] == GRPC_HOST).unwrap();
        let routes = big["routes"].as_array().unwrap();
        // Exact paths first (longer first), then the service prefix, then the method-only rule.
        let first = &routes[0]["match"];
        assert_eq!(first["path"], format!("/{SERVICE}/Echo"));
        assert_eq!(first["headers"][0]["string_match"]["exact"], "t00000");
        let prefix = routes
            .iter()
            .position(|r| r["match"].get("path_separated_prefix").is_some())
            .unwrap();
        let suffix = routes
            .iter()
            .position(|r| r["match"]["headers"][0]["name"] == ":path")
            .unwrap();
        assert!(
            routes[..prefix]
                .iter()
                .all(|r| r["match"].get("path").is_some())
        );
        assert!(prefix < suffix);
        assert_eq!(
            routes[suffix]["match"]["headers"][0]["string_match"]["suffix"],
            "/EchoTwo"
        );
        assert_eq!(
            routes[prefix]["match"]["path_separated_prefix"],
            format!("/{SERVICE}")
        );
    }
}

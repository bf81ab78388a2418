//! What Kong gets for one Gateway: the entities and the filter's configuration.
//!
//! Upstream selection works in Kong's phase order by construction (`docs/kong.md`, *Upstream
//! selection*): Kong's router picks every service a request reaches, before Kong's balancer runs.
//! All entities are named `gateway-wasm.<ns>.<gateway>[.<backend id>]` and tagged with the
//! Gateway's name:
//!
//! - the **entry**: a service pointing at Kong's own proxy listener (`KongOptions::proxy`, e.g.
//!   `127.0.0.1:8000`), a catch-all route on it (`paths: ["/"]`, `preserve_host`, no
//!   `strip_path`; Kong runs filters after its router, so one route must match everything) and
//!   the filter chain running `gateway_wasm` on that route;
//! - per usable backend: a **backend service** pointing at the backend (the endpoint when the
//!   EndpointSlices list exactly one, else the Service's cluster DNS name, balanced by
//!   kube-proxy) and a **backend route** matching the path prefix
//!   `/.gateway-wasm/<secret>/<backend id>` with `strip_path` and `preserve_host`.
//!
//! A request enters through the catch-all route; the filter decides (matching, filters, weighted
//! pick) and sets Kong's `$upstream_uri` to the chosen backend's prefix plus the request target
//! (`ngx.upstream_uri`); Kong proxies it to its own listener, where the router matches the backend
//! route, strips the prefix and proxies to the backend's service with the client's Host. The
//! secret (random per shim process unless pinned) keeps clients from addressing a backend route
//! directly; the filter strips nothing it did not set, and a prefix is never seen by a backend.
//!
//! Kong decodes an object `config` into Lua tables and encodes it again for the filter, which
//! turns an empty list into `{}`; the config sent therefore has no empty lists at all
//! ([`prune_empty_lists`]; the engine also reads `{}` as an empty list).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher as _, Hasher as _};

use engine::PluginConfig;
use engine::config::{Filter, KongDataPlane, UpstreamSelector};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::KongOptions;
use crate::deliver::DeliverError;
use crate::resolution::{BackendTarget, GatewayResult, ObjectKey};

/// The filter's name in Kong (the `.wasm` file name without extension in `wasm_filters_path`).
pub const FILTER_NAME: &str = "gateway_wasm";
/// First segment of every backend route's path.
pub const ROUTE_PREFIX_ROOT: &str = "/.gateway-wasm";

/// The Kong entity name for a Gateway (entry service, route and filter chain).
pub fn entity_name(gateway: &ObjectKey) -> String {
    format!("gateway-wasm.{}.{}", gateway.namespace, gateway.name)
}

/// A stable, short id for a backend key (`ns/svc:port`): the first 12 hex digits of its SHA-256.
pub fn backend_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(digest).chars().take(12).collect()
}

/// A fresh 128-bit route secret: std's per-process random hash keys, hashed twice.
pub fn random_secret() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        *word = hasher.finish();
    }
    format!("{:016x}{:016x}", words[0], words[1])
}

/// `/.gateway-wasm/<secret>/<backend id>`.
pub fn route_prefix(secret: &str, id: &str) -> String {
    format!("{ROUTE_PREFIX_ROOT}/{secret}/{id}")
}

/// The `host:port` Kong's backend service points at.
pub fn target_for(backend: &BackendTarget, cluster_domain: &str) -> (String, u16) {
    match backend.endpoints.as_slice() {
        [only] if only.address.contains(':') => (format!("[{}]", only.address), only.port),
        [only] => (only.address.clone(), only.port),
        _ => (
            format!(
                "{}.{}.svc.{}",
                backend.service, backend.namespace, cluster_domain
            ),
            backend.port,
        ),
    }
}

/// One backend's Kong service and route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEntities {
    /// `<entry name>.<backend id>`: the service's and the route's name.
    pub name: String,
    /// The PluginConfig's backend key.
    pub key: String,
    pub host: String,
    pub port: u16,
    /// The backend route's path (`/.gateway-wasm/<secret>/<id>`).
    pub prefix: String,
}

/// Everything the shim writes to Kong for one Gateway.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The entry service, route and filter chain name.
    pub name: String,
    /// Kong's own proxy listener, `host:port`.
    pub proxy: (String, u16),
    pub backends: Vec<BackendEntities>,
    /// The filter chain's `filters` array.
    pub filters: Value,
    /// Things the operator should know (Gateway API features Kong cannot apply).
    pub warnings: Vec<String>,
}

/// Splits `host:port` (brackets allowed around IPv6).
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Computes the layout: the backend entities, the filter config and the warnings.
pub fn layout(
    gateway: &GatewayResult,
    options: &KongOptions,
    proxy: &str,
) -> Result<Layout, DeliverError> {
    let name = entity_name(&gateway.gateway);
    let proxy_address = split_host_port(proxy).ok_or_else(|| {
        DeliverError::Config(format!(
            "Kong's proxy listener {proxy:?} is not host:port (--kong-proxy)"
        ))
    })?;
    if options.route_secret.len() < 16
        || !options
            .route_secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(DeliverError::Config(
            "the Kong route secret must be at least 16 characters of A-Z, a-z, 0-9, - and _ (--kong-route-secret)".to_owned(),
        ));
    }
    let ports = kong_ports(gateway, options)?;
    let mut config = gateway.config.clone();
    let refused = refuse_grpc_routes(&mut config);
    config.upstream_selector = UpstreamSelector::KongRoute;
    config.kong = Some(KongDataPlane {
        proxy: proxy.to_owned(),
        ports,
    });
    let mut backends = Vec::new();
    let mut ids = BTreeSet::new();
    for (key, backend) in &mut config.backends {
        if backend.invalid.is_some() {
            continue;
        }
        let Some(target) = gateway.backends.get(key) else {
            // The resolver always resolves a valid backend; say so rather than route nowhere.
            return Err(DeliverError::Config(format!(
                "backend {key} has no resolved Service port"
            )));
        };
        let id = backend_id(key);
        if !ids.insert(id.clone()) {
            return Err(DeliverError::Config(format!(
                "two backends share the Kong id {id}; rename one of the Services"
            )));
        }
        let prefix = route_prefix(&options.route_secret, &id);
        let (host, port) = target_for(target, &options.cluster_domain);
        backend.upstream = Some(prefix.clone());
        backends.push(BackendEntities {
            name: format!("{name}.{id}"),
            key: key.clone(),
            host,
            port,
            prefix,
        });
    }
    let mut warnings = refused;
    warnings.extend(limitations(&config));
    let filters = filters(&config, options.config_as_string)?;
    Ok(Layout {
        name,
        proxy: proxy_address,
        backends,
        filters,
        warnings,
    })
}

/// Kong listen port → Gateway port, required for every port of a multi-port Gateway.
fn kong_ports(
    gateway: &GatewayResult,
    options: &KongOptions,
) -> Result<BTreeMap<u16, u16>, DeliverError> {
    let ports: BTreeSet<u16> = gateway.config.listeners.iter().map(|l| l.port).collect();
    if ports.len() <= 1 {
        return Ok(BTreeMap::new());
    }
    let missing: Vec<String> = ports
        .iter()
        .filter(|p| !options.ports.contains_key(p))
        .map(u16::to_string)
        .collect();
    if !missing.is_empty() {
        let all: Vec<String> = ports.iter().map(u16::to_string).collect();
        return Err(DeliverError::Config(format!(
            "Gateway {} listens on ports {}; in Kong the filter tells them apart by the Kong listener a request arrived on, so map each with --kong-port GATEWAY_PORT=KONG_PORT (missing: {})",
            gateway.gateway,
            all.join(", "),
            missing.join(", ")
        )));
    }
    let mut map = BTreeMap::new();
    for port in ports {
        if let Some(kong_port) = options.ports.get(&port)
            && map.insert(*kong_port, port).is_some()
        {
            return Err(DeliverError::Config(format!(
                "--kong-port maps two Gateway ports to Kong port {kong_port}"
            )));
        }
    }
    Ok(map)
}

/// Takes the GRPCRoutes out of what Kong gets, with one warning naming each, and the backends only
/// they used. Kong cannot carry the filter's choice for a gRPC call: it proxies gRPC only through
/// `grpc_pass $upstream_scheme://kong_upstream` (`kong/templates/nginx_kong.lua` 346 at 3.9.3,
/// `location @grpc`), which sends the client's `:path` as it came — `$upstream_uri`, the filter's
/// one lever (*Upstream selection* in `docs/kong.md`), is not used there — and a service of
/// protocol `grpc` may not have a path (`kong/db/schema/entities/services.lua` 54), so no backend
/// route can be reached by prefix; and the entry hop to Kong's own listener is an HTTP/1.1
/// `proxy_pass` (`proxy_http_version 1.1`, 181), which cannot carry gRPC's trailers. One GRPCRoute must not stop the Gateway's HTTPRoutes from being
/// delivered, so the rest of the config still goes out; gRPC calls get what the HTTPRoutes give
/// them, as if the GRPCRoutes did not exist.
fn refuse_grpc_routes(config: &mut PluginConfig) -> Vec<String> {
    if config.grpc_routes.is_empty() {
        return Vec::new();
    }
    let warnings = std::mem::take(&mut config.grpc_routes)
        .iter()
        .map(|route| {
            format!(
                "GRPCRoute {}/{} is not delivered to Kong: Kong proxies gRPC only with grpc_pass, which cannot carry the filter's backend choice (docs/kong.md, GRPCRoute); gRPC calls get what the HTTPRoutes give them",
                route.namespace, route.name
            )
        })
        .collect();
    let mut used = BTreeSet::new();
    for rule in config.routes.iter().flat_map(|r| &r.rules) {
        let filters = rule
            .filters
            .iter()
            .chain(rule.backend_refs.iter().flat_map(|b| &b.filters));
        for filter in filters {
            if let Filter::RequestMirror { request_mirror } = filter {
                used.insert(request_mirror.backend.clone());
            }
        }
        used.extend(rule.backend_refs.iter().map(|b| b.backend.clone()));
    }
    config.backends.retain(|key, _| used.contains(key));
    warnings
}

/// Gateway API features in the config that Kong cannot apply, one line per route rule.
fn limitations(config: &PluginConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    for route in &config.routes {
        for (i, rule) in route.rules.iter().enumerate() {
            let mut lacking = Vec::new();
            if rule.timeouts.is_some() {
                lacking.push("timeouts");
            }
            if rule.retry.is_some() {
                lacking.push("retry");
            }
            if !lacking.is_empty() {
                warnings.push(format!(
                    "HTTPRoute {}/{} rules[{i}]: {} not applied on Kong (a filter cannot set Kong's per-request timeouts or retries; the backend service's defaults apply, see docs/kong.md)",
                    route.namespace,
                    route.name,
                    lacking.join(" and ")
                ));
            }
        }
    }
    warnings
}

/// Removes every member whose value is an empty list, at any depth: Kong would hand it to the
/// filter as `{}` (lua-cjson encodes an empty Lua table as an object). `listeners` stays (a
/// required field; the engine reads `{}` there as an empty list too).
pub fn prune_empty_lists(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|key, member| {
                !(key != "listeners" && member.as_array().is_some_and(Vec::is_empty))
            });
            for member in members.values_mut() {
                prune_empty_lists(member);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty_lists),
        _ => {}
    }
}

/// The filter chain's `filters` array for a Kong-ready config.
fn filters(config: &PluginConfig, as_string: bool) -> Result<Value, DeliverError> {
    let mut config = serde_json::to_value(config)
        .map_err(|e| DeliverError::Config(format!("serializing the PluginConfig: {e}")))?;
    prune_empty_lists(&mut config);
    let config = if as_string {
        Value::String(config.to_string())
    } else {
        config
    };
    Ok(json!([{"name": FILTER_NAME, "enabled": true, "config": config}]))
}

/// The Gateway's tags: every entity carries the Gateway's name (the database mode lists by it).
pub fn tags(name: &str) -> Value {
    json!(["gateway-wasm", name])
}

/// The entry service's fields (both modes).
pub fn entry_service(layout: &Layout) -> Map<String, Value> {
    service(&layout.name, &layout.proxy.0, layout.proxy.1)
}

/// A backend service's fields.
pub fn backend_service(layout: &Layout, backend: &BackendEntities) -> Map<String, Value> {
    let mut fields = service(&backend.name, &backend.host, backend.port);
    fields.insert("tags".into(), tags(&layout.name));
    fields
}

fn service(name: &str, host: &str, port: u16) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("protocol".into(), json!("http"));
    fields.insert("host".into(), json!(host));
    fields.insert("port".into(), json!(port));
    fields
}

/// The entry route's fields without its service reference.
pub fn entry_route(layout: &Layout) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(layout.name));
    fields.insert("protocols".into(), json!(["http", "https"]));
    fields.insert("paths".into(), json!(["/"]));
    fields.insert("strip_path".into(), json!(false));
    fields.insert("preserve_host".into(), json!(true));
    fields
}

/// A backend route's fields without its service reference: the prefix, stripped before the
/// request goes on, and the Host as the entry pass left it.
pub fn backend_route(layout: &Layout, backend: &BackendEntities) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(backend.name));
    fields.insert("protocols".into(), json!(["http", "https"]));
    fields.insert("paths".into(), json!([backend.prefix]));
    fields.insert("strip_path".into(), json!(true));
    fields.insert("preserve_host".into(), json!(true));
    fields.insert("tags".into(), tags(&layout.name));
    fields
}

/// The declarative configuration (`_format_version: "3.0"`) a DB-less Kong gets for a Gateway:
/// the entry service with its route and filter chain nested, then one service per backend with
/// its route nested — the shape of `examples/kong/kong.yaml`. It is everything Kong will hold:
/// `POST /config` replaces the rest.
pub fn declarative_config(layout: &Layout) -> Value {
    let chain = json!({"name": layout.name, "enabled": true, "filters": layout.filters});
    let mut route = entry_route(layout);
    route.insert("filter_chains".into(), json!([chain]));
    let mut entry = entry_service(layout);
    entry.insert("routes".into(), json!([route]));
    let mut services = vec![Value::Object(entry)];
    for backend in &layout.backends {
        let mut service = backend_service(layout, backend);
        service.insert(
            "routes".into(),
            json!([Value::Object(backend_route(layout, backend))]),
        );
        services.push(Value::Object(service));
    }
    json!({"_format_version": "3.0", "services": services})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lists_are_pruned_at_every_depth_but_listeners_stay() {
        let mut value = json!({
            "listeners": [],
            "routes": [{"parents": [{"listener": "http", "hostnames": []}],
                        "rules": [{"matches": [{"headers": [], "queryParams": []}], "filters": []}]}],
            "backends": {}
        });
        prune_empty_lists(&mut value);
        assert_eq!(
            value,
            json!({
                "listeners": [],
                "routes": [{"parents": [{"listener": "http"}], "rules": [{"matches": [{}]}]}],
                "backends": {}
            })
        );
    }

    /// A Gateway with an HTTPRoute and a GRPCRoute sharing one Service port (two backend keys),
    /// resolved from manifests.
    fn mixed_gateway() -> GatewayResult {
        let manifests = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: wasm}
spec: {controllerName: gateway-wasm.dev/controller-shim}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: wasm
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [web.example.com]
  rules: [{backendRefs: [{name: api, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.example.com]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 9090}}}]
    backendRefs: [{name: api, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: mirror, namespace: infra}
spec: {ports: [{port: 9090}]}
"#;
        let mut loaded = crate::manifests::Loaded::default();
        crate::manifests::load_str(manifests, std::path::Path::new("m.yaml"), &mut loaded).unwrap();
        crate::resolve(&loaded.snapshot, &crate::Settings::default())
            .gateways
            .remove(0)
    }

    /// Kong cannot carry the filter's choice for a gRPC call: GRPCRoutes are refused by name, and
    /// the HTTPRoutes of the same Gateway still go out, without the backends only GRPCRoutes used.
    #[test]
    fn grpc_routes_are_refused_by_name_and_the_rest_is_delivered() {
        let gateway = mixed_gateway();
        assert_eq!(gateway.config.grpc_routes.len(), 1, "the resolver emits it");
        let mut options = KongOptions::new("http://127.0.0.1:8001");
        options.route_secret = "test-secret-0123456789".to_owned();
        let layout = layout(&gateway, &options, "127.0.0.1:8000").unwrap();
        assert!(
            layout.warnings.iter().any(|w| w.starts_with(
                "GRPCRoute infra/rpc is not delivered to Kong: Kong proxies gRPC only with grpc_pass"
            )),
            "{:?}",
            layout.warnings
        );
        let keys: Vec<&str> = layout.backends.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["infra/api:8080"]);
        let config = &layout.filters[0]["config"];
        assert!(config.get("grpcRoutes").is_none(), "{config}");
        assert_eq!(config["routes"][0]["name"], "web");
        assert!(
            !config["backends"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("grpc:"))
        );
    }

    #[test]
    fn backend_ids_are_short_stable_hashes() {
        assert_eq!(
            backend_id("store/store-v1:8080"),
            backend_id("store/store-v1:8080")
        );
        assert_ne!(
            backend_id("store/store-v1:8080"),
            backend_id("store/store-v2:8080")
        );
        assert_eq!(backend_id("a/b:1").len(), 12);
        let secret = random_secret();
        assert_eq!(secret.len(), 32);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(route_prefix("s3cr3t", "0a1b"), "/.gateway-wasm/s3cr3t/0a1b");
    }

    #[test]
    fn host_port_splits_like_kong_listeners() {
        assert_eq!(
            split_host_port("127.0.0.1:8000"),
            Some(("127.0.0.1".to_owned(), 8000))
        );
        assert_eq!(
            split_host_port("[::1]:8000"),
            Some(("[::1]".to_owned(), 8000))
        );
        assert_eq!(split_host_port("8000"), None);
        assert_eq!(split_host_port("h:0"), None);
    }
}

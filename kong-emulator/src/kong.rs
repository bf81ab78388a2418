//! Kong's side: the entities of a declarative configuration, the router, `balancer_data`, the
//! access phase around the filter, and the proxying, as Kong 3.4–3.9's source does them
//! (Kong/kong: kong/init.lua `Kong.access` and `Kong.balancer`, kong/runloop/handler.lua
//! `access.before`/`access.after` and `balancer_prepare`, kong/runloop/balancer/init.lua
//! `execute` and `set_host_header`, kong/templates/nginx_kong.lua `location /`). Only what a
//! filter's routing can observe is modelled: routes match by path prefix (longest first), services
//! point at `host:port`, names resolve through the emulator's table, and the peer of each
//! connection attempt is chosen exactly as `Kong.balancer` chooses it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::version::KongVersion;

/// A Kong service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub id: String,
    pub host: String,
    pub port: u16,
    /// Connection retries (`service.retries`, default 5).
    pub retries: u32,
}

/// A Kong route (paths only: the shim's routes match nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub id: String,
    pub paths: Vec<String>,
    pub strip_path: bool,
    pub preserve_host: bool,
    /// Index into [`Entities::services`].
    pub service: usize,
}

/// What a declarative configuration declares, and the filter configuration of its one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entities {
    pub services: Vec<Service>,
    pub routes: Vec<Route>,
    /// The route carrying the filter chain, and the configuration bytes the filter gets.
    pub chain: Option<(usize, Vec<u8>)>,
}

fn text<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// Reads a declarative configuration in the nested shape the shim posts (`services[].routes[]
/// .filter_chains[]`). The filter config is what the workers hand the filter: a string as is,
/// an object re-encoded by lua-cjson (3.5+); before 3.5 only strings are accepted, as Kong's
/// schema does (`config = { type = "string" }`).
pub fn parse_declarative(doc: &Value, version: KongVersion) -> Result<Entities, String> {
    let mut entities = Entities::default();
    for (i, service) in doc["services"].as_array().into_iter().flatten().enumerate() {
        let name = text(service, "name").unwrap_or_default().to_owned();
        let host = text(service, "host")
            .ok_or_else(|| format!("services.{}: host is required", i + 1))?
            .to_owned();
        let port = service["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(80);
        let retries = service["retries"]
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(5);
        entities.services.push(Service {
            id: format!("service-{}", i + 1),
            name,
            host,
            port,
            retries,
        });
        let service_index = entities.services.len() - 1;
        for route in service["routes"].as_array().into_iter().flatten() {
            let paths: Vec<String> = route["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            entities.routes.push(Route {
                id: format!("route-{}", entities.routes.len() + 1),
                name: text(route, "name").unwrap_or_default().to_owned(),
                paths: if paths.is_empty() {
                    vec!["/".to_owned()]
                } else {
                    paths
                },
                strip_path: route["strip_path"].as_bool().unwrap_or(true),
                preserve_host: route["preserve_host"].as_bool().unwrap_or(false),
                service: service_index,
            });
            let route_index = entities.routes.len() - 1;
            for chain in route["filter_chains"].as_array().into_iter().flatten() {
                if chain["enabled"] == false {
                    continue;
                }
                for filter in chain["filters"].as_array().into_iter().flatten() {
                    if filter["enabled"] == false {
                        continue;
                    }
                    if filter["name"] != "gateway_wasm" {
                        return Err(format!("filter {}: no such filter", filter["name"]));
                    }
                    let config = match &filter["config"] {
                        Value::String(text) => text.clone().into_bytes(),
                        Value::Null => Vec::new(),
                        _ if !version.json_filter_config() => {
                            return Err("filters.1.config: expected a string".to_owned());
                        }
                        object => testkit::lua_cjson::reencode(object).into_bytes(),
                    };
                    if entities.chain.is_some() {
                        return Err(
                            "the emulation runs one filter chain with one filter".to_owned()
                        );
                    }
                    entities.chain = Some((route_index, config));
                }
            }
        }
    }
    Ok(entities)
}

impl Entities {
    /// Kong's router for path-only routes: the longest matching prefix of the normalized path.
    pub fn route_for(&self, uri: &str) -> Option<(usize, &str)> {
        let mut best: Option<(usize, &str)> = None;
        for (index, route) in self.routes.iter().enumerate() {
            for path in &route.paths {
                if uri.starts_with(path.as_str()) && best.is_none_or(|(_, p)| path.len() > p.len())
                {
                    best = Some((index, path.as_str()));
                }
            }
        }
        best
    }
}

/// `$upstream_uri` as `access.before` computes it: the request path with the matched prefix
/// stripped when `strip_path` is set (kept starting with `/`), without the query.
pub fn upstream_uri(raw_path: &str, prefix: &str, strip: bool) -> String {
    if !strip {
        return raw_path.to_owned();
    }
    match raw_path.get(prefix.len()..) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        Some(rest) => format!("/{rest}"),
        None => "/".to_owned(),
    }
}

/// Whether `host` is an IP literal (`balancer_data.type ~= "name"`).
pub fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
}

/// `balancer.execute` for a service without a Kong Upstream: an IP is used as is, a name goes
/// through DNS (`toip`).
pub fn resolve(host: &str, dns: &BTreeMap<String, String>) -> Option<String> {
    if is_ip(host) {
        return Some(host.to_owned());
    }
    dns.get(host).cloned()
}

/// `balancer.set_host_header` without `preserve_host`: the target host, with the port unless it is
/// the scheme's default.
pub fn host_header(hostname: &str, port: u16) -> String {
    if port == 80 {
        hostname.to_owned()
    } else {
        format!("{hostname}:{port}")
    }
}

/// The headers nginx sends upstream: the client's (after the filter's edits) without hop-by-hop
/// ones, then what Kong's `location /` sets (`proxy_set_header`, an empty value leaves the header
/// out). The emulation does not add `Via` or `X-Kong-Request-Id`.
pub fn upstream_headers(
    headers: &[(String, String)],
    vars: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    const SET: [(&str, &str); 10] = [
        ("TE", "upstream_te"),
        ("Host", "upstream_host"),
        ("Upgrade", "upstream_upgrade"),
        ("Connection", "upstream_connection"),
        ("X-Forwarded-For", "upstream_x_forwarded_for"),
        ("X-Forwarded-Proto", "upstream_x_forwarded_proto"),
        ("X-Forwarded-Host", "upstream_x_forwarded_host"),
        ("X-Forwarded-Port", "upstream_x_forwarded_port"),
        ("X-Forwarded-Path", "upstream_x_forwarded_path"),
        ("X-Forwarded-Prefix", "upstream_x_forwarded_prefix"),
    ];
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| {
            !SET.iter().any(|(s, _)| s.eq_ignore_ascii_case(n))
                && !n.eq_ignore_ascii_case("x-real-ip")
                && !n.eq_ignore_ascii_case("keep-alive")
        })
        .cloned()
        .collect();
    for (name, variable) in SET {
        if let Some(value) = vars.get(variable).filter(|v| !v.is_empty()) {
            out.push((name.to_owned(), value.clone()));
        }
    }
    if let Some(remote) = vars.get("remote_addr") {
        out.push(("X-Real-IP".to_owned(), remote.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_longest_prefix_wins_and_strip_path_keeps_a_slash() {
        let doc = json!({"services": [
            {"name": "entry", "host": "127.0.0.1", "port": 8000,
             "routes": [{"name": "entry", "paths": ["/"], "strip_path": false, "preserve_host": true}]},
            {"name": "b", "host": "10.0.0.1", "port": 8080,
             "routes": [{"name": "b", "paths": ["/.gateway-wasm/s/b1"], "strip_path": true}]}
        ]});
        let entities = parse_declarative(&doc, KongVersion::V3_9).unwrap_or_default();
        assert_eq!(
            entities.route_for("/.gateway-wasm/s/b1/x").map(|(i, _)| i),
            Some(1)
        );
        assert_eq!(entities.route_for("/x").map(|(i, _)| i), Some(0));
        assert_eq!(
            upstream_uri("/.gateway-wasm/s/b1/x", "/.gateway-wasm/s/b1", true),
            "/x"
        );
        assert_eq!(
            upstream_uri("/.gateway-wasm/s/b1", "/.gateway-wasm/s/b1", true),
            "/"
        );
        assert_eq!(upstream_uri("/x", "/", false), "/x");
    }

    #[test]
    fn object_configs_need_kong_3_5() {
        let doc = json!({"services": [{"name": "s", "host": "h", "routes": [{"filter_chains": [
            {"filters": [{"name": "gateway_wasm", "config": {"a": []}}]}]}]}]});
        assert!(parse_declarative(&doc, KongVersion::V3_4).is_err());
        let entities = parse_declarative(&doc, KongVersion::V3_5).unwrap_or_default();
        assert_eq!(
            entities.chain.map(|(_, c)| c),
            Some(br#"{"a":{}}"#.to_vec())
        );
    }

    #[test]
    fn names_resolve_through_the_table_and_ips_as_themselves() {
        let dns = BTreeMap::from([("svc.ns.svc.cluster.local".to_owned(), "10.0.0.9".to_owned())]);
        assert_eq!(resolve("10.0.0.1", &dns).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            resolve("svc.ns.svc.cluster.local", &dns).as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(resolve("other", &dns), None);
        assert_eq!(host_header("a", 80), "a");
        assert_eq!(host_header("a", 8080), "a:8080");
    }
}

//! Small builders for engine tests: routes written as JSON snippets, requests as one-liners, and a
//! sentinel convention — each rule forwards to a backend named after what the test expects.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

use engine::{Action, Decision, Request, RouteTable, SplitMix64};
use serde_json::{Value, json};

/// A config with one HTTP listener on port 80 (no hostname) and the given routes. Every backend key
/// used by a route is declared valid with `upstream` = key, except keys starting with `bad:` which
/// are declared invalid.
pub fn table(routes: Value) -> RouteTable {
    table_with(
        json!([{"name": "http", "port": 80, "protocol": "HTTP"}]),
        routes,
    )
}

pub fn table_with(listeners: Value, routes: Value) -> RouteTable {
    let config = config_json(listeners, routes);
    match RouteTable::from_json(config.to_string().as_bytes()) {
        Ok(table) => table,
        Err(e) => panic!("config rejected: {e}\n{config:#}"),
    }
}

pub fn config_json(listeners: Value, mut routes: Value) -> Value {
    let mut backends = serde_json::Map::new();
    if let Some(list) = routes.as_array_mut() {
        for route in list {
            if route.get("parents").is_none() {
                route["parents"] = json!([{"listener": "http"}]);
            }
            collect_backends(route, &mut backends);
        }
    }
    json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": listeners,
        "routes": routes,
        "backends": backends,
    })
}

fn collect_backends(value: &Value, out: &mut serde_json::Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(key)) = map.get("backend") {
                let entry = if key.starts_with("bad:") {
                    json!({"invalid": {"reason": "BackendNotFound", "message": "test"}})
                } else {
                    json!({"upstream": key})
                };
                out.insert(key.clone(), entry);
            }
            map.values().for_each(|v| collect_backends(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_backends(v, out)),
        _ => {}
    }
}

/// A route in namespace `ns` with the given rules.
pub fn route(name: &str, rules: Value) -> Value {
    json!({"namespace": "ns", "name": name, "rules": rules})
}

/// A rule with matches forwarding to `backend`.
pub fn rule(matches: Value, backend: &str) -> Value {
    json!({"matches": matches, "backendRefs": [{"backend": backend}]})
}

pub fn get(path: &str) -> Req {
    Req {
        method: "GET".into(),
        host: "example.com".into(),
        path: path.into(),
        headers: vec![],
        port: 80,
        sni: None,
    }
}

/// An owned request description, turned into an engine `Request` by `eval`.
#[derive(Clone)]
pub struct Req {
    pub method: String,
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub port: u16,
    pub sni: Option<String>,
}

impl Req {
    pub fn method(mut self, m: &str) -> Req {
        self.method = m.into();
        self
    }
    pub fn host(mut self, h: &str) -> Req {
        self.host = h.into();
        self
    }
    pub fn header(mut self, n: &str, v: &str) -> Req {
        self.headers.push((n.into(), v.into()));
        self
    }
    pub fn port(mut self, p: u16) -> Req {
        self.port = p;
        self
    }
    pub fn sni(mut self, s: &str) -> Req {
        self.sni = Some(s.into());
        self
    }
}

pub fn eval<'t>(table: &'t RouteTable, req: &'t Req) -> Decision<'t> {
    let request = Request {
        port: req.port,
        sni: req.sni.as_deref(),
        method: &req.method,
        authority: &req.host,
        path: &req.path,
        headers: &req.headers,
    };
    table.evaluate(&request, &mut SplitMix64(42))
}

/// The upstream a request is forwarded to, or `status:<code>` when the engine answers itself.
pub fn outcome(table: &RouteTable, req: &Req) -> String {
    match eval(table, req).action {
        Action::Forward(f) => f.upstream.to_owned(),
        Action::Redirect(r) => format!("status:{} {}", r.status, r.location),
        Action::Respond(r) => format!("status:{}", r.status),
    }
}

/// A PluginConfig with every list member written out, empty where it can be, and weights of 1, 3
/// and 0: what a producer that writes everything would send. Kong re-encodes its empty lists as
/// `{}` (`kong_reencoded.rs`); our own serializer leaves them out (`serialized_form.rs`).
pub fn every_list_spelled_out() -> Value {
    json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "routes": [{
            "namespace": "app", "name": "web",
            "parents": [{"listener": "http", "hostnames": []}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [], "queryParams": []}],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [], "add": [], "remove": []}},
                    {"type": "CORS", "cors": {"allowOrigins": ["*"], "allowMethods": [], "allowHeaders": [], "exposeHeaders": []}}
                ],
                "backendRefs": [{"backend": "app/web:80", "weight": 1, "filters": []},
                                {"backend": "app/web:80", "weight": 3, "filters": []},
                                {"backend": "app/web:80", "weight": 0, "filters": []}],
                "retry": {"attempts": 1, "codes": []}
            }, {
                "matches": [], "filters": [], "backendRefs": []
            }]
        }],
        "backends": {"app/web:80": {"upstream": "web"}}
    })
}

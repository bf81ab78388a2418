//! Synthetic but realistic route tables for benchmarks: many teams, one hostname per service, a mix
//! of prefix and exact paths, canary header matches and versioned query matches — and the request
//! mix that hits early, late and missing routes.

use serde_json::{Value, json};

/// A PluginConfig with `n` routes.
pub fn config(n: usize) -> Value {
    let mut routes = Vec::with_capacity(n);
    let mut backends = serde_json::Map::new();
    for i in 0..n {
        let host = host_for(i);
        let backend = format!("team{}/svc{i}:8080", i % 97);
        backends.insert(backend.clone(), json!({"upstream": backend}));
        let canary = format!("team{}/svc{i}-canary:8080", i % 97);
        backends.insert(canary.clone(), json!({"upstream": canary}));
        let mut rules = vec![
            json!({"matches": [{"path": {"type": "PathPrefix", "value": format!("/api/{i}/v1")}}],
                   "backendRefs": [{"backend": backend}]}),
            json!({"matches": [{"path": {"type": "Exact", "value": format!("/api/{i}/health")}}],
                   "backendRefs": [{"backend": backend}]}),
        ];
        if i % 5 == 0 {
            rules.push(json!({"matches": [{"path": {"type": "PathPrefix", "value": format!("/api/{i}")},
                                           "headers": [{"name": "x-canary", "value": "true"}]}],
                              "backendRefs": [{"backend": canary, "weight": 90}, {"backend": backend, "weight": 10}]}));
        }
        if i % 7 == 0 {
            rules.push(json!({"matches": [{"path": {"type": "PathPrefix", "value": format!("/api/{i}")},
                                           "queryParams": [{"name": "version", "value": "2"}]}],
                              "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-version", "value": "2"}]}}],
                              "backendRefs": [{"backend": canary}]}));
        }
        routes.push(json!({
            "namespace": format!("team{}", i % 97),
            "name": format!("route-{i}"),
            "parents": [{"listener": "http", "hostnames": [host]}],
            "rules": rules,
        }));
    }
    json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "bench"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "routes": routes,
        "backends": backends,
    })
}

/// Ten services share a hostname; every fifth hostname is a wildcard.
pub fn host_for(i: usize) -> String {
    let group = i / 10;
    if group % 5 == 4 {
        format!("*.team{group}.example.com")
    } else {
        format!("app{group}.example.com")
    }
}

fn request_host(i: usize) -> String {
    host_for(i).replace('*', "www")
}

/// One benchmark request: (label, authority, path, headers).
pub type BenchRequest = (&'static str, String, String, Vec<(String, String)>);

/// Requests covering early, late, header, query and missing routes.
pub fn requests(n: usize) -> Vec<BenchRequest> {
    let last = n - 1;
    let mid = n / 2 / 5 * 5;
    vec![
        ("early", request_host(0), "/api/0/v1/users/7".into(), vec![]),
        (
            "late",
            request_host(last),
            format!("/api/{last}/v1/orders"),
            vec![],
        ),
        (
            "exact",
            request_host(mid),
            format!("/api/{mid}/health"),
            vec![],
        ),
        (
            "header",
            request_host(mid),
            format!("/api/{mid}/x"),
            vec![("x-canary".into(), "true".into())],
        ),
        (
            "query",
            request_host(0),
            "/api/0/x?version=2".into(),
            vec![],
        ),
        (
            "missing-path",
            request_host(mid),
            "/nothing/here".into(),
            vec![],
        ),
        (
            "missing-host",
            "unknown.example.org".into(),
            "/api/0/v1".into(),
            vec![],
        ),
    ]
}

/// GRPCRoute tables for the gRPC evaluation benchmark: one GRPCRoute per service, ten services per
/// hostname (every fifth hostname a wildcard, as in `tables.rs`), each with an Exact
/// service-and-method rule, an Exact-service rule with a canary header, and on every eleventh
/// service a RegularExpression method rule. The requests hit early, late, header, regex and missing
/// services.
// `examples/evaluate_profile.rs` includes this file too and profiles HTTPRoute tables only.
#[allow(dead_code)]
pub mod grpc {
    use serde_json::{Value, json};

    use super::host_for;

    fn service(i: usize) -> String {
        format!("team{}.v1.Service{i}", i % 97)
    }

    /// A PluginConfig with `n` GRPCRoutes.
    pub fn config(n: usize) -> Value {
        let mut routes = Vec::with_capacity(n);
        let mut backends = serde_json::Map::new();
        for i in 0..n {
            let backend = format!("grpc:team{}/svc{i}:50051", i % 97);
            backends.insert(backend.clone(), json!({"upstream": backend}));
            let canary = format!("grpc:team{}/svc{i}-canary:50051", i % 97);
            backends.insert(canary.clone(), json!({"upstream": canary}));
            let mut rules = vec![
                json!({"matches": [{"method": {"service": service(i), "method": "Get"}}],
                       "backendRefs": [{"backend": backend}]}),
                json!({"matches": [{"method": {"service": service(i)},
                                    "headers": [{"name": "x-canary", "value": "true"}]}],
                       "backendRefs": [{"backend": canary, "weight": 90}, {"backend": backend, "weight": 10}]}),
            ];
            if i % 11 == 0 {
                rules.push(json!({"matches": [{"method": {"type": "RegularExpression",
                                                          "service": service(i).replace('.', "\\."),
                                                          "method": "List.*"}}],
                                  "backendRefs": [{"backend": backend}]}));
            }
            routes.push(json!({
                "namespace": format!("team{}", i % 97),
                "name": format!("grpc-{i}"),
                "parents": [{"listener": "http", "hostnames": [host_for(i)]}],
                "rules": rules,
            }));
        }
        json!({
            "schemaVersion": 1,
            "gateway": {"namespace": "infra", "name": "bench"},
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            "grpcRoutes": routes,
            "backends": backends,
        })
    }

    /// One gRPC benchmark call: (label, authority, `:path`, metadata, expected route and rule).
    pub type GrpcRequest = (
        &'static str,
        String,
        String,
        Vec<(String, String)>,
        Option<(String, usize)>,
    );

    /// Calls covering early, late, header, regex and missing services.
    pub fn requests(n: usize) -> Vec<GrpcRequest> {
        let last = n - 1;
        let host = |i: usize| host_for(i).replace('*', "www");
        let grpc = |extra: &[(&str, &str)]| {
            let mut headers = vec![("content-type".to_owned(), "application/grpc".to_owned())];
            headers.extend(
                extra
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            headers
        };
        let route = |i: usize, rule: usize| Some((format!("grpc-{i}"), rule));
        vec![
            (
                "early",
                host(0),
                format!("/{}/Get", service(0)),
                grpc(&[]),
                route(0, 0),
            ),
            (
                "late",
                host(last),
                format!("/{}/Get", service(last)),
                grpc(&[]),
                route(last, 0),
            ),
            (
                "header",
                host(last),
                format!("/{}/Put", service(last)),
                grpc(&[("x-canary", "true")]),
                route(last, 1),
            ),
            (
                "regex",
                host(0),
                format!("/{}/ListAll", service(0)),
                grpc(&[]),
                route(0, 2),
            ),
            (
                "missing-method",
                host(last),
                format!("/{}/Put", service(last)),
                grpc(&[]),
                None,
            ),
            (
                "missing-service",
                host(last),
                "/other.Service/Get".to_owned(),
                grpc(&[]),
                None,
            ),
        ]
    }
}

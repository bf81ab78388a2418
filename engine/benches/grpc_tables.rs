//! GRPCRoute tables for the gRPC evaluation benchmark: one GRPCRoute per service, ten services per
//! hostname (every fifth hostname a wildcard, as in `tables.rs`), each with an Exact
//! service-and-method rule, an Exact-service rule with a canary header, and on every eleventh
//! service a RegularExpression method rule. The requests hit early, late, header, regex and missing
//! services.

use serde_json::{Value, json};

use crate::tables::host_for;

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

//! The `grpcRoutes` part of the PluginConfig (the GRPCRoute contract between the shim and the
//! engine, `docs/plugin-config.md`, *GRPCRoute*): the document shape, Kong's `{}` for empty lists,
//! and validation errors that name the JSON path and the value.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

use engine::config::{GrpcMethodMatch, ValueMatchType};
use serde_json::{Value, json};

/// The contract's example document.
fn config() -> Value {
    json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "grpcRoutes": [{
            "namespace": "ns", "name": "r",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "parents": [{"listener": "http", "hostnames": ["grpc.example.com"]}],
            "rules": [{
                "name": "get",
                "matches": [{
                    "method": {"type": "Exact", "service": "pkg.Svc", "method": "Get"},
                    "headers": [{"type": "Exact", "name": "version", "value": "two"}]
                }, {
                    "method": {"type": "RegularExpression", "service": "pkg\\.v[0-9]+\\.Svc"}
                }, {
                    "method": {"method": "List"}
                }],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["y"]}},
                    {"type": "RequestMirror", "requestMirror": {"backend": "ns/mirror:50051", "percent": 10}}
                ],
                "backendRefs": [{"backend": "ns/svc:50051", "weight": 3, "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "z", "value": "2"}]}}
                ]}]
            }, {
                "matches": [],
                "filters": [{"type": "Unresolved", "reason": "ExtensionRef example.com/Auth a"}],
                "backendRefs": []
            }]
        }],
        "backends": {
            "ns/svc:50051": {"upstream": "ns/svc:50051"},
            "ns/mirror:50051": {"upstream": "ns/mirror:50051"}
        }
    })
}

fn error_for(config: Value) -> String {
    let parsed = match engine::parse(config.to_string().as_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => return e.to_string(),
    };
    match engine::validate(&parsed) {
        Ok(()) => panic!("config was accepted: {config:#}"),
        Err(e) => e.to_string(),
    }
}

fn with(pointer: &str, value: Value) -> Value {
    let mut config = config();
    *config
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = value;
    config
}

#[test]
fn the_contract_example_parses_validates_and_round_trips() {
    let parsed = engine::parse(config().to_string().as_bytes()).unwrap();
    engine::validate(&parsed).unwrap();
    let route = &parsed.grpc_routes[0];
    assert_eq!(route.rules.len(), 2);
    assert_eq!(
        route.rules[0].matches[2].method,
        Some(GrpcMethodMatch {
            kind: ValueMatchType::Exact,
            service: None,
            method: Some("List".into()),
        }),
        "type defaults to Exact; an absent service stays absent"
    );
    let again = engine::parse(&serde_json::to_vec(&parsed).unwrap()).unwrap();
    assert_eq!(again, parsed);
}

#[test]
fn configs_without_grpc_routes_serialize_as_before() {
    let mut config = config();
    config.as_object_mut().unwrap().remove("grpcRoutes");
    let parsed = engine::parse(config.to_string().as_bytes()).unwrap();
    assert!(parsed.grpc_routes.is_empty());
    let written = serde_json::to_value(&parsed).unwrap();
    assert!(written.get("grpcRoutes").is_none(), "{written}");
}

/// Kong hands every empty list to the filter as `{}` (`docs/kong.md`, *Empty lists*).
#[test]
fn every_empty_list_may_arrive_as_an_empty_object() {
    let config = json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "routes": {},
        "grpcRoutes": [{
            "namespace": "ns", "name": "r",
            "parents": [{"listener": "http", "hostnames": {}}],
            "rules": [{
                "matches": [{"method": {"service": "pkg.Svc"}, "headers": {}}],
                "filters": {},
                "backendRefs": [{"backend": "ns/svc:50051", "filters": {}}]
            }, {"matches": {}, "filters": {}, "backendRefs": {}}]
        }],
        "backends": {"ns/svc:50051": {"upstream": "ns/svc:50051"}}
    });
    let parsed = engine::parse(config.to_string().as_bytes()).unwrap();
    engine::validate(&parsed).unwrap();
    assert!(parsed.grpc_routes[0].rules[1].matches.is_empty());
    let empty = json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [],
        "grpcRoutes": {}
    });
    assert!(
        engine::parse(empty.to_string().as_bytes())
            .unwrap()
            .grpc_routes
            .is_empty()
    );
}

#[test]
fn errors_name_the_path_and_the_value() {
    let m = "/grpcRoutes/0/rules/0/matches/0";
    let cases = [
        (
            format!("{m}/method"),
            json!({"type": "Exact"}),
            "grpcRoutes[0].rules[0].matches[0].method: needs service or method (or both)",
        ),
        (
            format!("{m}/method"),
            json!({"service": ""}),
            "grpcRoutes[0].rules[0].matches[0].method.service: must not be empty",
        ),
        (
            format!("{m}/method"),
            json!({"service": "/pkg.Svc/Get"}),
            r#"grpcRoutes[0].rules[0].matches[0].method.service: "/pkg.Svc/Get" is not a gRPC service name"#,
        ),
        (
            format!("{m}/method"),
            json!({"service": "pkg.Svc", "method": "Get.All"}),
            r#"grpcRoutes[0].rules[0].matches[0].method.method: "Get.All" is not a gRPC method name"#,
        ),
        (
            format!("{m}/method"),
            json!({"type": "RegularExpression", "method": "(unclosed"}),
            r#"grpcRoutes[0].rules[0].matches[0].method.method: "(unclosed" is not a valid regular expression"#,
        ),
        (
            format!("{m}/method"),
            json!({"type": "RegularExpression", "service": "a".repeat(1025)}),
            "grpcRoutes[0].rules[0].matches[0].method.service: ",
        ),
        (
            format!("{m}/method"),
            json!({"type": "Prefix", "service": "pkg"}),
            "grpcRoutes[0].rules[0].matches[0].method.type: unknown variant `Prefix`",
        ),
        (
            format!("{m}/headers/0"),
            json!({"type": "RegularExpression", "name": "version", "value": "(a"}),
            r#"grpcRoutes[0].rules[0].matches[0].headers[0].value: "(a" is not a valid regular expression"#,
        ),
        (
            format!("{m}/headers/0"),
            json!({"name": "bad name", "value": "a"}),
            r#"grpcRoutes[0].rules[0].matches[0].headers[0].name: "bad name" is not a valid header name"#,
        ),
        (
            "/grpcRoutes/0/rules/0/filters/0".to_owned(),
            json!({"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}}),
            r#"grpcRoutes[0].rules[0].filters[0].type: "URLRewrite" is not a GRPCRoute filter"#,
        ),
        (
            "/grpcRoutes/0/rules/0/backendRefs/0/filters/0".to_owned(),
            json!({"type": "RequestRedirect", "requestRedirect": {}}),
            r#"grpcRoutes[0].rules[0].backendRefs[0].filters[0].type: "RequestRedirect" is not a GRPCRoute filter"#,
        ),
        (
            "/grpcRoutes/0/rules/0/filters/0".to_owned(),
            json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "a\nb"}]}}),
            "grpcRoutes[0].rules[0].filters[0].requestHeaderModifier.set[0].value:",
        ),
        (
            "/grpcRoutes/0/rules/0/filters/2/requestMirror/backend".to_owned(),
            json!("nope"),
            r#"grpcRoutes[0].rules[0].filters[2].requestMirror.backend: "nope" is not a key of backends"#,
        ),
        (
            "/grpcRoutes/0/rules/0/backendRefs/0/backend".to_owned(),
            json!("nope"),
            r#"grpcRoutes[0].rules[0].backendRefs[0].backend: "nope" is not a key of backends"#,
        ),
        (
            "/grpcRoutes/0/rules/0/backendRefs/0/weight".to_owned(),
            json!(1_000_001),
            "grpcRoutes[0].rules[0].backendRefs[0].weight: 1000001 is above the maximum",
        ),
        (
            "/grpcRoutes/0/parents/0/listener".to_owned(),
            json!("https"),
            r#"grpcRoutes[0].parents[0].listener: "https" is not a listener of this config"#,
        ),
        (
            "/grpcRoutes/0/parents/0/hostnames/0".to_owned(),
            json!("Bad_Host"),
            r#"grpcRoutes[0].parents[0].hostnames[0]: "Bad_Host" is not a valid hostname"#,
        ),
        (
            "/grpcRoutes/0/creationTimestamp".to_owned(),
            json!("yesterday"),
            r#"grpcRoutes[0].creationTimestamp: "yesterday" is not an RFC 3339 timestamp"#,
        ),
        (
            "/grpcRoutes/0/name".to_owned(),
            json!(""),
            "grpcRoutes[0].name: must not be empty",
        ),
        (
            "/grpcRoutes/0/rules/0/matches/0/method/service".to_owned(),
            json!(["pkg.Svc"]),
            "grpcRoutes[0].rules[0].matches[0].method.service: invalid type: sequence",
        ),
    ];
    for (pointer, value, expected) in cases {
        let message = error_for(with(&pointer, value));
        assert!(
            message.starts_with(expected),
            "{pointer}:\n  got      {message}\n  expected {expected}…"
        );
    }
}

#[test]
fn grpc_routes_and_routes_have_separate_names() {
    let mut config = config();
    // An HTTPRoute may share namespace/name with a GRPCRoute: they are different kinds.
    config["routes"] = json!([{"namespace": "ns", "name": "r", "parents": [{"listener": "http"}],
                                "rules": [{"backendRefs": [{"backend": "ns/svc:50051"}]}]}]);
    let parsed = engine::parse(config.to_string().as_bytes()).unwrap();
    engine::validate(&parsed).unwrap();
    // Two GRPCRoutes may not.
    let route = config["grpcRoutes"][0].clone();
    config["grpcRoutes"].as_array_mut().unwrap().push(route);
    let message = error_for(config);
    assert!(
        message.starts_with("grpcRoutes[1]: GRPCRoute ns/r appears twice"),
        "{message}"
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let message = error_for(with(
        "/grpcRoutes/0/rules/0/matches/0/method",
        json!({"service": "pkg.Svc", "path": "/x"}),
    ));
    assert!(
        message.starts_with("grpcRoutes[0].rules[0].matches[0].method"),
        "{message}"
    );
    assert!(message.contains("unknown field `path`"), "{message}");
}

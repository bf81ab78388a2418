#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

use super::*;
use crate::manifests::{Loaded, load_str};
use crate::{Settings, resolve};

#[test]
fn headers_given_apart_read_like_the_cli_header() {
    assert_eq!(
        header(" X-A ", "  b "),
        request_text::parse_header("X-A:  b ").unwrap()
    );
}

const MANIFESTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/explain.yaml"
));

fn resolution() -> Resolution {
    let mut loaded = Loaded::default();
    load_str(MANIFESTS, Path::new("m.yaml"), &mut loaded).unwrap();
    resolve(&loaded.snapshot, &Settings::default())
}

fn explained(line: &str, headers: &[(&str, &str)]) -> Explanation {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    explain(
        &resolution(),
        None,
        &request_text::parse_request(line).unwrap(),
        &headers,
    )
    .unwrap()
}

#[test]
fn a_forward_names_route_rule_backend_and_edits() {
    let e = explained("GET http://www.example.com/shop", &[("x-debug", "1")]);
    assert_eq!(e.gateway, "infra/edge");
    assert_eq!(e.listener.as_deref(), Some("http"));
    let d = &e.decision;
    assert_eq!(d.kind, "forward");
    let route = d.route.as_ref().unwrap();
    assert_eq!(
        (route.name.as_str(), route.rule, route.match_index),
        ("web", 1, 0)
    );
    assert_eq!(d.backend.as_deref(), Some("app/web:8080"));
    assert_eq!(d.status, None);
    let ops: Vec<_> = d
        .request_headers
        .iter()
        .map(|h| (h.op, h.name.as_str()))
        .collect();
    assert_eq!(ops, [("set", "x-team"), ("remove", "x-debug")]);
    assert!(!e.trace.is_empty());
}

#[test]
fn redirects_and_local_answers_carry_status_and_reason() {
    let e = explained("http://www.example.com/old/a?x=1", &[]);
    assert_eq!(e.decision.kind, "redirect");
    assert_eq!(e.decision.status, Some(301));
    assert_eq!(
        e.decision.location.as_deref(),
        Some("http://www.example.com/new/a?x=1")
    );
    assert_eq!(
        e.decision.route.as_ref().unwrap().rule_name.as_deref(),
        Some("old")
    );

    let e = explained("http://other.example.com/", &[]);
    assert_eq!((e.decision.kind, e.decision.status), ("local", Some(404)));
    assert_eq!(e.decision.reason, Some("no_route"));
    assert!(e.decision.route.is_none());

    let e = explained("http://www.example.com/gone", &[]);
    assert_eq!(e.decision.reason, Some("invalid_backend"));
    assert_eq!(e.decision.status, Some(500));
    assert_eq!(e.decision.message.as_deref(), Some("BackendNotFound"));
    assert_eq!(
        e.decision.backend.as_deref(),
        Some("invalid:BackendNotFound:app/missing:8080")
    );
}

#[test]
fn the_json_has_the_fixed_top_level_keys_in_order_and_every_decision_key() {
    let json = explained("GET http://www.example.com/", &[]).to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    // serde_json's map is sorted: check the text for the order instead.
    assert_eq!(keys.len(), 4);
    let at = |key: &str| json.find(&format!("\n  \"{key}\":")).unwrap();
    assert!(at("gateway") < at("listener") && at("listener") < at("decision"));
    assert!(at("decision") < at("trace"));
    let decision = value["decision"].as_object().unwrap();
    for key in [
        "kind",
        "route",
        "status",
        "reason",
        "grpcStatus",
        "message",
        "backend",
        "upstream",
        "location",
        "path",
        "host",
        "requestHeaders",
        "responseHeaders",
        "requestTimeoutMs",
        "backendRequestTimeoutMs",
        "retry",
        "mirrors",
    ] {
        assert!(decision.contains_key(key), "decision lacks {key}: {json}");
    }
    assert_eq!(decision.len(), 17, "{json}");
    assert_eq!(value["decision"]["route"]["match"], 0);
    assert_eq!(value["decision"]["route"]["kind"], "HTTPRoute");
}

#[test]
fn gateways_are_picked_by_name_or_alone() {
    let resolution = resolution();
    let request = request_text::parse_request("http://www.example.com/").unwrap();
    assert!(explain(&resolution, Some("infra/edge"), &request, &[]).is_ok());
    let err = explain(&resolution, Some("infra/nope"), &request, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no Gateway infra/nope of ours (have: infra/edge)"
    );
    let err = explain(&resolution, Some("nope"), &request, &[]).unwrap_err();
    assert!(matches!(err, ExplainError::GatewayName { .. }));
    let err = explain(&Resolution::default(), None, &request, &[]).unwrap_err();
    assert_eq!(err, ExplainError::NoGateway);
}

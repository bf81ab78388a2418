//! Which cases the runners refuse to call checked.

use super::*;
use crate::vectors::{self, VectorFile};

fn case(json: &str) -> Case {
    serde_json::from_str(json).unwrap()
}

const HTTP_CASE: &str = r#"{
    "id": "T/0", "test": "T", "scope": "routing", "feature": "Core",
    "gateway": {"namespace": "ns", "name": "gw", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    "routes": [{"namespace": "ns", "name": "r", "parentRefs": [{"name": "gw"}], "rules": []}],
    "request": {"method": "GET", "scheme": "http", "port": 80, "host": null, "path": "/"},
    "expect": {"status": 200, "backend": "ns/svc"}
}"#;

#[test]
fn a_plain_httproute_case_is_checkable() {
    assert_eq!(unchecked_request_case(&case(HTTP_CASE)), None);
}

#[test]
fn unknown_fields_anywhere_under_expect_or_request_are_named() {
    let mut c = case(HTTP_CASE);
    c.expect
        .extra
        .insert("somethingNew".into(), serde_json::json!(1));
    c.expect.redirect = Some(serde_json::from_str(r#"{"path": "/", "hostSuffix": "x"}"#).unwrap());
    c.request
        .extra
        .insert("body".into(), serde_json::json!("hi"));
    let reason = unchecked_request_case(&c).unwrap();
    for path in [
        "expect.somethingNew",
        "expect.redirect.hostSuffix",
        "request.body",
    ] {
        assert!(reason.contains(path), "{reason}");
    }
}

#[test]
fn grpc_expectations_are_not_checked_by_http_runners() {
    let mut c = case(HTTP_CASE);
    c.expect.status = None;
    c.expect.grpc_status = Some(0);
    let reason = unchecked_request_case(&c).unwrap();
    assert!(reason.contains("grpcStatus"), "{reason}");
    let mut c = case(HTTP_CASE);
    c.expect.http_status_one_of = vec![200, 404];
    assert!(unchecked_request_case(&c).is_some());
}

#[test]
fn route_kinds_other_than_httproute_are_named_with_their_routes() {
    let mut c = case(HTTP_CASE);
    let mut grpc = c.routes[0].clone();
    grpc.kind = Some("GRPCRoute".into());
    grpc.name = "g".into();
    c.routes.push(grpc);
    let mut explicit_http = c.routes[0].clone();
    explicit_http.kind = Some("HTTPRoute".into());
    assert_eq!(unsupported_route_kinds(&[explicit_http]), None);
    assert_eq!(
        unchecked_request_case(&c).as_deref(),
        Some("GRPCRoute is not supported yet (ns/g)")
    );
}

#[test]
fn status_cases_with_unknown_nested_expectations_are_named() {
    let status: vectors::StatusCase = serde_json::from_str(
        r#"{"id": "S/0", "gateway": {"namespace": "ns", "name": "gw"},
            "expect": {"routeParentConditions": [{"route": "ns/r", "parent": "ns/gw", "conditions": [],
                                                  "message": "x"}],
                       "gatewayListenerStatus": [{"name": "http", "hostnames": []}]}}"#,
    )
    .unwrap();
    let reason = unchecked_status_case(&status).unwrap();
    assert!(
        reason.contains("expect.routeParentConditions[0].message"),
        "{reason}"
    );
    assert!(
        reason.contains("expect.gatewayListenerStatus[0].hostnames"),
        "{reason}"
    );
}

/// The HTTPRoute results must not change: every HTTPRoute case is still checkable.
#[test]
fn every_httproute_case_stays_checkable() {
    let file: VectorFile = vectors::load(vectors::httproute_vectors_path()).unwrap();
    for c in file.cases.iter().chain(&file.unreleased_cases) {
        assert_eq!(unchecked_request_case(c), None, "{}", c.id);
    }
    for c in &file.status_cases {
        assert_eq!(unchecked_status_case(c), None, "{}", c.id);
    }
}

#[test]
fn every_grpcroute_request_case_is_refused_with_the_kind() {
    let file: VectorFile = vectors::load(vectors::grpcroute_vectors_path()).unwrap();
    for c in file.cases.iter().chain(&file.unreleased_cases) {
        let reason = unchecked_request_case(c).unwrap();
        assert!(
            reason.starts_with("GRPCRoute is not supported yet"),
            "{}: {reason}",
            c.id
        );
    }
}

/// The native target runs gRPC calls: every GRPCRoute request case is checkable there, and an
/// unknown field or kind is still refused.
#[test]
fn every_grpcroute_request_case_is_checkable_with_grpc_calls() {
    let file: VectorFile = vectors::load(vectors::grpcroute_vectors_path()).unwrap();
    assert!(!file.cases.is_empty());
    for c in file.cases.iter().chain(&file.unreleased_cases) {
        assert_eq!(unchecked_request_case_with_grpc(c), None, "{}", c.id);
    }
    let mut c = file.cases[0].clone();
    c.expect
        .extra
        .insert("grpcTrailers".into(), serde_json::json!({"x": "y"}));
    let reason = unchecked_request_case_with_grpc(&c).unwrap();
    assert!(reason.contains("expect.grpcTrailers"), "{reason}");
    let mut c = file.cases[0].clone();
    c.routes[0].kind = Some("TLSRoute".into());
    assert!(unchecked_request_case_with_grpc(&c).is_some());
    assert_eq!(unchecked_request_case_with_grpc(&case(HTTP_CASE)), None);
}

/// The resolver handles GRPCRoutes: every GRPCRoute status case is checkable; a kind it does not
/// handle is still refused.
#[test]
fn grpcroute_status_cases_are_checkable() {
    let file: VectorFile = vectors::load(vectors::grpcroute_vectors_path()).unwrap();
    assert!(!file.status_cases.is_empty());
    for c in &file.status_cases {
        assert_eq!(unchecked_status_case(c), None, "{}", c.id);
    }
    let mut c = file.status_cases[0].clone();
    c.routes[0].kind = Some("TLSRoute".into());
    let reason = unchecked_status_case(&c).unwrap();
    assert!(
        reason.starts_with("TLSRoute is not supported yet"),
        "{reason}"
    );
}

/// The real-Envoy target sends gRPC calls: every GRPCRoute request case is checkable there, an
/// unknown field still makes it a skip, and a kind no target routes is still refused.
#[test]
fn grpc_capable_targets_check_every_grpcroute_request_case() {
    let file: VectorFile = vectors::load(vectors::grpcroute_vectors_path()).unwrap();
    for c in file.cases.iter().chain(&file.unreleased_cases) {
        assert_eq!(unchecked_grpc_capable_case(c), None, "{}", c.id);
    }
    let mut c = file.cases[0].clone();
    c.expect
        .extra
        .insert("grpcStatusDetails".into(), serde_json::json!([]));
    let reason = unchecked_grpc_capable_case(&c).unwrap();
    assert!(reason.contains("expect.grpcStatusDetails"), "{reason}");
    let mut c = file.cases[0].clone();
    c.routes[0].kind = Some("TLSRoute".into());
    let reason = unchecked_grpc_capable_case(&c).unwrap();
    assert!(
        reason.starts_with("TLSRoute is not supported yet"),
        "{reason}"
    );
    let http: VectorFile = vectors::load(vectors::httproute_vectors_path()).unwrap();
    for c in http.cases.iter().chain(&http.unreleased_cases) {
        assert_eq!(unchecked_grpc_capable_case(c), None, "{}", c.id);
    }
}

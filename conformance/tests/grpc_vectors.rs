//! The GRPCRoute vectors: they load completely, and no runner passes a case it does not check.

#![allow(clippy::unwrap_used, clippy::panic)]

use conformance::outcome::Outcome;
use conformance::vectors::{self, Case, VectorFile};
use conformance::{grpc_status, native, status};
use testkit::grpc::HttpToGrpc;

fn grpc_file() -> VectorFile {
    vectors::load(vectors::grpcroute_vectors_path()).unwrap()
}

#[test]
fn grpcroute_vectors_load_with_every_field_modelled() {
    let file = grpc_file();
    assert_eq!(file.cases.len(), 25);
    assert_eq!(file.status_cases.len(), 5);
    assert_eq!(file.unreleased_cases.len(), 7);
    assert_eq!(
        grpc_status::http_table(&file).unwrap(),
        HttpToGrpc::grpc_go()
    );
    let grpc_services: Vec<String> = file
        .services
        .iter()
        .filter(|s| s.grpc_echo)
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(
        grpc_services,
        [
            "grpc-infra-backend-v1",
            "grpc-infra-backend-v2",
            "grpc-infra-backend-v3"
        ]
    );
    for case in file.cases.iter().chain(&file.unreleased_cases) {
        let grpc = case.request.grpc.as_ref().unwrap();
        assert_eq!(grpc.path(), case.request.path, "{}", case.id);
        assert_eq!(case.needs_tls, Some(false), "{}", case.id);
        assert!(
            case.routes.iter().all(|r| r.kind() == "GRPCRoute"),
            "{}",
            case.id
        );
        assert!(
            grpc_status::expected_code(&case.expect).unwrap().is_some(),
            "{}",
            case.id
        );
        assert!(case.is_grpc());
        // Nothing under request or expect is unknown to the model.
        assert!(
            case.expect.extra.is_empty(),
            "{}: {:?}",
            case.id,
            case.expect.extra
        );
        assert!(
            case.request.extra.is_empty(),
            "{}: {:?}",
            case.id,
            case.request.extra
        );
        assert!(grpc.extra.is_empty(), "{}", case.id);
    }
    let asserted: Vec<Option<bool>> = file
        .unreleased_cases
        .iter()
        .map(|c| c.expect.headers_asserted_by_suite)
        .collect();
    assert!(asserted.iter().all(Option::is_some), "{asserted:?}");
}

/// A GRPCRoute is not an HTTPRoute: the HTTPRoute conversion refuses it instead of reading it as one.
#[test]
fn grpcroutes_are_not_converted_as_httproutes() {
    let file = grpc_file();
    let route = &file.cases[0].routes[0];
    let err = route.http_route_spec().unwrap_err();
    assert!(err.contains("is a GRPCRoute, not an HTTPRoute"), "{err}");
}

/// The native target runs every GRPCRoute request case through the filter and passes it; each
/// case with its gRPC status flipped (0 <-> 12) fails, so no expectation goes unchecked.
#[test]
fn native_passes_every_grpcroute_case_and_fails_it_flipped() {
    let file = grpc_file();
    for case in file.cases.iter().chain(&file.unreleased_cases) {
        assert_eq!(native::run(case, &file), Outcome::Pass, "{}", case.id);
        let mut flipped = case.clone();
        let (code, name) = if case.expect.grpc_status == Some(0) {
            (12, "UNIMPLEMENTED")
        } else {
            (0, "OK")
        };
        flipped.expect.grpc_status = Some(code);
        flipped.expect.grpc_status_name = Some(name.to_owned());
        match native::run(&flipped, &file) {
            Outcome::Fail(_) => {}
            other => panic!("{} flipped to grpcStatus {code}: {other:?}", case.id),
        }
    }
}

/// The resolver handles GRPCRoutes: every status case is checked and passes, and fails when its
/// expectation is flipped (nothing is passed unchecked).
#[test]
fn status_checks_every_grpcroute_case() {
    let file = grpc_file();
    for case in &file.status_cases {
        assert_eq!(status::check(case, &file), Outcome::Pass, "{}", case.id);
        let mut flipped = case.clone();
        for entry in &mut flipped.expect.route_parent_conditions {
            for condition in &mut entry.conditions {
                condition.status = "False".to_owned();
            }
        }
        assert!(
            matches!(status::check(&flipped, &file), Outcome::Fail(_)),
            "{} passes with its expectation flipped",
            case.id
        );
    }
}

/// GRPCExactMethodMatching/0 with its GRPCRoute rewritten as the HTTPRoute Envoy Gateway would
/// derive (POST to the exact path): the native target sends the gRPC call, an HTTPRoute takes it
/// and the gRPC outcome is checked: it passes, and fails flipped; an expectation the model does
/// not know is still a skip naming it.
#[test]
fn a_grpc_call_an_httproute_takes_is_checked_on_native() {
    let file = grpc_file();
    let mut case: Case = file.cases[0].clone();
    assert_eq!(case.id, "GRPCExactMethodMatching/0");
    let route = &mut case.routes[0];
    route.kind = Some("HTTPRoute".to_owned());
    route.spec.insert(
        "rules".to_owned(),
        serde_json::json!([{
            "matches": [{"method": "POST", "path": {"type": "Exact", "value": case.request.path}}],
            "backendRefs": [{"name": "grpc-infra-backend-v1", "port": 8080}]
        }]),
    );
    assert_eq!(native::run(&case, &file), Outcome::Pass);
    let mut flipped = case.clone();
    flipped.expect.grpc_status = Some(14);
    flipped.expect.grpc_status_name = Some("UNAVAILABLE".to_owned());
    assert!(matches!(native::run(&flipped, &file), Outcome::Fail(_)));
    let mut unknown = case.clone();
    unknown
        .expect
        .extra
        .insert("grpcStatusDetails".to_owned(), serde_json::json!("x"));
    match native::run(&unknown, &file) {
        Outcome::Skip(reason) => assert!(reason.contains("expect.grpcStatusDetails"), "{reason}"),
        other => panic!("expected a skip, got {other:?}"),
    }
}

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

#[test]
fn native_skips_every_grpcroute_case_with_the_reason_even_when_flipped() {
    let file = grpc_file();
    for case in file.cases.iter().chain(&file.unreleased_cases) {
        let mut flipped = case.clone();
        flipped.expect.grpc_status = Some(if case.expect.grpc_status == Some(0) {
            12
        } else {
            0
        });
        for case in [case, &flipped] {
            match native::run(case, &file) {
                Outcome::Skip(reason) => assert!(
                    reason.starts_with("GRPCRoute is not supported yet"),
                    "{}: {reason}",
                    case.id
                ),
                other => panic!("{}: {other:?}", case.id),
            }
        }
    }
}

#[test]
fn status_skips_every_grpcroute_case_with_the_reason() {
    let file = grpc_file();
    for case in &file.status_cases {
        match status::check(case, &file) {
            Outcome::Skip(reason) => {
                assert!(
                    reason.starts_with("GRPCRoute is not supported yet"),
                    "{reason}"
                )
            }
            other => panic!("{}: {other:?}", case.id),
        }
    }
}

/// GRPCExactMethodMatching/0 with its GRPCRoute rewritten as the HTTPRoute Envoy Gateway would
/// derive (POST to the exact path): the HTTP machinery can route it, but it cannot check the
/// gRPC outcome, so the case is skipped; flipped, it is skipped too; only without its gRPC
/// expectations does it pass, which shows the skip is what keeps it from passing unchecked.
#[test]
fn a_grpc_expectation_on_an_httproute_case_is_never_passed_unchecked() {
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

    let skip_reason = |case: &Case| match native::run(case, &file) {
        Outcome::Skip(reason) => reason,
        other => panic!("expected a skip, got {other:?}"),
    };
    assert!(skip_reason(&case).contains("grpcStatus"));
    let mut flipped = case.clone();
    flipped.expect.grpc_status = Some(14);
    flipped.expect.grpc_status_name = Some("UNAVAILABLE".to_owned());
    assert!(skip_reason(&flipped).contains("grpcStatus"));
    let mut unknown = case.clone();
    unknown.expect.grpc_status = None;
    unknown.expect.grpc_status_name = None;
    unknown.expect.http_status_one_of.clear();
    unknown
        .expect
        .extra
        .insert("grpcStatusDetails".to_owned(), serde_json::json!("x"));
    assert!(skip_reason(&unknown).contains("expect.grpcStatusDetails"));

    let mut http_only = unknown.clone();
    http_only.expect.extra.clear();
    http_only.request.grpc = None;
    assert_eq!(native::run(&http_only, &file), Outcome::Pass);
}

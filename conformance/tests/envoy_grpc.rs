//! GRPCRoute cases through the real Envoy with the filter, as `--target envoy` runs them: a routed
//! call, an unmatched one, the weighted split; and flipped expectations (backend, gRPC status,
//! metadata) fail rather than pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use conformance::envoy::EnvoyTarget;
use conformance::outcome::Outcome;
use conformance::vectors::{self, Case, VectorFile};

fn file() -> VectorFile {
    vectors::load(vectors::grpcroute_vectors_path()).unwrap()
}

fn case(file: &VectorFile, id: &str) -> Case {
    file.cases
        .iter()
        .chain(&file.unreleased_cases)
        .find(|c| c.id == id)
        .cloned()
        .unwrap()
}

fn assert_fails(target: &mut EnvoyTarget, case: &Case, file: &VectorFile, why: &str) {
    match target.run(case, file) {
        Outcome::Fail(reason) => assert!(reason.contains(why), "{}: {reason}", case.id),
        other => panic!("{} with a flipped expectation: {other:?}", case.id),
    }
}

#[test]
fn grpcroute_cases_pass_through_envoy_and_flipped_ones_fail() {
    let wasm = testkit::wasm::plugin_wasm().unwrap();
    let mut target = EnvoyTarget::new(&wasm).unwrap();
    let file = file();

    let routed = case(&file, "GRPCExactMethodMatching/1");
    assert_eq!(target.run(&routed, &file), Outcome::Pass);
    let mut other_backend = routed.clone();
    other_backend.expect.backend = Some("gateway-conformance-infra/grpc-infra-backend-v1".into());
    assert_fails(&mut target, &other_backend, &file, "backend");
    let mut unimplemented = routed.clone();
    unimplemented.expect.grpc_status = Some(12);
    unimplemented.expect.grpc_status_name = Some("UNIMPLEMENTED".into());
    unimplemented.expect.backend = None;
    assert_fails(&mut target, &unimplemented, &file, "grpc-status");

    let unmatched = case(&file, "GRPCRouteHeaderMatching/4");
    assert_eq!(target.run(&unmatched, &file), Outcome::Pass);
    let mut served = unmatched.clone();
    served.expect.grpc_status = Some(0);
    served.expect.grpc_status_name = Some("OK".into());
    served.expect.http_status_one_of = vec![200];
    assert_fails(&mut target, &served, &file, "grpc-status");

    let modified = case(&file, "GRPCRouteRequestHeaderModifier/4");
    assert_eq!(target.run(&modified, &file), Outcome::Pass);
    let mut kept = modified.clone();
    kept.expect.absent_request_headers = vec!["x-header-set".into()];
    assert_fails(&mut target, &kept, &file, "x-header-set");

    let weighted = case(&file, "GRPCRouteWeight/0");
    assert_eq!(target.run(&weighted, &file), Outcome::Pass);
    let mut even = weighted.clone();
    for share in even.expect.distribution.values_mut() {
        *share = 1.0 / 3.0;
    }
    assert!(matches!(target.run(&even, &file), Outcome::Fail(_)));
}

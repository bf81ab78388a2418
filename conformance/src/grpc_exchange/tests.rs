//! A gRPC call judged as a whole, against the vendored file's own cases: what passes, and that a
//! flipped expectation (status, backend, metadata) fails.

use bytes::Bytes;
use testkit::grpc::proto::{Assertions, Context, Header};
use testkit::grpc::status::{StreamEnd, frame_message};

use super::*;
use crate::grpc_status::http_table;
use crate::vectors::{self, VectorFile};

fn file() -> VectorFile {
    vectors::load(vectors::grpcroute_vectors_path()).unwrap()
}

fn case(id: &str) -> Case {
    let file = file();
    file.cases
        .iter()
        .chain(file.unreleased_cases.iter())
        .find(|c| c.id == id)
        .cloned()
        .unwrap()
}

/// What the echo server answers when `service` served the case's call and saw `metadata`.
fn echoed(case: &Case, service: &str, metadata: &[(&str, &str)]) -> GrpcAnswer {
    let response = EchoResponse {
        assertions: Some(Assertions {
            fully_qualified_method: case.request.path.clone(),
            headers: metadata
                .iter()
                .map(|(k, v)| Header {
                    key: (*k).to_owned(),
                    value: (*v).to_owned(),
                })
                .collect(),
            authority: authority(case, "192.0.2.10"),
            context: Some(Context {
                namespace: "gateway-conformance-infra".to_owned(),
                service_name: service.to_owned(),
                pod: format!("{service}-0"),
                ..Context::default()
            }),
            tls_assertions: None,
        }),
        request: None,
    };
    GrpcAnswer {
        status: Some(200),
        headers: vec![("content-type".to_owned(), "application/grpc".to_owned())],
        body: frame_message(&response.encode_to_vec()).unwrap(),
        end: StreamEnd::Trailers(vec![("grpc-status".to_owned(), "0".to_owned())]),
    }
}

fn unimplemented() -> GrpcAnswer {
    GrpcAnswer {
        status: Some(200),
        headers: vec![
            ("content-type".to_owned(), "application/grpc".to_owned()),
            ("grpc-status".to_owned(), "12".to_owned()),
        ],
        body: Bytes::new(),
        end: StreamEnd::TrailersOnly,
    }
}

fn judge(case: &Case, answer: &GrpcAnswer) -> Result<Exchange, String> {
    check(case, &http_table(&file()).unwrap(), answer)
}

#[test]
fn the_right_backend_passes_and_another_fails() {
    let c = case("GRPCRouteHeaderMatching/0");
    let metadata = [("version", "one")];
    let exchange = judge(&c, &echoed(&c, "grpc-infra-backend-v1", &metadata)).unwrap();
    assert_eq!(
        exchange.echo.unwrap().backend,
        "gateway-conformance-infra/grpc-infra-backend-v1"
    );
    let wrong = judge(&c, &echoed(&c, "grpc-infra-backend-v2", &metadata)).unwrap_err();
    assert!(wrong.contains("backend"), "{wrong}");
}

#[test]
fn metadata_the_backend_did_not_see_fails() {
    let c = case("GRPCRouteHeaderMatching/0");
    let missing = judge(&c, &echoed(&c, "grpc-infra-backend-v1", &[])).unwrap_err();
    assert!(missing.contains("version"), "{missing}");
}

#[test]
fn a_flipped_grpc_status_fails() {
    let c = case("GRPCRouteHeaderMatching/4");
    judge(&c, &unimplemented()).unwrap();
    let mut flipped = c.clone();
    flipped.expect.grpc_status = Some(0);
    flipped.expect.grpc_status_name = Some("OK".to_owned());
    assert!(judge(&flipped, &unimplemented()).is_err());

    let routed = case("GRPCExactMethodMatching/0");
    let served = echoed(&routed, "grpc-infra-backend-v1", &[]);
    judge(&routed, &served).unwrap();
    let mut flipped = routed.clone();
    flipped.expect.grpc_status = Some(12);
    flipped.expect.grpc_status_name = Some("UNIMPLEMENTED".to_owned());
    flipped.expect.backend = None;
    assert!(judge(&flipped, &served).is_err());
}

#[test]
fn header_modifier_expectations_are_checked_on_the_metadata() {
    let c = case("GRPCRouteRequestHeaderModifier/5");
    let expected: Vec<(String, String)> = c
        .expect
        .request_headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let as_refs: Vec<(&str, &str)> = expected
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    judge(&c, &echoed(&c, "grpc-infra-backend-v2", &as_refs)).unwrap();
    let mut leaked = as_refs.clone();
    leaked.push(("x-header-remove-2", "still here"));
    let err = judge(&c, &echoed(&c, "grpc-infra-backend-v2", &leaked)).unwrap_err();
    assert!(err.contains("x-header-remove-2"), "{err}");
}

#[test]
fn a_body_that_is_not_an_echo_response_is_an_error() {
    let c = case("GRPCExactMethodMatching/0");
    let mut answer = echoed(&c, "grpc-infra-backend-v1", &[]);
    answer.body = frame_message(b"\xff\xff\xff").unwrap();
    assert!(judge(&c, &answer).is_err());
}

#[test]
fn every_vendored_case_can_be_sent_as_a_grpc_client_would() {
    let file = file();
    for c in file.cases.iter().chain(file.unreleased_cases.iter()) {
        assert_eq!(unsendable(c), None, "{}", c.id);
    }
    let mut websocket = case("GRPCExactMethodMatching/0");
    websocket.expect.websocket_echo = vec!["hi".to_owned()];
    assert!(unsendable(&websocket).unwrap().contains("websocketEcho"));
    let mut get = case("GRPCExactMethodMatching/0");
    get.request.method = "GET".to_owned();
    assert!(unsendable(&get).unwrap().contains("POST"));
}

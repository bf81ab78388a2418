//! The gRPC check, from the schema's sentences and the vendored file's own expectations.

use bytes::Bytes;
use testkit::grpc::status::{StreamEnd, frame_message};

use super::*;
use crate::vectors;

fn file() -> VectorFile {
    vectors::load(vectors::grpcroute_vectors_path()).unwrap()
}

fn table() -> HttpToGrpc {
    http_table(&file()).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// What the vendored file expects for a request no route matches, and for a routed one.
fn expectation(code: u32) -> Expect {
    let file = file();
    file.cases
        .iter()
        .map(|c| c.expect.clone())
        .find(|e| e.grpc_status == Some(code))
        .unwrap()
}

fn trailers_only(status: u16, grpc_status: &str) -> GrpcAnswer {
    GrpcAnswer {
        status: Some(status),
        headers: headers(&[
            ("content-type", "application/grpc"),
            ("grpc-status", grpc_status),
            ("grpc-message", "no%20route"),
        ]),
        body: Bytes::new(),
        end: StreamEnd::TrailersOnly,
    }
}

fn plain(status: u16) -> GrpcAnswer {
    GrpcAnswer {
        status: Some(status),
        headers: headers(&[("content-type", "text/plain")]),
        body: Bytes::from_static(b"upstream says no"),
        end: StreamEnd::NoTrailers,
    }
}

fn served(grpc_status: &str) -> GrpcAnswer {
    GrpcAnswer {
        status: Some(200),
        headers: headers(&[("content-type", "application/grpc")]),
        body: frame_message(b"\x0a\x00").unwrap(),
        end: StreamEnd::Trailers(headers(&[("grpc-status", grpc_status)])),
    }
}

#[test]
fn the_files_table_is_grpc_gos() {
    let table = table();
    assert_eq!(table, HttpToGrpc::grpc_go());
    assert_eq!(table.code(404), GrpcCode::UNIMPLEMENTED);
    // "any other non-200 status -> 2 UNKNOWN"
    assert_eq!(table.code(500), GrpcCode::UNKNOWN);
}

#[test]
fn a_malformed_table_is_refused_by_name() {
    let mut file = file();
    file.grpc_status_from_http
        .insert("teapot".to_owned(), serde_json::json!(5));
    let err = http_table(&file).unwrap_err();
    assert!(err.contains("grpcStatusFromHttp.teapot"), "{err}");
    file.grpc_status_from_http.clear();
    assert_eq!(http_table(&file).unwrap(), HttpToGrpc::grpc_go());
}

#[test]
fn unimplemented_accepts_what_the_schema_lists() {
    let expect = expectation(12);
    assert_eq!(expect.http_status_one_of, vec![200, 404]);
    // "E.g. UNIMPLEMENTED: [200, 404]": a trailers-only 200 with grpc-status 12, or a 404.
    check(&expect, &trailers_only(200, "12"), &table()).unwrap();
    check(&expect, &plain(404), &table()).unwrap();
    check(&expect, &trailers_only(404, "12"), &table()).unwrap();
}

#[test]
fn unimplemented_refuses_everything_else() {
    let expect = expectation(12);
    let table = table();
    let refused = [
        // The backend answered: OK is not UNIMPLEMENTED.
        served("0"),
        // A 200 that is not gRPC is UNKNOWN.
        plain(200),
        // "never an HTTP 500 (a gRPC client reads that as UNKNOWN)"
        plain(500),
        // 503 is UNAVAILABLE, and not a listed status either.
        plain(503),
        trailers_only(200, "14"),
        // grpc-go v1.77+ reads grpc-status on a 404 with a gRPC content-type.
        trailers_only(404, "0"),
        // A gRPC 200 without trailers is INTERNAL.
        GrpcAnswer {
            end: StreamEnd::NoTrailers,
            ..served("12")
        },
    ];
    for answer in refused {
        let result = check(&expect, &answer, &table);
        assert!(result.is_err(), "{} passed", answer.summary());
    }
}

#[test]
fn ok_needs_a_grpc_answer_with_one_message() {
    let expect = expectation(0);
    assert_eq!(expect.http_status_one_of, vec![200]);
    let table = table();
    check(&expect, &served("0"), &table).unwrap();
    for answer in [
        trailers_only(200, "0"),
        served("14"),
        plain(200),
        plain(404),
        GrpcAnswer {
            status: None,
            headers: Vec::new(),
            body: Bytes::new(),
            end: StreamEnd::Reset(0x7),
        },
    ] {
        let err = check(&expect, &answer, &table).unwrap_err();
        assert!(!err.is_empty(), "{}", answer.summary());
    }
}

#[test]
fn a_flipped_expectation_fails() {
    let table = table();
    let mut expect = expectation(12);
    let answer = trailers_only(200, "12");
    check(&expect, &answer, &table).unwrap();
    for flipped in [0, 14, 2] {
        expect.grpc_status = Some(flipped);
        expect.grpc_status_name = GrpcCode(flipped).name().map(str::to_owned);
        let err = check(&expect, &answer, &table).unwrap_err();
        assert!(err.contains(&format!("grpc-status {flipped}")), "{err}");
    }
    let mut expect = expectation(12);
    expect.http_status_one_of = vec![404];
    assert!(check(&expect, &answer, &table).is_err());
}

#[test]
fn name_and_number_must_agree() {
    let table = table();
    let mut expect = expectation(12);
    expect.grpc_status_name = Some("UNAVAILABLE".to_owned());
    let err = check(&expect, &trailers_only(200, "12"), &table).unwrap_err();
    assert!(err.contains("contradicts"), "{err}");
    expect.grpc_status_name = Some("Unimplemented".to_owned());
    assert!(check(&expect, &trailers_only(200, "12"), &table).is_err());
    // The name alone is enough.
    expect.grpc_status = None;
    expect.grpc_status_name = Some("UNIMPLEMENTED".to_owned());
    check(&expect, &trailers_only(200, "12"), &table).unwrap();
    assert!(check(&expect, &served("0"), &table).is_err());
}

#[test]
fn failures_say_what_the_client_read() {
    let err = check(&expectation(12), &plain(500), &table()).unwrap_err();
    assert!(
        err.contains("HTTP status: expected one of [200, 404], got HTTP 500"),
        "{err}"
    );
    let err = check(&expectation(0), &trailers_only(200, "0"), &table()).unwrap_err();
    assert!(err.contains("expected OK (0)"), "{err}");
    assert!(err.contains("INTERNAL (13)"), "{err}");
    assert!(err.contains("cardinality"), "{err}");
}

//! How grpc-go reads answers, one rule per test (from grpc-go's `http2_client.go` and `stream.go`).

use super::*;

const BOTH: [GrpcGoRules; 2] = [
    GrpcGoRules::ContentTypeDecides,
    GrpcGoRules::Status200Required,
];

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn answer(status: u16, head: &[(&str, &str)], body: &[u8], end: StreamEnd) -> GrpcAnswer {
    GrpcAnswer {
        status: Some(status),
        headers: headers(head),
        body: Bytes::copy_from_slice(body),
        end,
    }
}

fn code(answer: &GrpcAnswer, rules: GrpcGoRules) -> GrpcCode {
    read_unary(answer, &HttpToGrpc::grpc_go(), rules).code
}

fn one_message() -> Bytes {
    frame_message(b"\x0a\x00").unwrap()
}

#[test]
fn grpc_content_types_are_grpcutil_content_subtype() {
    for ok in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;charset=utf-8",
        "application/grpc+",
    ] {
        assert!(is_grpc_content_type(ok), "{ok}");
    }
    for not in [
        "application/grpc-web",
        "application/grpcx",
        "Application/grpc",
        "text/plain",
        "",
    ] {
        assert!(!is_grpc_content_type(not), "{not}");
    }
}

#[test]
fn a_trailers_only_unimplemented_answer_reads_unimplemented() {
    let a = answer(
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-status", "12"),
            ("grpc-message", "no%20route%3A%20%2Fa.B%2FC"),
        ],
        b"",
        StreamEnd::TrailersOnly,
    );
    for rules in BOTH {
        let reading = read_unary(&a, &HttpToGrpc::grpc_go(), rules);
        assert_eq!(reading.code, GrpcCode::UNIMPLEMENTED);
        assert!(
            reading.message.contains("no route: /a.B/C"),
            "{}",
            reading.message
        );
    }
}

#[test]
fn plain_http_errors_go_through_the_status_table() {
    let cases = [
        (404, GrpcCode::UNIMPLEMENTED),
        (503, GrpcCode::UNAVAILABLE),
        (502, GrpcCode::UNAVAILABLE),
        (400, GrpcCode::INTERNAL),
        (401, GrpcCode::UNAUTHENTICATED),
        (403, GrpcCode::PERMISSION_DENIED),
        // "never an HTTP 500 (a gRPC client reads that as UNKNOWN)"
        (500, GrpcCode::UNKNOWN),
        (200, GrpcCode::UNKNOWN),
    ];
    for (status, expected) in cases {
        let a = answer(
            status,
            &[("content-type", "text/plain")],
            b"not found",
            StreamEnd::NoTrailers,
        );
        for rules in BOTH {
            assert_eq!(code(&a, rules), expected, "HTTP {status} {rules:?}");
        }
    }
}

#[test]
fn grpc_status_on_a_non_200_grpc_answer_depends_on_the_grpc_go_generation() {
    let a = answer(
        503,
        &[("content-type", "application/grpc")],
        &one_message(),
        StreamEnd::Trailers(headers(&[("grpc-status", "0")])),
    );
    assert_eq!(code(&a, GrpcGoRules::ContentTypeDecides), GrpcCode::OK);
    assert_eq!(
        code(&a, GrpcGoRules::Status200Required),
        GrpcCode::UNAVAILABLE
    );
    let agreeing = answer(
        404,
        &[("content-type", "application/grpc"), ("grpc-status", "12")],
        b"",
        StreamEnd::TrailersOnly,
    );
    for rules in BOTH {
        assert_eq!(code(&agreeing, rules), GrpcCode::UNIMPLEMENTED);
    }
}

#[test]
fn the_status_comes_from_the_trailers() {
    let ok = answer(
        200,
        &[("content-type", "application/grpc")],
        &one_message(),
        StreamEnd::Trailers(headers(&[("grpc-status", "0")])),
    );
    let unavailable = answer(
        200,
        &[("content-type", "application/grpc")],
        b"",
        StreamEnd::Trailers(headers(&[("grpc-status", "14")])),
    );
    let missing = answer(
        200,
        &[("content-type", "application/grpc")],
        &one_message(),
        StreamEnd::Trailers(headers(&[("x-other", "1")])),
    );
    let malformed = answer(
        200,
        &[("content-type", "application/grpc")],
        &one_message(),
        StreamEnd::Trailers(headers(&[("grpc-status", "fourteen")])),
    );
    let unknown_number = answer(
        200,
        &[("content-type", "application/grpc")],
        b"",
        StreamEnd::Trailers(headers(&[("grpc-status", "17")])),
    );
    for rules in BOTH {
        assert_eq!(code(&ok, rules), GrpcCode::OK);
        assert_eq!(code(&unavailable, rules), GrpcCode::UNAVAILABLE);
        assert_eq!(code(&missing, rules), GrpcCode::UNKNOWN);
        assert_eq!(code(&malformed, rules), GrpcCode::UNKNOWN);
        assert_eq!(code(&unknown_number, rules), GrpcCode(17));
    }
    assert_eq!(ok.grpc_status().as_deref(), Some("0"));
}

#[test]
fn a_grpc_stream_without_trailers_is_internal() {
    let a = answer(
        200,
        &[("content-type", "application/grpc")],
        &one_message(),
        StreamEnd::NoTrailers,
    );
    for rules in BOTH {
        assert_eq!(code(&a, rules), GrpcCode::INTERNAL);
    }
}

#[test]
fn resets_map_through_http2_err_conv_tab() {
    let before_headers = |error| GrpcAnswer {
        status: None,
        headers: Vec::new(),
        body: Bytes::new(),
        end: StreamEnd::Reset(error),
    };
    assert_eq!(
        code(&before_headers(0x7), GrpcGoRules::ContentTypeDecides),
        GrpcCode::UNAVAILABLE
    );
    assert_eq!(
        code(&before_headers(0x8), GrpcGoRules::ContentTypeDecides),
        GrpcCode::CANCELLED
    );
    assert_eq!(
        code(&before_headers(0x2), GrpcGoRules::ContentTypeDecides),
        GrpcCode::INTERNAL
    );
    assert_eq!(
        code(&before_headers(0x99), GrpcGoRules::ContentTypeDecides),
        GrpcCode::UNKNOWN
    );
    let after_headers = answer(
        200,
        &[("content-type", "application/grpc")],
        b"",
        StreamEnd::Reset(0x3),
    );
    assert_eq!(
        code(&after_headers, GrpcGoRules::ContentTypeDecides),
        GrpcCode::RESOURCE_EXHAUSTED
    );
    let no_headers_at_all = GrpcAnswer {
        status: None,
        headers: Vec::new(),
        body: Bytes::new(),
        end: StreamEnd::NoTrailers,
    };
    assert_eq!(
        code(&no_headers_at_all, GrpcGoRules::ContentTypeDecides),
        GrpcCode::INTERNAL
    );
}

#[test]
fn an_ok_unary_call_needs_exactly_one_message() {
    let with_body = |body: &[u8]| {
        answer(
            200,
            &[("content-type", "application/grpc")],
            body,
            StreamEnd::Trailers(headers(&[("grpc-status", "0")])),
        )
    };
    let two = [one_message(), one_message()].concat();
    let truncated = &one_message()[..4];
    let compressed = [&[1u8][..], &one_message()[1..]].concat();
    for rules in BOTH {
        assert_eq!(code(&with_body(&one_message()), rules), GrpcCode::OK);
        assert_eq!(code(&with_body(b""), rules), GrpcCode::INTERNAL);
        assert_eq!(code(&with_body(&two), rules), GrpcCode::INTERNAL);
        assert_eq!(code(&with_body(truncated), rules), GrpcCode::INTERNAL);
        assert_eq!(code(&with_body(&compressed), rules), GrpcCode::INTERNAL);
    }
}

#[test]
fn the_deadline_passing_is_deadline_exceeded() {
    let a = answer(
        200,
        &[("content-type", "application/grpc")],
        b"",
        StreamEnd::DeadlineExceeded,
    );
    assert_eq!(
        code(&a, GrpcGoRules::ContentTypeDecides),
        GrpcCode::DEADLINE_EXCEEDED
    );
}

#[test]
fn a_vector_file_table_replaces_grpc_gos() {
    let table = HttpToGrpc::from_pairs([(418, GrpcCode::ABORTED)]);
    let a = answer(418, &[], b"", StreamEnd::NoTrailers);
    assert_eq!(
        read_unary(&a, &table, GrpcGoRules::ContentTypeDecides).code,
        GrpcCode::ABORTED
    );
    assert_eq!(table.code(404), GrpcCode::UNKNOWN);
}

#[test]
fn names_and_numbers() {
    assert_eq!(GrpcCode::from_name("UNAVAILABLE"), Some(GrpcCode(14)));
    assert_eq!(GrpcCode::from_name("Unavailable"), None);
    assert_eq!(GrpcCode(12).name(), Some("UNIMPLEMENTED"));
    assert_eq!(GrpcCode(17).name(), None);
    assert_eq!(GrpcCode::UNIMPLEMENTED.to_string(), "UNIMPLEMENTED (12)");
    assert_eq!(GrpcCode(99).to_string(), "Code(99)");
}

#[test]
fn grpc_messages_are_percent_decoded() {
    assert_eq!(decode_grpc_message("a%20b%25c"), "a b%c");
    assert_eq!(decode_grpc_message("%E2%9C%93 ok"), "\u{2713} ok");
    assert_eq!(decode_grpc_message("50%"), "50%");
    assert_eq!(decode_grpc_message("%zz"), "%zz");
}

#[test]
fn frames_round_trip() {
    let body = [frame_message(b"abc").unwrap(), frame_message(b"").unwrap()].concat();
    let messages = split_messages(&body).unwrap();
    assert_eq!(messages, vec![Bytes::from_static(b"abc"), Bytes::new()]);
    assert!(split_messages(&body[..body.len() - 1]).is_err());
}

#[test]
fn summaries_name_what_was_seen() {
    let a = answer(
        200,
        &[("content-type", "application/grpc"), ("grpc-status", "12")],
        b"",
        StreamEnd::TrailersOnly,
    );
    assert_eq!(
        a.summary(),
        "HTTP 200 application/grpc, 0 body bytes, trailers-only, grpc-status 12"
    );
}

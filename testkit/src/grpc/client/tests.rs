//! The gRPC client against the echo server (h2c and TLS), a plain HTTP server, and a silent one.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::certs::CertificateAuthority;
use crate::echo::{EchoIdentity, EchoServer};
use crate::grpc::server::GrpcEchoServer;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn echo_server() -> GrpcEchoServer {
    GrpcEchoServer::start(
        EchoIdentity::new(
            "gateway-conformance-infra",
            "grpc-infra-backend-v1",
            "grpc-infra-backend-v1-abc",
        ),
        localhost(),
    )
    .unwrap()
}

#[test]
fn echo_and_echo_two_answer_with_the_servers_view() {
    let server = echo_server();
    let client = GrpcClient::h2c(server.addr());
    for method in [EchoMethod::Echo, EchoMethod::EchoTwo] {
        let call = client.echo(&GrpcRequest::echo(method)).unwrap();
        assert_eq!(call.code(), GrpcCode::OK, "{method:?}: {:?}", call.status);
        assert_eq!(call.answer.status, Some(200));
        assert!(call.answer.has_grpc_content_type());
        assert!(matches!(call.answer.end, StreamEnd::Trailers(_)));
        assert_eq!(call.answer.grpc_status().as_deref(), Some("0"));
        let response = call.response.unwrap();
        assert_eq!(response.request, Some(EchoRequest {}));
        let assertions = response.assertions.unwrap();
        assert_eq!(assertions.fully_qualified_method, method.path());
        let context = assertions.context.unwrap();
        assert_eq!(context.namespace, "gateway-conformance-infra");
        assert_eq!(context.service_name, "grpc-infra-backend-v1");
        assert_eq!(context.pod, "grpc-infra-backend-v1-abc");
        assert_eq!(assertions.tls_assertions, None);
    }
    assert_eq!(server.request_count(), 2);
}

#[test]
fn echo_three_and_unknown_methods_are_unimplemented_by_the_server() {
    let server = echo_server();
    let client = GrpcClient::h2c(server.addr());
    let three = client
        .echo(&GrpcRequest::echo(EchoMethod::EchoThree))
        .unwrap();
    assert_eq!(three.code(), GrpcCode::UNIMPLEMENTED);
    assert_eq!(three.answer.status, Some(200));
    assert_eq!(three.answer.end, StreamEnd::TrailersOnly);
    assert_eq!(
        three.answer.grpc_message().as_deref(),
        Some("method%20EchoThree%20not%20implemented")
    );
    assert!(
        three
            .status
            .message
            .contains("method EchoThree not implemented"),
        "{}",
        three.status.message
    );
    assert_eq!(three.response, None);

    let other_method = GrpcRequest::new(format!("/{}/EchoFour", super::super::proto::SERVICE));
    let call = client.echo(&other_method).unwrap();
    assert_eq!(call.code(), GrpcCode::UNIMPLEMENTED);
    assert!(
        call.status.message.contains(&format!(
            "unknown method EchoFour for service {}",
            super::super::proto::SERVICE
        )),
        "{}",
        call.status.message
    );

    let other_service = client
        .echo(&GrpcRequest::new("/other.Service/Echo"))
        .unwrap();
    assert_eq!(other_service.code(), GrpcCode::UNIMPLEMENTED);
    assert!(
        other_service
            .status
            .message
            .contains("unknown service other.Service"),
        "{}",
        other_service.status.message
    );
}

#[test]
fn metadata_reaches_the_server_and_comes_back() {
    let server = echo_server();
    let request = GrpcRequest::echo(EchoMethod::Echo)
        .with_metadata("X-Grpc-Test", "one")
        .with_metadata("x-multi", "a")
        .with_metadata("x-multi", "b")
        .with_metadata("x-data-bin", "aGVsbG8")
        .with_deadline(Duration::from_secs(5));
    let call = GrpcClient::h2c(server.addr()).echo(&request).unwrap();
    let seen = call.response.unwrap().assertions.unwrap();
    assert_eq!(seen.header("x-grpc-test").as_deref(), Some("one"));
    assert_eq!(seen.header("x-multi").as_deref(), Some("a,b"));
    assert_eq!(seen.header("x-data-bin").as_deref(), Some("hello"));
    assert_eq!(
        seen.header("content-type").as_deref(),
        Some("application/grpc")
    );
    assert_eq!(seen.header("user-agent").as_deref(), Some(USER_AGENT));
    // Reserved headers are not metadata (grpc-go's isReservedHeader).
    assert_eq!(seen.header("te"), None);
    assert_eq!(seen.header("grpc-timeout"), None);
    // ...but they were on the wire.
    let recorded = server.recent_requests(1).pop().unwrap();
    assert_eq!(recorded.header("te").as_deref(), Some("trailers"));
    assert_eq!(recorded.header("grpc-timeout").as_deref(), Some("5000000u"));
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, EchoMethod::Echo.path());
}

#[test]
fn authority_is_the_requests_or_the_dial_target() {
    let server = echo_server();
    let client = GrpcClient::h2c(server.addr());
    let authority = |request: &GrpcRequest| {
        let seen = client
            .echo(request)
            .unwrap()
            .response
            .unwrap()
            .assertions
            .unwrap();
        assert_eq!(seen.header(":authority"), Some(seen.authority.clone()));
        seen.authority
    };
    assert_eq!(
        authority(&GrpcRequest::echo(EchoMethod::Echo).with_authority("grpc.example.com")),
        "grpc.example.com"
    );
    assert_eq!(
        authority(&GrpcRequest::echo(EchoMethod::Echo).with_authority("grpc.example.com:8080")),
        "grpc.example.com:8080"
    );
    assert_eq!(
        authority(&GrpcRequest::echo(EchoMethod::Echo)),
        server.addr().to_string()
    );
}

#[test]
fn h2_over_tls_with_testkit_certificates() {
    let authority = CertificateAuthority::new("grpc test CA").unwrap();
    let cert = authority.issue(&["grpc.example.com"]).unwrap();
    let server = GrpcEchoServer::start_tls(
        EchoIdentity::new("ns", "grpc-tls", "grpc-tls-0"),
        localhost(),
        &cert,
    )
    .unwrap();
    let tls = TlsConfig::with_ca_pem("grpc.example.com", authority.cert_pem().as_bytes()).unwrap();
    let call = GrpcClient::tls(server.addr(), tls)
        .echo(&GrpcRequest::echo(EchoMethod::EchoTwo).with_authority("grpc.example.com"))
        .unwrap();
    assert_eq!(call.code(), GrpcCode::OK, "{:?}", call.status);
    let seen = call.response.unwrap().assertions.unwrap();
    let tls = seen.tls_assertions.unwrap();
    assert_eq!(tls.negotiated_protocol, "h2");
    assert_eq!(tls.server_name, "grpc.example.com");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.cipher_suite.starts_with("TLS_"), "{}", tls.cipher_suite);

    // A server certificate the client does not trust fails the call before any HTTP/2.
    let other = CertificateAuthority::new("another CA").unwrap();
    let untrusted =
        TlsConfig::with_ca_pem("grpc.example.com", other.cert_pem().as_bytes()).unwrap();
    let err = GrpcClient::tls(server.addr(), untrusted)
        .call_raw(&GrpcRequest::echo(EchoMethod::Echo))
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err}");
}

#[test]
fn plain_http_answers_stay_visible_as_such() {
    // The HTTP echo backend speaks h2c too; its retry simulator answers with any status.
    let http = EchoServer::start(EchoIdentity::new("ns", "http", "http-0"), localhost()).unwrap();
    let client = GrpcClient::h2c(http.addr());

    let ok = client
        .call_raw(&GrpcRequest::echo(EchoMethod::Echo))
        .unwrap();
    assert_eq!(ok.status, Some(200));
    assert_eq!(
        ok.header("content-type").as_deref(),
        Some("application/json")
    );
    let reading = read_unary(&ok, &HttpToGrpc::grpc_go(), GrpcGoRules::ContentTypeDecides);
    assert_eq!(reading.code, GrpcCode::UNKNOWN, "{reading:?}");

    let not_found = client
        .echo(&GrpcRequest::new(
            "/svc.S/M?uuid=grpc-404&succeedAfter=5&responseCode=404",
        ))
        .unwrap();
    assert_eq!(not_found.answer.status, Some(404));
    assert_eq!(not_found.answer.grpc_status(), None);
    assert_eq!(not_found.code(), GrpcCode::UNIMPLEMENTED);

    let server_error = client
        .echo(&GrpcRequest::new(
            "/svc.S/M?uuid=grpc-500&succeedAfter=5&responseCode=500",
        ))
        .unwrap();
    assert_eq!(server_error.answer.status, Some(500));
    assert_eq!(server_error.code(), GrpcCode::UNKNOWN);

    // Without responseCode the simulator fails the stream instead of answering: hyper's HTTP/2
    // server resets it, and the reset code decides the status.
    let reset = client
        .call_raw(&GrpcRequest::new("/svc.S/M?uuid=grpc-reset&succeedAfter=5"))
        .unwrap();
    assert_eq!(reset.status, None);
    assert_eq!(reset.end, StreamEnd::Reset(0x2));
    let reading = read_unary(
        &reset,
        &HttpToGrpc::grpc_go(),
        GrpcGoRules::ContentTypeDecides,
    );
    assert_eq!(reading.code, GrpcCode::INTERNAL);
}

#[test]
fn early_aborts_follow_grpc_go() {
    let server = echo_server();
    let http = crate::client::HttpClient::h2c(server.addr());
    let get = http
        .send(&crate::client::Request::get(EchoMethod::Echo.path()))
        .unwrap();
    assert_eq!(get.status, 405);
    assert_eq!(get.header("grpc-status").as_deref(), Some("13"));
    let json = http
        .send(
            &crate::client::Request::new("POST", EchoMethod::Echo.path())
                .with_header("content-type", "application/json"),
        )
        .unwrap();
    assert_eq!(json.status, 415);
    assert_eq!(
        json.header("content-type").as_deref(),
        Some("application/grpc")
    );
    assert_eq!(json.header("grpc-status").as_deref(), Some("3"));
}

/// A server that accepts connections and never answers: the deadline decides.
fn silent_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..2 {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    (addr, handle)
}

#[test]
fn the_deadline_ends_a_call_with_deadline_exceeded() {
    let (addr, _server) = silent_server();
    let client = GrpcClient::h2c(addr).with_timeout(Duration::from_millis(300));
    let call = client
        .echo(&GrpcRequest::echo(EchoMethod::Echo).with_deadline(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(call.answer.status, None);
    assert_eq!(call.answer.end, StreamEnd::DeadlineExceeded);
    assert_eq!(call.code(), GrpcCode::DEADLINE_EXCEEDED);
    // Without a deadline, the client's own timeout is an error, not a gRPC status.
    let err = client
        .call_raw(&GrpcRequest::echo(EchoMethod::Echo))
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
}

#[test]
fn timeouts_are_encoded_like_grpc_go() {
    assert_eq!(encode_timeout(Duration::ZERO), "0n");
    assert_eq!(
        encode_timeout(Duration::from_nanos(99_999_999)),
        "99999999n"
    );
    assert_eq!(encode_timeout(Duration::from_millis(100)), "100000u");
    assert_eq!(encode_timeout(Duration::from_secs(5)), "5000000u");
    assert_eq!(encode_timeout(Duration::from_secs(100_000)), "100000S");
    assert_eq!(
        encode_timeout(Duration::from_nanos(1_000_000_001)),
        "1000001u"
    );
}

#[test]
fn bad_requests_are_refused_before_sending() {
    let client = GrpcClient::h2c("127.0.0.1:1".parse().unwrap());
    let err = client
        .call_raw(&GrpcRequest::echo(EchoMethod::Echo).with_authority("bad authority"))
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidRequest(_)), "{err}");
    let err = client
        .call_raw(&GrpcRequest::echo(EchoMethod::Echo).with_metadata("x-a", "line\nbreak"))
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidRequest(_)), "{err}");
    // Nothing listens on port 1: the connection error is an error, not a status.
    let err = client
        .call_raw(&GrpcRequest::echo(EchoMethod::Echo))
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

//! Tests of the echo server, over real sockets.

use super::*;
use crate::client::{ClientError, HttpClient, HttpVersion, Request};
use crate::websocket::Message;
use std::io::{Read as _, Write as _};

fn server(service: &str) -> EchoServer {
    EchoServer::start(
        EchoIdentity::new(
            "gateway-conformance-infra",
            service,
            format!("{service}-pod-1"),
        ),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

#[test]
fn echoes_request_and_identity_over_http1() {
    let echo = server("infra-backend-v1");
    let response = HttpClient::http1(echo.addr())
        .send(
            &Request::new("PATCH", "/some/path?a=1&b=%2F")
                .with_host("example.com:8080")
                .with_header("x-lower-case", "one")
                .with_header("X-Repeated", "first")
                .with_header("x-repeated", "second")
                .with_body("payload"),
        )
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = response.echo().unwrap();
    assert_eq!(body.path, "/some/path?a=1&b=%2F");
    assert_eq!(body.host, "example.com:8080");
    assert_eq!(body.method, "PATCH");
    assert_eq!(body.proto, "HTTP/1.1");
    assert_eq!(body.http_version, "1.1");
    assert_eq!(body.namespace, "gateway-conformance-infra");
    assert_eq!(body.service, "infra-backend-v1");
    assert_eq!(body.pod, "infra-backend-v1-pod-1");
    assert_eq!(
        body.headers.get("X-Lower-Case").unwrap(),
        &vec!["one".to_owned()]
    );
    assert_eq!(
        body.headers.get("X-Repeated").unwrap(),
        &vec!["first".to_owned(), "second".to_owned()]
    );
    assert_eq!(body.header("content-length").unwrap(), ["7".to_owned()]);
    assert!(
        body.header("host").is_none(),
        "Host is reported in `host`, not in headers"
    );
    // The raw JSON uses the conformance field names.
    let json = response.json().unwrap();
    for field in [
        "path",
        "host",
        "method",
        "proto",
        "headers",
        "namespace",
        "service",
        "pod",
        "httpVersion",
    ] {
        assert!(json.get(field).is_some(), "missing {field} in {json}");
    }
}

#[test]
fn speaks_h2c_on_the_same_port() {
    let echo = server("h2");
    let response = HttpClient::h2c(echo.addr())
        .send(
            &Request::get("/h2?x=y")
                .with_host("h2.example")
                .with_header("x-test", "v"),
        )
        .unwrap();
    assert_eq!(response.version, HttpVersion::Http2);
    let body = response.echo().unwrap();
    assert_eq!(body.proto, "HTTP/2.0");
    assert_eq!(body.http_version, "2");
    assert_eq!(body.host, "h2.example");
    assert_eq!(body.path, "/h2?x=y");
    assert_eq!(body.header("x-test").unwrap(), ["v".to_owned()]);
    // And HTTP/1.1 still works on the same listener.
    let body = HttpClient::http1(echo.addr())
        .send(&Request::get("/"))
        .unwrap()
        .echo()
        .unwrap();
    assert_eq!(body.proto, "HTTP/1.1");
    assert_eq!(body.host, echo.addr().to_string());
}

#[test]
fn x_echo_set_header_sets_response_headers() {
    let echo = server("set-header");
    let response = HttpClient::http1(echo.addr())
        .send(
            &Request::get("/")
                .with_header(
                    "X-Echo-Set-Header",
                    "X-Header-Set-1:value1, X-Header-Set-2:value2,X-Empty:",
                )
                .with_header("X-Echo-Set-Header", "X-Header-Set-1:again"),
        )
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("x-header-set-1").as_deref(),
        Some("value1,again")
    );
    assert_eq!(response.header("x-header-set-2").as_deref(), Some("value2"));
    assert_eq!(response.header("x-empty"), None);
    // The instruction itself is echoed as a request header.
    assert!(
        response
            .echo()
            .unwrap()
            .header("x-echo-set-header")
            .is_some()
    );
}

#[test]
fn delay_query_sleeps_before_answering() {
    let echo = server("delay");
    let started = Instant::now();
    let response = HttpClient::http1(echo.addr())
        .send(&Request::get("/?delay=300ms"))
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let err = HttpClient::http1(echo.addr())
        .with_timeout(Duration::from_millis(200))
        .send(&Request::get("/?delay=5s"))
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    let bad = HttpClient::http1(echo.addr())
        .send(&Request::get("/?delay=soon"))
        .unwrap();
    assert_eq!(bad.status, 400);
}

#[test]
fn retry_simulator_fails_with_status_then_succeeds() {
    let echo = server("retry");
    let client = HttpClient::http1(echo.addr());
    let request = Request::get("/?uuid=abc&succeedAfter=2&responseCode=503");
    assert_eq!(client.send(&request).unwrap().status, 503);
    assert_eq!(client.send(&request).unwrap().status, 503);
    let ok = client.send(&request).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.echo().unwrap().service, "retry");
    // Another uuid has its own counter.
    assert_eq!(
        client
            .send(&Request::get(
                "/?uuid=other&succeedAfter=1&responseCode=500"
            ))
            .unwrap()
            .status,
        500
    );
    assert_eq!(echo.request_count(), 4);
}

#[test]
fn retry_simulator_delays_only_failing_attempts() {
    let echo = server("slow-retry");
    let client = HttpClient::http1(echo.addr());
    let request = Request::get("/?uuid=d&succeedAfter=1&responseCode=500&delayRetry=300ms");
    let started = std::time::Instant::now();
    assert_eq!(client.send(&request).unwrap().status, 500);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the failing attempt is delayed"
    );
    assert_eq!(client.send(&request).unwrap().status, 200);
}

#[test]
fn retry_simulator_without_code_drops_the_connection() {
    let echo = server("reset");
    let client = HttpClient::http1(echo.addr());
    let request = Request::get("/?uuid=r1&succeedAfter=2");
    for _ in 0..2 {
        let err = client.send(&request).unwrap_err();
        // A RST, not a graceful close: the client sees "connection reset".
        assert!(
            err.is_connection_closed() && err.to_string().contains("reset"),
            "{err}"
        );
    }
    assert_eq!(client.send(&request).unwrap().status, 200);
    // HTTP/2: the stream is reset instead, and the third attempt succeeds.
    let h2 = HttpClient::h2c(echo.addr());
    let request = Request::get("/?uuid=r2&succeedAfter=1");
    assert!(h2.send(&request).is_err());
    assert_eq!(h2.send(&request).unwrap().status, 200);
}

#[test]
fn websocket_upgrade_echoes_messages() {
    let echo = server("ws");
    let mut ws = HttpClient::http1(echo.addr())
        .websocket(
            // As the conformance case sends it: its own Connection/Upgrade headers are not duplicated.
            &Request::get("/ws")
                .with_host("ws.example")
                .with_header("Connection", "Upgrade")
                .with_header("Upgrade", "websocket")
                .with_header("Origin", "ws://gateway/test"),
        )
        .unwrap();
    assert_eq!(ws.handshake_response().status, 101);
    assert_eq!(ws.echo_text("hello").unwrap(), "hello");
    ws.send(&Message::Binary(vec![0, 1, 2, 255])).unwrap();
    assert_eq!(ws.recv().unwrap(), Message::Binary(vec![0, 1, 2, 255]));
    ws.send(&Message::Ping(b"p".to_vec())).unwrap();
    assert_eq!(ws.recv().unwrap(), Message::Pong(b"p".to_vec()));
    ws.close().unwrap();
    let seen = echo.recent_requests(1);
    assert_eq!(
        seen.first().unwrap().header("upgrade").as_deref(),
        Some("websocket")
    );
}

#[test]
fn counts_and_remembers_requests() {
    let echo = server("mirror");
    let client = HttpClient::http1(echo.addr());
    for i in 0..5 {
        client
            .send(&Request::get(format!("/r{i}")).with_header("x-n", i.to_string()))
            .unwrap();
    }
    assert_eq!(echo.request_count(), 5);
    assert_eq!(
        echo.wait_for_request_count(5, Duration::from_secs(1))
            .unwrap(),
        5
    );
    let last = echo.recent_requests(2);
    assert_eq!(
        last.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/r3", "/r4"]
    );
    assert_eq!(last.first().unwrap().header("X-N").as_deref(), Some("3"));
    assert_eq!(last.first().unwrap().seq, 4);
    assert_eq!(echo.recent_requests(100).len(), 5);
    let err = echo
        .wait_for_request_count(6, Duration::from_millis(100))
        .unwrap_err();
    assert!(err.to_string().contains("saw 5"), "{err}");
    echo.reset();
    assert_eq!(echo.request_count(), 0);
    assert!(echo.recent_requests(10).is_empty());
}

#[test]
fn shutdown_closes_listener_and_open_connections() {
    let echo = server("bye");
    let addr = echo.addr();
    let mut open = std::net::TcpStream::connect(addr).unwrap();
    open.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 12];
    open.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    echo.shutdown();
    // The keep-alive connection is closed (EOF or reset) after the rest of the response.
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn runs_on_the_callers_runtime() {
    let echo = EchoServer::start_async(
        EchoIdentity::new("ns", "svc", "pod"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let body = HttpClient::http1(echo.addr())
        .send_async(&Request::get("/async"))
        .await
        .unwrap()
        .echo()
        .unwrap();
    assert_eq!(body.path, "/async");
    assert_eq!(echo.identity().service, "svc");
}

#[test]
fn go_durations() {
    let ms = Duration::from_millis;
    assert_eq!(parse_go_duration("1s"), Some(ms(1000)));
    assert_eq!(parse_go_duration("500ms"), Some(ms(500)));
    assert_eq!(parse_go_duration("1.5s"), Some(ms(1500)));
    assert_eq!(parse_go_duration("1m30s"), Some(ms(90_000)));
    assert_eq!(parse_go_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_go_duration("10us"), Some(Duration::from_micros(10)));
    assert_eq!(parse_go_duration("10µs"), Some(Duration::from_micros(10)));
    assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
    assert_eq!(parse_go_duration("-1s"), Some(Duration::ZERO));
    for bad in ["", "1", "s", "1x", "1.s.", "abc", "-"] {
        assert_eq!(parse_go_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn canonical_names_follow_go() {
    assert_eq!(canonical_header_name("x-foo-bar"), "X-Foo-Bar");
    assert_eq!(canonical_header_name("CONTENT-TYPE"), "Content-Type");
    assert_eq!(canonical_header_name("x_underscore"), "X_underscore");
    assert_eq!(canonical_header_name("bad name"), "bad name");
}

#[test]
fn retry_ids_are_bounded() {
    let mut counters = RetryCounters::default();
    for i in 0..(MAX_RETRY_IDS + 10) {
        assert_eq!(counters.attempt(&i.to_string()), 1);
    }
    assert_eq!(counters.attempts.len(), MAX_RETRY_IDS);
    assert_eq!(counters.attempt(&(MAX_RETRY_IDS + 9).to_string()), 2);
    // The oldest were forgotten and start over.
    assert_eq!(counters.attempt("0"), 1);
}

#[test]
fn query_parameters_are_decoded() {
    assert_eq!(
        query_param("a=1&uuid=x%2Fy&b", "uuid").as_deref(),
        Some("x/y")
    );
    assert_eq!(query_param("b", "b").as_deref(), Some(""));
    assert_eq!(query_param("a=1", "uuid"), None);
}

//! The adapter against a mock host: every decision kind, the internal-header guarantees, port
//! discovery, timeouts/retries, mirrors and configuration handling.

use std::rc::Rc;

use crate::filter::*;
use crate::host::{LogLevel, Metric};
use crate::mock::MockHost;

const CONFIG: &str = r#"{
  "schemaVersion": 1,
  "revision": "rev-1",
  "gateway": {"namespace": "infra", "name": "gw"},
  "listeners": [
    {"name": "http", "port": 80, "protocol": "HTTP"},
    {"name": "secure", "port": 443, "protocol": "HTTPS", "hostname": "secure.example.com"},
    {"name": "other", "port": 443, "protocol": "HTTPS", "hostname": "other.example.com"}
  ],
  "routes": [{
    "namespace": "app", "name": "web",
    "parents": [{"listener": "http", "hostnames": ["example.com"]},
                {"listener": "secure"}, {"listener": "other"}],
    "rules": [
      {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
       "filters": [
         {"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "x-set", "value": "1"}],
            "add": [{"name": "x-add", "value": "2"}],
            "remove": ["x-remove"]}},
         {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": "x-resp", "value": "yes"}], "remove": ["server"]}}],
       "backendRefs": [{"backend": "app/api:8080"}],
       "timeouts": {"request": "10s", "backendRequest": "2s"},
       "retry": {"attempts": 3, "codes": [502, 503]}},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/plain"}}],
       "backendRefs": [{"backend": "app/api:8080"}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
       "filters": [{"type": "RequestRedirect", "requestRedirect": {
         "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}, "statusCode": 301}}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/rewrite"}}],
       "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example.com",
         "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}],
       "backendRefs": [{"backend": "app/api:8080"}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/broken"}}],
       "backendRefs": [{"backend": "app/missing:80"}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/mirror"}}],
       "filters": [{"type": "RequestMirror", "requestMirror": {"backend": "app/shadow:8080"}}],
       "backendRefs": [{"backend": "app/api:8080"}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/cors"}}],
       "filters": [{"type": "CORS", "cors": {"allowOrigins": ["https://app.example.com"],
                                             "allowMethods": ["GET", "POST"]}}],
       "backendRefs": [{"backend": "app/api:8080"}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/sneaky"}}],
       "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "x-gateway-wasm-upstream", "value": "app/secret:1"}]}}],
       "backendRefs": [{"backend": "app/api:8080"}]}
    ]
  }],
  "backends": {
    "app/api:8080": {"upstream": "app/api:8080"},
    "app/shadow:8080": {"upstream": "app/shadow:8080"},
    "app/missing:80": {"invalid": {"reason": "BackendNotFound", "message": "service app/missing not found"}}
  }
}"#;

fn compiled(json: &str) -> Rc<Compiled> {
    let mut host = MockHost::default();
    configure(&mut host, json.as_bytes()).expect("the test config compiles")
}

/// Runs the request phase on port 80 (via the filter chain name).
fn run(host: &mut MockHost, compiled: &Compiled, end_of_stream: bool) -> (Verdict, Stream) {
    host.properties
        .entry(vec!["xds".to_owned(), "filter_chain_name".to_owned()])
        .or_insert_with(|| b"gateway-wasm:80:http".to_vec());
    let shared = Shared::new(7);
    let mut stream = Stream::default();
    let verdict = on_request_headers(host, Some(compiled), &shared, end_of_stream, &mut stream);
    (verdict, stream)
}

#[test]
fn forwards_with_upstream_header_edits_timeouts_and_retries() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request(
        "GET",
        "example.com",
        "/api/users?page=2",
        &[("x-remove", "gone"), ("accept", "*/*")],
    );
    let (verdict, mut stream) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Continue);
    assert_eq!(host.local_reply, None);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
    assert_eq!(host.header("x-set"), Some("1"));
    assert_eq!(host.header("x-add"), Some("2"));
    assert_eq!(host.header("x-remove"), None);
    assert_eq!(host.header(":path"), Some("/api/users?page=2"));
    assert_eq!(host.header(ENVOY_TIMEOUT_HEADER), Some("10000"));
    assert_eq!(host.header(ENVOY_PER_TRY_TIMEOUT_HEADER), Some("2000"));
    assert_eq!(host.header(ENVOY_MAX_RETRIES_HEADER), Some("3"));
    assert_eq!(
        host.header(ENVOY_RETRY_ON_HEADER),
        Some("retriable-status-codes,connect-failure,refused-stream,reset")
    );
    assert_eq!(host.header(ENVOY_RETRIABLE_CODES_HEADER), Some("502,503"));
    assert_eq!(host.metric(Metric::Forwarded), 1);

    host.response_headers = vec![("server".into(), "echo".into())];
    assert_eq!(
        on_response_headers(&mut host, &mut stream),
        Verdict::Continue
    );
    assert_eq!(host.response_header("x-resp"), Some("yes"));
    assert_eq!(host.response_header("server"), None);
}

#[test]
fn rules_without_timeouts_or_retries_set_no_router_controls() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("GET", "example.com", "/plain", &[]);
    run(&mut host, &table, true);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
    for name in [
        ENVOY_TIMEOUT_HEADER,
        ENVOY_PER_TRY_TIMEOUT_HEADER,
        ENVOY_MAX_RETRIES_HEADER,
        ENVOY_RETRY_ON_HEADER,
        ENVOY_RETRIABLE_CODES_HEADER,
    ] {
        assert_eq!(host.header(name), None, "{name}");
    }
}

#[test]
fn client_copies_of_internal_headers_never_survive() {
    let table = compiled(CONFIG);
    let client = [
        ("X-Gateway-Wasm-Upstream", "app/secret:1"),
        ("x-gateway-wasm-anything", "1"),
        ("x-envoy-max-retries", "50"),
        ("x-envoy-upstream-rq-timeout-ms", "1"),
    ];
    // Forwarded: the filter's own upstream wins and the other copies are gone.
    let mut host = MockHost::request("GET", "example.com", "/plain", &client);
    run(&mut host, &table, true);
    assert_eq!(host.header_values(UPSTREAM_HEADER), ["app/api:8080"]);
    assert_eq!(host.header("x-gateway-wasm-anything"), None);
    assert_eq!(host.header("x-envoy-max-retries"), None);
    assert_eq!(host.header("x-envoy-upstream-rq-timeout-ms"), None);

    // Unrouted: answered locally, and the header is gone from the request anyway.
    let mut host = MockHost::request("GET", "example.com", "/nowhere", &client);
    let (verdict, _) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Stop);
    assert_eq!(host.local_reply.as_ref().map(|r| r.status), Some(404));
    assert_eq!(host.header(UPSTREAM_HEADER), None);

    // A configured header edit cannot set it either.
    let mut host = MockHost::request("GET", "example.com", "/sneaky", &client);
    run(&mut host, &table, true);
    assert_eq!(host.header_values(UPSTREAM_HEADER), ["app/api:8080"]);
}

#[test]
fn internal_headers_do_not_influence_matching() {
    let json = CONFIG.replace(
        r#"{"path": {"type": "PathPrefix", "value": "/plain"}}"#,
        r#"{"path": {"type": "PathPrefix", "value": "/plain"},
            "headers": [{"name": "x-gateway-wasm-debug", "value": "1"}]}"#,
    );
    let table = compiled(&json);
    let mut host = MockHost::request(
        "GET",
        "example.com",
        "/plain",
        &[("x-gateway-wasm-debug", "1")],
    );
    run(&mut host, &table, true);
    assert_eq!(host.local_reply.as_ref().map(|r| r.status), Some(404));
}

#[test]
fn no_route_answers_404_with_a_helpful_body() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("POST", "Example.com:80", "/nowhere?secret=1", &[]);
    let (verdict, _) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Stop);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, "no route for POST Example.com/nowhere\n");
    assert!(
        reply
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/plain"))
    );
    assert_eq!(host.metric(Metric::NoRoute), 1);
    assert_eq!(host.metric(Metric::Forwarded), 0);
}

#[test]
fn local_reply_bodies_are_bounded() {
    let table = compiled(CONFIG);
    let long = format!("/{}", "é".repeat(5000));
    let mut host = MockHost::request("GET", "example.com", &long, &[]);
    run(&mut host, &table, true);
    let reply = host.local_reply.clone().expect("a local reply");
    assert!(reply.body.len() < 500, "{} bytes", reply.body.len());
}

#[test]
fn unknown_host_answers_404_no_listener() {
    let table = compiled(CONFIG);
    // Port 443 has listeners for two hostnames only.
    let mut host = MockHost::request("GET", "unknown.test", "/api", &[])
        .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:443:secure");
    run(&mut host, &table, true);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.body,
        "no listener for host unknown.test on port 443\n"
    );
    assert_eq!(host.metric(Metric::NoListener), 1);
}

#[test]
fn redirects_are_local_replies_with_location() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("GET", "example.com", "/old/page", &[]);
    let (verdict, _) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Stop);
    let reply = host.local_reply.clone().expect("a redirect");
    assert_eq!(reply.status, 301);
    assert!(
        reply
            .headers
            .iter()
            .any(|(n, v)| n == "location" && v == "http://example.com/new/page"),
        "{:?}",
        reply.headers
    );
    assert_eq!(host.metric(Metric::Redirected), 1);
    assert_eq!(host.header(UPSTREAM_HEADER), None);
}

#[test]
fn rewrites_path_and_authority() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("GET", "example.com", "/rewrite/x?q=1", &[]);
    run(&mut host, &table, true);
    assert_eq!(host.header(":path"), Some("/v2/x?q=1"));
    assert_eq!(host.header(":authority"), Some("internal.example.com"));
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
}

#[test]
fn invalid_backends_answer_500() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("GET", "example.com", "/broken", &[]);
    run(&mut host, &table, true);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("app/missing:80"), "{}", reply.body);
    assert_eq!(host.metric(Metric::InvalidBackend), 1);
    assert_eq!(host.header(UPSTREAM_HEADER), None);
}

#[test]
fn sni_and_host_that_select_different_listeners_answer_421() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("GET", "other.example.com", "/plain", &[])
        .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:443:secure")
        .with_property(
            &["connection", "requested_server_name"],
            b"secure.example.com",
        );
    run(&mut host, &table, true);
    assert_eq!(host.local_reply.as_ref().map(|r| r.status), Some(421));
    assert_eq!(host.metric(Metric::Misdirected), 1);

    let mut host = MockHost::request("GET", "secure.example.com", "/plain", &[])
        .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:443:secure")
        .with_property(
            &["connection", "requested_server_name"],
            b"secure.example.com",
        );
    run(&mut host, &table, true);
    assert_eq!(host.local_reply, None);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
}

#[test]
fn gateway_port_comes_from_the_filter_chain_name_then_single_port_then_destination() {
    assert_eq!(
        parse_filter_chain_port(b"gateway-wasm:8443:https-a"),
        Some(8443)
    );
    assert_eq!(parse_filter_chain_port(b"gateway-wasm:80"), Some(80));
    assert_eq!(parse_filter_chain_port(b"gateway-wasm:x:y"), None);
    assert_eq!(parse_filter_chain_port(b"other:80"), None);
    assert_eq!(parse_filter_chain_port(b"gateway-wasm:70000"), None);
    assert_eq!(decode_port(&18080u64.to_le_bytes()), Some(18080));
    assert_eq!(decode_port(b"8000"), Some(8000));
    assert_eq!(decode_port(&70000u64.to_le_bytes()), None);

    let multi = compiled(CONFIG);
    let host = MockHost::default()
        .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:443:secure")
        .with_property(&["destination", "port"], &18443u64.to_le_bytes());
    assert_eq!(gateway_port(&host, &multi), Some(443));
    let host = MockHost::default().with_property(&["destination", "port"], &443u64.to_le_bytes());
    assert_eq!(gateway_port(&host, &multi), Some(443));
    assert_eq!(gateway_port(&MockHost::default(), &multi), None);

    let single = compiled(
        r#"{"schemaVersion": 1, "gateway": {"namespace": "a", "name": "b"},
            "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}"#,
    );
    let host = MockHost::default().with_property(&["destination", "port"], &18000u64.to_le_bytes());
    assert_eq!(gateway_port(&host, &single), Some(8080));
}

#[test]
fn a_single_port_http_config_reads_no_properties_per_request() {
    let single = compiled(
        r#"{"schemaVersion": 1, "gateway": {"namespace": "a", "name": "b"},
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            "routes": [{"namespace": "a", "name": "r", "parents": [{"listener": "http"}],
                        "rules": [{"backendRefs": [{"backend": "a/svc:80"}]}]}],
            "backends": {"a/svc:80": {"upstream": "a/svc:80"}}}"#,
    );
    let mut host = MockHost::request("GET", "example.com", "/", &[]);
    run(&mut host, &single, true);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("a/svc:80"));
    assert_eq!(
        host.property_reads.borrow().as_slice(),
        &[] as &[String],
        "neither the filter chain name nor the TLS server name is needed"
    );
    // With an HTTPS listener the TLS server name decides the listener, so it is read.
    let tls = compiled(CONFIG);
    let mut host = MockHost::request("GET", "example.com", "/", &[]);
    run(&mut host, &tls, true);
    assert!(
        host.property_reads
            .borrow()
            .iter()
            .any(|p| p == "connection.requested_server_name"),
        "{:?}",
        host.property_reads.borrow()
    );
}

#[test]
fn cors_preflights_are_answered_and_cors_headers_kept_for_the_response() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request(
        "OPTIONS",
        "example.com",
        "/cors",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
    );
    let (verdict, _) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Stop);
    let reply = host.local_reply.clone().expect("a preflight answer");
    assert!(
        reply.headers.iter().any(
            |(n, v)| n.eq_ignore_ascii_case("access-control-allow-origin")
                && v == "https://app.example.com"
        ),
        "{:?}",
        reply.headers
    );
    assert!(reply.body.is_empty());
    assert_eq!(host.metric(Metric::CorsPreflight), 1);

    let mut host = MockHost::request(
        "GET",
        "example.com",
        "/cors",
        &[("origin", "https://app.example.com")],
    );
    let (_, mut stream) = run(&mut host, &table, true);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
    on_response_headers(&mut host, &mut stream);
    assert_eq!(
        host.response_header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn mirrors_without_a_body_are_sent_at_once_without_internal_headers() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request(
        "GET",
        "example.com",
        "/mirror/a",
        &[("x-trace", "t1"), ("x-gateway-wasm-upstream", "evil")],
    );
    let (verdict, stream) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Continue);
    assert!(!stream.awaiting_body());
    assert_eq!(host.dispatches.len(), 1);
    let call = &host.dispatches[0];
    assert_eq!(call.upstream, "app/shadow:8080");
    assert!(
        call.headers
            .iter()
            .any(|(n, v)| n == ":path" && v == "/mirror/a")
    );
    assert!(
        call.headers
            .iter()
            .any(|(n, v)| n == "x-trace" && v == "t1")
    );
    assert!(
        !call
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("x-gateway-wasm-"))
    );
    assert_eq!(call.body, None);
    assert_eq!(host.metric(Metric::MirrorsSent), 1);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
}

#[test]
fn mirrors_with_a_body_wait_for_it_and_drop_when_too_large() {
    let table = compiled(CONFIG);
    let shared = Shared::new(1);
    let mut host = MockHost::request(
        "POST",
        "example.com",
        "/mirror/b",
        &[("content-length", "5")],
    )
    .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:80:http");
    let mut stream = Stream::default();
    on_request_headers(&mut host, Some(&table), &shared, false, &mut stream);
    assert!(stream.awaiting_body());
    assert!(host.dispatches.is_empty());
    host.body_chunk = b"hello".to_vec();
    on_request_body(&mut host, &shared, 5, true, &mut stream);
    assert!(!stream.awaiting_body());
    assert_eq!(host.dispatches.len(), 1);
    assert_eq!(host.dispatches[0].body.as_deref(), Some(&b"hello"[..]));
    assert!(
        host.dispatches[0]
            .headers
            .iter()
            .any(|(n, v)| n == "content-length" && v == "5")
    );

    let mut host = MockHost::request("POST", "example.com", "/mirror/c", &[])
        .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:80:http");
    let mut stream = Stream::default();
    on_request_headers(&mut host, Some(&table), &shared, false, &mut stream);
    on_request_body(
        &mut host,
        &shared,
        MIRROR_BODY_LIMIT + 1,
        false,
        &mut stream,
    );
    assert!(!stream.awaiting_body());
    on_request_body(&mut host, &shared, 10, true, &mut stream);
    assert!(host.dispatches.is_empty());
    assert_eq!(host.metric(Metric::MirrorsDropped), 1);
}

#[test]
fn mirrors_in_flight_are_bounded() {
    let table = compiled(CONFIG);
    let shared = Shared::new(1);
    let mut host = MockHost::request("GET", "example.com", "/mirror/x", &[])
        .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:80:http");
    for _ in 0..MAX_MIRRORS_IN_FLIGHT + 10 {
        let mut stream = Stream::default();
        on_request_headers(&mut host, Some(&table), &shared, true, &mut stream);
    }
    assert_eq!(
        host.metric(Metric::MirrorsSent),
        MAX_MIRRORS_IN_FLIGHT as u64
    );
    assert_eq!(host.metric(Metric::MirrorsDropped), 10);
    assert_eq!(
        host.metric(Metric::Forwarded),
        MAX_MIRRORS_IN_FLIGHT as u64 + 10
    );
    // Once the mirror timeout has passed the slots are free again.
    host.now += (MIRROR_TIMEOUT_MS + 1) * 1_000_000;
    let mut stream = Stream::default();
    on_request_headers(&mut host, Some(&table), &shared, true, &mut stream);
    assert_eq!(
        host.metric(Metric::MirrorsSent),
        MAX_MIRRORS_IN_FLIGHT as u64 + 1
    );
}

#[test]
fn failed_mirror_calls_are_counted_not_fatal() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("GET", "example.com", "/mirror/x", &[]);
    host.failing.push("dispatch_http_call");
    let (verdict, _) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Continue);
    assert_eq!(host.metric(Metric::MirrorsDropped), 1);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("app/api:8080"));
}

#[test]
fn configure_logs_the_revision_and_counts() {
    let mut host = MockHost::default();
    let compiled = configure(&mut host, CONFIG.as_bytes());
    assert!(compiled.is_some());
    let log = host.log_text();
    assert!(
        log.contains("accepted config revision \"rev-1\" for gateway infra/gw"),
        "{log}"
    );
    assert!(log.contains("3 listeners, 1 routes, 8 rules"), "{log}");
    assert_eq!(host.metric(Metric::ConfigAccepted), 1);
}

#[test]
fn configure_logs_the_time_of_each_phase() {
    // Every clock read moves the mock clock by 7 µs: start, inflated, parsed, compiled, freed, end.
    let mut host = MockHost {
        clock_step: 7_000,
        ..MockHost::default()
    };
    assert!(configure(&mut host, CONFIG.as_bytes()).is_some());
    let log = host.log_text();
    assert!(
        log.contains("compiled in 35 µs (parse 7 µs, validate+compile 7 µs, free parsed 7 µs)"),
        "{log}"
    );
}

#[test]
fn configure_rejects_with_the_json_path_and_keeps_nothing() {
    let mut host = MockHost::default();
    let bad = CONFIG.replace(
        "\"retry\": {\"attempts\": 3",
        "\"retry\": {\"attempts\": \"three\"",
    );
    assert!(configure(&mut host, bad.as_bytes()).is_none());
    let log = host.log_text();
    assert!(log.contains("rejected config"), "{log}");
    assert!(log.contains("routes[0].rules[0].retry.attempts"), "{log}");
    assert_eq!(host.logs.borrow()[0].0, LogLevel::Error);
    assert_eq!(host.metric(Metric::ConfigRejected), 1);

    let mut host = MockHost::default();
    assert!(configure(&mut host, b"").is_none());
    assert!(host.log_text().contains("empty"));
    let mut host = MockHost::default();
    assert!(configure(&mut host, b"{not json").is_none());
}

#[test]
fn a_gzip_compressed_configuration_routes_like_the_plain_one() {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(CONFIG.as_bytes()).unwrap();
    let compressed = encoder.finish().unwrap();

    let mut host = MockHost::default();
    let compiled = configure(&mut host, &compressed).expect("the compressed config compiles");
    let log = host.log_text();
    assert!(
        log.contains(&format!(
            "{} bytes (gzip: {}, inflated in ",
            CONFIG.len(),
            compressed.len()
        )),
        "{log}"
    );
    let mut request = MockHost::request("GET", "example.com", "/api/users", &[]);
    let (verdict, _) = run(&mut request, &compiled, true);
    assert_eq!(verdict, Verdict::Continue);
    assert_eq!(request.header(UPSTREAM_HEADER), Some("app/api:8080"));

    // A corrupt compressed payload is rejected with the reason, like any bad config.
    let mut host = MockHost::default();
    assert!(configure(&mut host, &compressed[..compressed.len() / 2]).is_none());
    let log = host.log_text();
    assert!(log.contains("rejected config"), "{log}");
    assert!(
        log.contains("gzip-compressed but does not inflate"),
        "{log}"
    );
    assert_eq!(host.metric(Metric::ConfigRejected), 1);
}

#[test]
fn without_a_configuration_nothing_is_forwarded() {
    let shared = Shared::new(1);
    let mut stream = Stream::default();
    let mut host = MockHost::request(
        "GET",
        "example.com",
        "/api",
        &[("x-gateway-wasm-upstream", "x")],
    );
    let verdict = on_request_headers(&mut host, None, &shared, true, &mut stream);
    assert_eq!(verdict, Verdict::Stop);
    assert_eq!(host.local_reply.as_ref().map(|r| r.status), Some(503));
    assert_eq!(host.header(UPSTREAM_HEADER), None);
    assert_eq!(host.metric(Metric::NoConfig), 1);
}

#[test]
fn host_failures_answer_500_and_never_forward() {
    let table = compiled(CONFIG);
    for call in ["get_request_headers", "remove_header", "set_header"] {
        let mut host = MockHost::request(
            "GET",
            "example.com",
            "/api",
            &[("x-gateway-wasm-upstream", "evil")],
        );
        host.failing.push(call);
        let (verdict, _) = run(&mut host, &table, true);
        assert_eq!(verdict, Verdict::Stop, "{call}");
        assert_eq!(
            host.local_reply.as_ref().map(|r| r.status),
            Some(500),
            "{call}"
        );
        assert_eq!(host.metric(Metric::HostError), 1, "{call}");
        assert_eq!(host.metric(Metric::Forwarded), 0, "{call}");
    }
    let mut host = MockHost::request("GET", "example.com", "/nowhere", &[]);
    host.failing.push("send_http_response");
    let (verdict, _) = run(&mut host, &table, true);
    assert_eq!(verdict, Verdict::Stop);
    assert!(host.reset);
}

#[test]
fn weighted_picks_use_the_shared_generator() {
    let json = CONFIG.replace(
        r#""backendRefs": [{"backend": "app/api:8080"}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],"#,
        r#""backendRefs": [{"backend": "app/api:8080", "weight": 1}, {"backend": "app/shadow:8080", "weight": 1}]},
      {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],"#,
    );
    let table = compiled(&json);
    let shared = Shared::new(42);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let mut host = MockHost::request("GET", "example.com", "/plain", &[])
            .with_property(&["xds", "filter_chain_name"], b"gateway-wasm:80:http");
        let mut stream = Stream::default();
        on_request_headers(&mut host, Some(&table), &shared, true, &mut stream);
        seen.insert(host.header(UPSTREAM_HEADER).map(str::to_owned));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

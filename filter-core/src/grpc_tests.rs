//! gRPC local answers through the adapter: a trailers-only response (HTTP 200,
//! `content-type: application/grpc`, `grpc-status`, a percent-encoded `grpc-message`, no body) in
//! the Envoy and the Kong paths, and HTTPRoute semantics kept for a gRPC call an HTTPRoute takes.

use std::rc::Rc;

use crate::filter::*;
use crate::host::Metric;
use crate::kong;
use crate::mock::{LocalReply, MockHost};

const CONFIG: &str = r#"{
  "schemaVersion": 1,
  "gateway": {"namespace": "infra", "name": "gw"},
  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "grpc.example.com"}],
  "routes": [{
    "namespace": "app", "name": "web", "parents": [{"listener": "http"}],
    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/legacy.Svc"}}],
               "backendRefs": [{"backend": "app/gone:80"}]}]
  }],
  "grpcRoutes": [{
    "namespace": "app", "name": "echo", "parents": [{"listener": "http"}],
    "rules": [
      {"matches": [{"method": {"service": "pkg.Echo"}}],
       "filters": [{"type": "RequestHeaderModifier",
                    "requestHeaderModifier": {"set": [{"name": "x-routed", "value": "grpc"}]}}],
       "backendRefs": [{"backend": "grpc:app/echo:50051"}]},
      {"matches": [{"method": {"service": "pkg.Broken"}}],
       "backendRefs": [{"backend": "app/gone:80"}]}
    ]
  }],
  "backends": {
    "grpc:app/echo:50051": {"upstream": "grpc:app/echo:50051"},
    "app/gone:80": {"invalid": {"reason": "Service app/gone not found"}}
  }
}"#;

const GRPC: &[(&str, &str)] = &[("content-type", "application/grpc")];

fn compiled(json: &str) -> Rc<Compiled> {
    let mut host = MockHost::default();
    configure(&mut host, json.as_bytes()).expect("the test config compiles")
}

fn run(host: &mut MockHost, compiled: &Compiled) -> Verdict {
    host.properties
        .entry(vec!["xds".to_owned(), "filter_chain_name".to_owned()])
        .or_insert_with(|| b"gateway-wasm:80:http".to_vec());
    let shared = Shared::new(7);
    let mut stream = Stream::default();
    on_request_headers(host, Some(compiled), &shared, true, &mut stream)
}

fn header<'r>(reply: &'r LocalReply, name: &str) -> Option<&'r str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The reply must be a trailers-only gRPC answer with `code`.
fn assert_grpc_answer(reply: &LocalReply, code: &str) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(header(reply, "content-type"), Some("application/grpc"));
    assert_eq!(header(reply, "grpc-status"), Some(code), "{reply:?}");
    assert!(header(reply, "grpc-message").is_some_and(|m| !m.is_empty()));
    assert_eq!(reply.body, "", "a trailers-only response has no body");
}

#[test]
fn a_grpc_call_is_forwarded_by_its_grpc_route() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("POST", "grpc.example.com", "/pkg.Echo/Say", GRPC);
    assert_eq!(run(&mut host, &table), Verdict::Continue);
    assert_eq!(host.header(UPSTREAM_HEADER), Some("grpc:app/echo:50051"));
    assert_eq!(host.header("x-routed"), Some("grpc"));
    assert_eq!(host.metric(Metric::Forwarded), 1);
}

#[test]
fn no_route_is_unimplemented_with_http_200() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("POST", "grpc.example.com", "/pkg.Other/Say", GRPC);
    assert_eq!(run(&mut host, &table), Verdict::Stop);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_grpc_answer(&reply, "12");
    assert_eq!(
        header(&reply, "grpc-message"),
        Some("no route for POST grpc.example.com/pkg.Other/Say")
    );
    assert_eq!(host.metric(Metric::NoRoute), 1);
    let mut host = MockHost::request("POST", "elsewhere.example.com", "/pkg.Echo/Say", GRPC);
    run(&mut host, &table);
    assert_grpc_answer(&host.local_reply.clone().expect("a local reply"), "12");
    assert_eq!(host.metric(Metric::NoListener), 1);
}

#[test]
fn an_invalid_backend_of_a_grpc_route_is_unavailable_not_500() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("POST", "grpc.example.com", "/pkg.Broken/Say", GRPC);
    run(&mut host, &table);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_grpc_answer(&reply, "14");
    assert_eq!(host.metric(Metric::InvalidBackend), 1);
    assert_eq!(host.header(UPSTREAM_HEADER), None);
}

#[test]
fn a_grpc_call_an_http_route_takes_keeps_http_route_semantics() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("POST", "grpc.example.com", "/legacy.Svc/Say", GRPC);
    run(&mut host, &table);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_eq!(reply.status, 500, "HTTPRoute: invalid backend answers 500");
    assert_eq!(header(&reply, "grpc-status"), None);
}

#[test]
fn a_non_grpc_request_gets_http_answers() {
    let table = compiled(CONFIG);
    let mut host = MockHost::request("POST", "grpc.example.com", "/pkg.Other/Say", &[]);
    run(&mut host, &table);
    let reply = host.local_reply.clone().expect("a local reply");
    assert_eq!(reply.status, 404);
    assert_eq!(header(&reply, "grpc-status"), None);
}

#[test]
fn grpc_messages_are_percent_encoded() {
    assert_eq!(percent_encode_grpc_message("plain text"), "plain text");
    assert_eq!(percent_encode_grpc_message("100%"), "100%25");
    assert_eq!(percent_encode_grpc_message("é\n"), "%C3%A9%0A");
}

/// GRPCRoutes are not delivered to Kong (docs/kong.md); a gRPC call Kong passes to the filter
/// that no HTTPRoute takes still gets a gRPC answer.
const KONG_CONFIG: &str = r#"{
  "schemaVersion": 1,
  "gateway": {"namespace": "infra", "name": "gw"},
  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
  "routes": [{
    "namespace": "app", "name": "web", "parents": [{"listener": "http"}],
    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/store"}}],
               "backendRefs": [{"backend": "app/api:8080"}]}]
  }],
  "backends": {"app/api:8080": {"upstream": "/.gateway-wasm/k3y/api"}},
  "upstreamSelector": "kongRoute",
  "kong": {"proxy": "127.0.0.1:8000"}
}"#;

#[test]
fn kong_sends_the_same_trailers_only_answer() {
    let table = compiled(KONG_CONFIG);
    // As ngx_wasm_module presents a request (kong_tests.rs): the raw target is a property and
    // end_of_stream is always false.
    let mut host = MockHost::request("POST", "grpc.example.com", "/pkg.Echo/Say", GRPC)
        .with_property(&kong::REQUEST_TARGET_PROPERTY, b"/pkg.Echo/Say");
    let shared = Shared::new(7);
    let mut stream = Stream::default();
    let verdict = on_request_headers(&mut host, Some(&table), &shared, false, &mut stream);
    assert_eq!(verdict, Verdict::Stop);
    assert_grpc_answer(&host.local_reply.clone().expect("a local reply"), "12");
    assert_eq!(host.metric(Metric::NoRoute), 1);
}

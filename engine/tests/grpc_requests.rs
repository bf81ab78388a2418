//! GRPCRoute at request time (`docs/plugin-config.md`, *GRPCRoute*): which requests are gRPC,
//! method and header matches, precedence between GRPCRoute rules, the fallback to HTTPRoutes,
//! filters and weighted backends, and the gRPC local answers (12 UNIMPLEMENTED, 14 UNAVAILABLE,
//! never an HTTP 500 for a GRPCRoute rule).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

use std::collections::BTreeMap;

use engine::{
    Action, Decision, GrpcCode, HeaderEdit, LocalReason, Request, RouteKind, RouteTable, SplitMix64,
};
use serde_json::{Value, json};

fn table_with(grpc_routes: Value, routes: Value) -> RouteTable {
    let config = json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "routes": routes,
        "grpcRoutes": grpc_routes,
        "backends": {
            "a": {"upstream": "a"}, "b": {"upstream": "b"}, "c": {"upstream": "c"},
            "d": {"upstream": "d"}, "m": {"upstream": "m"},
            "bad": {"invalid": {"reason": "Service ns/gone not found"}},
            "http": {"upstream": "http"}
        }
    });
    RouteTable::from_json(config.to_string().as_bytes()).unwrap()
}

fn grpc_route(name: &str, hostnames: &[&str], rules: Value) -> Value {
    json!({"namespace": "ns", "name": name,
           "parents": [{"listener": "http", "hostnames": hostnames}], "rules": rules})
}

fn exact(service: Option<&str>, method: Option<&str>, backend: &str) -> Value {
    json!({"matches": [{"method": {"type": "Exact", "service": service, "method": method}}],
           "backendRefs": [{"backend": backend}]})
}

fn regex(service: Option<&str>, method: Option<&str>, backend: &str) -> Value {
    json!({"matches": [{"method": {"type": "RegularExpression", "service": service, "method": method}}],
           "backendRefs": [{"backend": backend}]})
}

const GRPC: &[(&str, &str)] = &[("content-type", "application/grpc")];

fn call<'a>(
    table: &'a RouteTable,
    host: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> Decision<'a> {
    let request = Request {
        port: 80,
        sni: None,
        method: "POST",
        authority: host,
        path,
        headers,
    };
    table.evaluate(&request, &mut SplitMix64(7))
}

fn upstream<'a>(decision: &Decision<'a>) -> Option<&'a str> {
    match &decision.action {
        Action::Forward(f) => Some(f.upstream),
        _ => None,
    }
}

/// The `(HTTP status, grpc-status)` of a local answer.
fn answer(decision: &Decision<'_>) -> Option<(u16, Option<GrpcCode>)> {
    match &decision.action {
        Action::Respond(r) => Some((r.status, r.grpc)),
        _ => None,
    }
}

#[test]
fn exact_service_and_method_route_the_call() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([
                exact(Some("pkg.Svc"), Some("Get"), "a"),
                exact(Some("pkg.Svc"), Some("List"), "b")
            ])
        )]),
        json!([]),
    );
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("a")
    );
    let decision = call(&table, "h", "/pkg.Svc/List", GRPC);
    assert_eq!(upstream(&decision), Some("b"));
    let route = decision.route.unwrap();
    assert_eq!(
        (route.kind, route.name, route.rule_index),
        (RouteKind::GRPCRoute, "r", 1)
    );
    assert_eq!(route.to_string(), "GRPCRoute ns/r rules[1]");
    assert_eq!(
        answer(&call(&table, "h", "/pkg.Svc/Put", GRPC)),
        Some((200, Some(GrpcCode::Unimplemented))),
        "no match: grpc-status 12 with HTTP 200"
    );
    assert_eq!(
        answer(&call(&table, "h", "/pkg.svc/Get", GRPC)),
        Some((200, Some(GrpcCode::Unimplemented))),
        "Exact is case-sensitive"
    );
}

#[test]
fn only_grpc_requests_match_grpc_routes() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([{"backendRefs": [{"backend": "a"}]}])
        )]),
        json!([]),
    );
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("a")
    );
    for content_type in ["application/grpc+proto", "application/grpc;x=y"] {
        let headers = [("content-type", content_type)];
        assert_eq!(
            upstream(&call(&table, "h", "/pkg.Svc/Get", &headers)),
            Some("a")
        );
    }
    let json_headers = [("content-type", "application/json")];
    let plain = call(&table, "h", "/pkg.Svc/Get", &json_headers);
    assert_eq!(answer(&plain), Some((404, None)), "not gRPC: an HTTP 404");
    let get = table.evaluate(
        &Request {
            port: 80,
            sni: None,
            method: "GET",
            authority: "h",
            path: "/pkg.Svc/Get",
            headers: GRPC,
        },
        &mut SplitMix64(1),
    );
    assert_eq!(answer(&get), Some((404, None)), "a GET is not a gRPC call");
}

#[test]
fn service_beats_method_and_exact_beats_regular_expression() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([
                exact(None, Some("Get"), "a"),
                regex(Some("pkg\\..*"), None, "b"),
                exact(Some("pkg.Svc"), None, "c"),
                regex(Some("pkg\\.Svc"), Some("G.*"), "d"),
            ])
        )]),
        json!([]),
    );
    // Exact service (c) beats a regular expression service (b, d) beats no service (a).
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("c")
    );
    // Among regular expression services, the longer pattern (d's) first.
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc2/Get", GRPC)),
        Some("b")
    );
    assert_eq!(
        upstream(&call(&table, "h", "/other.Svc/Get", GRPC)),
        Some("a")
    );
}

#[test]
fn longer_regular_expression_service_wins_and_method_breaks_ties() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([
                regex(Some("pkg\\..*"), None, "a"),
                regex(Some("pkg\\.S.*"), None, "b"),
                exact(Some("pkg.Svc"), Some("Get"), "c"),
                exact(Some("pkg.Svc"), None, "d"),
            ])
        )]),
        json!([]),
    );
    assert_eq!(upstream(&call(&table, "h", "/pkg.Sx/Get", GRPC)), Some("b"));
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("c")
    );
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/List", GRPC)),
        Some("d")
    );
}

#[test]
fn hostname_comes_before_service_and_headers_after_method() {
    let table = table_with(
        json!([
            grpc_route(
                "any-host",
                &[],
                json!([exact(Some("pkg.Svc"), Some("Get"), "a")])
            ),
            grpc_route(
                "wild",
                &["*.example.com"],
                json!([{"backendRefs": [{"backend": "b"}]}])
            ),
            grpc_route(
                "headers",
                &["x.example.com"],
                json!([
                    {"matches": [{"method": {"service": "pkg.Svc"},
                                  "headers": [{"name": "v", "value": "2"}]}],
                     "backendRefs": [{"backend": "c"}]},
                    {"matches": [{"method": {"service": "pkg.Svc"}}],
                     "backendRefs": [{"backend": "d"}]}
                ])
            ),
        ]),
        json!([]),
    );
    assert_eq!(
        upstream(&call(&table, "other", "/pkg.Svc/Get", GRPC)),
        Some("a")
    );
    assert_eq!(
        upstream(&call(&table, "y.example.com", "/pkg.Svc/Get", GRPC)),
        Some("b")
    );
    let with_header = [("content-type", "application/grpc"), ("V", "2")];
    assert_eq!(
        upstream(&call(&table, "x.example.com", "/pkg.Svc/Get", &with_header)),
        Some("c")
    );
    assert_eq!(
        upstream(&call(&table, "x.example.com", "/pkg.Svc/Get", GRPC)),
        Some("d")
    );
    assert_eq!(
        upstream(&call(&table, "x.example.com", "/other.Svc/Get", GRPC)),
        Some("b"),
        "the exact host's rules do not match: the wildcard's do"
    );
}

#[test]
fn older_route_then_name_break_ties() {
    let mut young = grpc_route("a-young", &[], json!([exact(Some("pkg.Svc"), None, "a")]));
    young["creationTimestamp"] = json!("2026-02-01T00:00:00Z");
    let mut old = grpc_route("z-old", &[], json!([exact(Some("pkg.Svc"), None, "b")]));
    old["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    let table = table_with(json!([young, old]), json!([]));
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("b")
    );
    let table = table_with(
        json!([
            grpc_route("b", &[], json!([exact(Some("pkg.Svc"), None, "b")])),
            grpc_route("a", &[], json!([exact(Some("pkg.Svc"), None, "a")])),
        ]),
        json!([]),
    );
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("a")
    );
}

#[test]
fn http_routes_take_grpc_calls_no_grpc_route_matches() {
    let http = json!([{"namespace": "ns", "name": "web", "parents": [{"listener": "http"}],
                       "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/legacy.Svc"}}],
                                  "backendRefs": [{"backend": "http"}]},
                                 {"matches": [{"path": {"type": "PathPrefix", "value": "/broken.Svc"}}],
                                  "backendRefs": [{"backend": "bad"}]}]}]);
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([exact(Some("pkg.Svc"), None, "a")])
        )]),
        http,
    );
    assert_eq!(
        upstream(&call(&table, "h", "/pkg.Svc/Get", GRPC)),
        Some("a")
    );
    let legacy = call(&table, "h", "/legacy.Svc/Get", GRPC);
    assert_eq!(upstream(&legacy), Some("http"));
    assert_eq!(legacy.route.map(|r| r.kind), Some(RouteKind::HTTPRoute));
    assert_eq!(
        answer(&call(&table, "h", "/broken.Svc/Get", GRPC)),
        Some((500, None)),
        "an HTTPRoute keeps HTTPRoute semantics: 500 for an invalid backend"
    );
}

#[test]
fn nothing_to_forward_to_is_unavailable_not_500() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([
                exact(Some("s.Invalid"), None, "bad"),
                {"matches": [{"method": {"service": "s.Empty"}}], "backendRefs": []},
                {"matches": [{"method": {"service": "s.Zero"}}], "backendRefs": [{"backend": "a", "weight": 0}]},
                {"matches": [{"method": {"service": "s.Unresolved"}}],
                 "filters": [{"type": "Unresolved", "reason": "ExtensionRef example.com/Auth x"}],
                 "backendRefs": [{"backend": "a"}]},
            ])
        )]),
        json!([]),
    );
    for (service, reason) in [
        ("s.Invalid", "invalid_backend"),
        ("s.Empty", "no_backends"),
        ("s.Zero", "no_backends"),
        ("s.Unresolved", "unresolved_filter"),
    ] {
        let path = format!("/{service}/Get");
        let decision = call(&table, "h", &path, GRPC);
        let Action::Respond(response) = &decision.action else {
            panic!("{service}: expected a local answer, got {decision:?}")
        };
        assert_eq!(response.status, 200, "{service}");
        assert_eq!(response.grpc, Some(GrpcCode::Unavailable), "{service}");
        assert_eq!(response.reason.as_str(), reason, "{service}");
        assert_eq!(GrpcCode::Unavailable.code(), 14);
    }
    assert!(matches!(
        &call(&table, "h", "/s.Invalid/Get", GRPC).action,
        Action::Respond(r) if r.reason == LocalReason::InvalidBackend {
            backend: "bad", reason: "Service ns/gone not found"
        }
    ));
}

#[test]
fn no_listener_is_unimplemented_for_a_grpc_call() {
    let config = json!({
        "schemaVersion": 1, "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "only.example.com"}],
        "backends": {}
    });
    let table = RouteTable::from_json(config.to_string().as_bytes()).unwrap();
    let decision = call(&table, "other.example.com", "/pkg.Svc/Get", GRPC);
    assert_eq!(
        answer(&decision),
        Some((200, Some(GrpcCode::Unimplemented)))
    );
    assert_eq!(GrpcCode::Unimplemented.code(), 12);
    let json_headers = [("content-type", "application/json")];
    let plain = call(&table, "other.example.com", "/pkg.Svc/Get", &json_headers);
    assert_eq!(answer(&plain), Some((404, None)));
}

#[test]
fn filters_and_weights_apply_to_grpc_rules() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([{
                "matches": [{"method": {"service": "pkg.Svc"}}],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-b", "value": "2"}]}},
                    {"type": "RequestMirror", "requestMirror": {"backend": "m"}}
                ],
                "backendRefs": [{"backend": "a", "weight": 3}, {"backend": "b", "weight": 1},
                                {"backend": "bad", "weight": 0}]
            }])
        )]),
        json!([]),
    );
    let mut counts = BTreeMap::new();
    let mut random = SplitMix64(3);
    for _ in 0..4000 {
        let request = Request {
            port: 80,
            sni: None,
            method: "POST",
            authority: "h",
            path: "/pkg.Svc/Get",
            headers: GRPC,
        };
        let decision = table.evaluate(&request, &mut random);
        let Action::Forward(forward) = decision.action else {
            panic!("expected a forward, got {decision:?}")
        };
        assert_eq!(
            forward.request_headers,
            [HeaderEdit::Set("x-a", "1".into())]
        );
        assert_eq!(
            forward.response_headers,
            [HeaderEdit::Add("x-b", "2".into())]
        );
        assert_eq!(forward.mirrors.len(), 1);
        assert_eq!(forward.mirrors[0].upstream, "m");
        *counts.entry(forward.upstream).or_insert(0u32) += 1;
    }
    let a = counts.get("a").copied().unwrap_or(0);
    let b = counts.get("b").copied().unwrap_or(0);
    assert_eq!(a + b, 4000, "weight 0 is never picked: {counts:?}");
    assert!((2700..3300).contains(&a), "3:1 split, got {counts:?}");
}

#[test]
fn explain_traces_name_grpc_candidates() {
    let table = table_with(
        json!([grpc_route(
            "r",
            &[],
            json!([
                exact(Some("pkg.Svc"), Some("List"), "b"),
                exact(Some("pkg.Svc"), None, "a")
            ])
        )]),
        json!([]),
    );
    let request = Request {
        port: 80,
        sni: None,
        method: "POST",
        authority: "h",
        path: "/pkg.Svc/Get",
        headers: GRPC,
    };
    let (decision, trace) = table.explain(&request, &mut SplitMix64(1));
    assert_eq!(upstream(&decision), Some("a"));
    let text = trace.to_string();
    assert!(
        text.contains("gRPC request: service \"pkg.Svc\", method \"Get\""),
        "{text}"
    );
    assert!(
        text.contains("GRPCRoute ns/r rules[1] matches[0] [any hostname]: matches"),
        "{text}"
    );
    assert!(text.contains("selected GRPCRoute ns/r rules[1]"), "{text}");
    let unmatched = Request {
        path: "/other.Svc/Get",
        ..request
    };
    let (_, trace) = table.explain(&unmatched, &mut SplitMix64(1));
    assert!(
        trace.to_string().contains("grpc-status 12 (Unimplemented)"),
        "{trace}"
    );
}

#[test]
fn many_grpc_routes_do_not_shadow_each_other() {
    // 2,000 routes, each with its own service: every call finds its own route by key.
    let routes: Vec<Value> = (0..2000)
        .map(|i| {
            grpc_route(
                &format!("r{i}"),
                &[],
                json!([exact(Some(&format!("pkg.S{i}")), Some("Get"), "a")]),
            )
        })
        .collect();
    let table = table_with(Value::Array(routes), json!([]));
    for i in [0, 999, 1999] {
        let path = format!("/pkg.S{i}/Get");
        let decision = call(&table, "h", &path, GRPC);
        assert_eq!(
            decision.route.map(|r| r.name.to_owned()),
            Some(format!("r{i}"))
        );
    }
}

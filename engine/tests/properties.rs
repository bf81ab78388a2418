//! Property tests: arbitrary JSON and arbitrary requests never make validate, compile or evaluate
//! panic, and every decision stays within what the config allows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

mod support;

use engine::{Action, GrpcCode, Request, RouteKind, RouteTable, SplitMix64};
use proptest::prelude::*;
use serde_json::{Value, json};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u16>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "/",
            "/a",
            "*.x.com",
            "x.com",
            "Exact",
            "PathPrefix",
            "RegularExpression",
            "HTTP",
            "HTTPS",
            "GET",
            "http",
            "b",
            "(",
            "1s"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "schemaVersion",
                    "gateway",
                    "listeners",
                    "routes",
                    "backends",
                    "name",
                    "namespace",
                    "port",
                    "protocol",
                    "hostname",
                    "parents",
                    "listener",
                    "hostnames",
                    "rules",
                    "matches",
                    "path",
                    "type",
                    "value",
                    "headers",
                    "queryParams",
                    "method",
                    "filters",
                    "backendRefs",
                    "backend",
                    "weight",
                    "upstream",
                    "invalid",
                    "reason",
                    "timeouts",
                    "request",
                    "retry",
                    "cors",
                    "allowOrigins",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A config exercising every feature, used as the seed for mutations and request fuzzing.
fn rich_config() -> Value {
    let mut config = http_config();
    // GRPCRoutes on the same listeners: every method-match kind, headers, filters, weights, an
    // invalid backend and an unresolved filter.
    config["grpcRoutes"] = json!([
        {"namespace": "g", "name": "rpc", "creationTimestamp": "2024-01-01T00:00:00Z",
         "parents": [{"listener": "http"}, {"listener": "wild", "hostnames": ["*.example.com"]}, {"listener": "tls"}],
         "rules": [
            {"matches": [{"method": {"service": "pkg.Svc", "method": "Get"}, "headers": [{"name": "h", "value": "v"}]},
                         {"method": {"type": "RegularExpression", "service": "pkg\\..*", "method": "G.*"}},
                         {"method": {"method": "List"}}],
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}},
                         {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "y", "value": "2"}]}},
                         {"type": "RequestMirror", "requestMirror": {"backend": "mirror", "percent": 50}}],
             "backendRefs": [{"backend": "one", "weight": 3}, {"backend": "bad:x", "weight": 1}, {"backend": "two", "weight": 0}]},
            {"matches": [{"method": {"service": "pkg.Empty"}}]},
            {"matches": [{"method": {"service": "pkg.Unresolved"}}], "filters": [{"type": "Unresolved", "reason": "x"}],
             "backendRefs": [{"backend": "one"}]},
         ]},
        {"namespace": "g", "name": "all", "parents": [{"listener": "http", "hostnames": ["grpc.example.com"]}],
         "rules": [{"backendRefs": [{"backend": "two"}]}]},
    ]);
    config
}

fn http_config() -> Value {
    support::config_json(
        json!([
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
            {"name": "tls", "port": 443, "protocol": "HTTPS", "hostname": "secure.example.com"},
        ]),
        json!([
            {"namespace": "a", "name": "web", "creationTimestamp": "2024-01-01T00:00:00Z",
             "parents": [{"listener": "http"}, {"listener": "wild", "hostnames": ["foo.example.com", "*.example.com"]}, {"listener": "tls"}],
             "rules": [
                {"matches": [{"path": {"type": "Exact", "value": "/exact"}}, {"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}, "method": "POST"}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}], "add": [{"name": "y", "value": "2"}], "remove": ["z"]}},
                             {"type": "RequestMirror", "requestMirror": {"backend": "mirror", "percent": 50}},
                             {"type": "CORS", "cors": {"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"], "allowCredentials": true}}],
                 "backendRefs": [{"backend": "one", "weight": 3}, {"backend": "bad:x", "weight": 1},
                                 {"backend": "two", "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "r", "value": "v"}]}}]}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/p/"}, "headers": [{"name": "h", "value": "v"}, {"type": "RegularExpression", "name": "k", "value": "a.*"}],
                              "queryParams": [{"name": "q", "value": "1"}, {"type": "RegularExpression", "name": "r", "value": "[a-z]+"}]}],
                 "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "in.example", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                 "backendRefs": [{"backend": "one"}], "timeouts": {"request": "1s"}, "retry": {"attempts": 2, "codes": [503]}},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/redirect"}}],
                 "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/x"}}}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "filters": [{"type": "Unresolved", "reason": "x"}], "backendRefs": [{"backend": "one"}]},
             ]},
            {"namespace": "b", "name": "none", "parents": [{"listener": "http"}], "rules": [{"matches": [{"path": {"type": "Exact", "value": "/none"}}]}]},
        ]),
    )
}

fn check_decision(table: &RouteTable, request: &Request<'_, String>) {
    let mut rng = SplitMix64(request.path.len() as u64);
    let decision = table.evaluate(request, &mut rng);
    let upstreams: Vec<&str> = table.upstreams().collect();
    match &decision.action {
        Action::Forward(f) => {
            assert!(
                upstreams.contains(&f.upstream),
                "forwarded to unknown upstream {}",
                f.upstream
            );
            for m in &f.mirrors {
                assert!(upstreams.contains(&m.upstream));
            }
        }
        Action::Redirect(r) => assert!(matches!(r.status, 301 | 302 | 303 | 307 | 308)),
        Action::Respond(r) => assert!(matches!(r.status, 200 | 404 | 421 | 500), "{}", r.status),
    }
    check_grpc_semantics(request, &decision);
    let (explained, _) = table.explain(request, &mut SplitMix64(request.path.len() as u64));
    assert_eq!(
        explained, decision,
        "explain must decide exactly like evaluate"
    );
}

/// gRPC requests get gRPC answers (HTTP 200 with a grpc-status) unless an HTTPRoute took them
/// (HTTPRoute semantics) or the request was misdirected (421); other requests never match a
/// GRPCRoute and never get a gRPC answer.
fn check_grpc_semantics(request: &Request<'_, String>, decision: &engine::Decision<'_>) {
    let grpc = request.method == "POST"
        && request.header("content-type").is_some_and(|v| {
            v.starts_with("application/grpc") && !v.starts_with("application/grpc-")
        });
    let kind = decision.route.map(|r| r.kind);
    if !grpc {
        assert_ne!(kind, Some(RouteKind::GRPCRoute), "{decision:?}");
        if let Action::Respond(r) = &decision.action {
            assert_eq!(r.grpc, None, "{decision:?}");
        }
        return;
    }
    if let Action::Respond(r) = &decision.action {
        match (r.status, r.grpc, kind) {
            (200, Some(GrpcCode::Unimplemented), None) => {}
            (200, Some(GrpcCode::Unavailable), Some(RouteKind::GRPCRoute)) => {}
            (421, None, _) => {}
            (_, None, Some(RouteKind::HTTPRoute)) => {}
            other => panic!("a gRPC request answered {other:?}: {decision:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(doc in arbitrary_json()) {
        let _ = RouteTable::from_json(doc.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = RouteTable::from_json(&bytes);
    }

    #[test]
    fn mutated_configs_never_panic(path_choice in any::<prop::sample::Index>(), replacement in arbitrary_json()) {
        let mut config = rich_config();
        let mut pointers = Vec::new();
        collect_pointers(&config, String::new(), &mut pointers);
        let pointer = path_choice.get(&pointers).clone();
        if let Some(slot) = config.pointer_mut(&pointer) {
            *slot = replacement;
        }
        if let Ok(table) = RouteTable::from_json(config.to_string().as_bytes()) {
            let headers = vec![("h".to_owned(), "v".to_owned())];
            for path in ["/exact", "/p/x?q=1&r=ab", "/redirect/y", "/none", "/re/12"] {
                check_decision(&table, &Request { port: 80, sni: None, method: "POST", authority: "foo.example.com", path, headers: &headers });
            }
        }
    }

    #[test]
    fn arbitrary_requests_never_panic(
        method in prop::sample::select(vec!["GET", "POST", "OPTIONS", "", "g e t"]),
        authority in "[a-zA-Z0-9.:\\[\\]*-]{0,30}",
        path in "[ -~]{0,40}",
        port in prop::sample::select(vec![80u16, 443, 0, 8080]),
        sni in prop::option::of("[a-z.*]{0,20}"),
        headers in prop::collection::vec(("[a-zA-Z-]{0,8}", "[ -~]{0,16}"), 0..6),
    ) {
        let table = RouteTable::from_json(rich_config().to_string().as_bytes()).expect("rich config is valid");
        let mut headers: Vec<(String, String)> = headers;
        headers.push(("origin".into(), "https://o.example".into()));
        headers.push(("access-control-request-method".into(), "PUT".into()));
        for path in [path.clone(), format!("/p/{path}"), format!("/exact?{path}")] {
            check_decision(&table, &Request { port, sni: sni.as_deref(), method, authority: &authority, path: &path, headers: &headers });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_grpc_requests_get_grpc_answers(
        service in prop::sample::select(vec!["pkg.Svc", "pkg.Empty", "pkg.Unresolved", "pkg.Other", "other", "", "pkg.Svc/x"]),
        method in prop::sample::select(vec!["Get", "List", "Put", "", "G"]),
        authority in prop::sample::select(vec!["foo.example.com", "grpc.example.com", "secure.example.com", "x", ""]),
        content_type in prop::sample::select(vec!["application/grpc", "application/grpc+proto", "application/grpc;a=b", "application/grpc-web", "application/json"]),
        port in prop::sample::select(vec![80u16, 443, 8080]),
        extra in prop::collection::vec(("[a-z]{1,3}", "[ -~]{0,8}"), 0..3),
        verb in prop::sample::select(vec!["POST", "GET"]),
    ) {
        let table = RouteTable::from_json(rich_config().to_string().as_bytes()).expect("rich config is valid");
        let mut headers: Vec<(String, String)> = extra;
        headers.push(("content-type".into(), content_type.into()));
        let path = format!("/{service}/{method}");
        let sni = (port == 443).then_some(authority);
        check_decision(&table, &Request { port, sni, method: verb, authority, path: &path, headers: &headers });
    }
}

fn collect_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                collect_pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

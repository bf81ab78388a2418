//! Property tests: arbitrary JSON and arbitrary requests never make validate, compile or evaluate
//! panic, and every decision stays within what the config allows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

mod support;

use engine::{Action, Request, RouteTable, SplitMix64};
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
    let (explained, _) = table.explain(request, &mut SplitMix64(request.path.len() as u64));
    assert_eq!(
        explained, decision,
        "explain must decide exactly like evaluate"
    );
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

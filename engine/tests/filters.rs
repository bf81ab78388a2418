//! Filters and backend selection: header edits, rewrites (the spec's ReplacePrefixMatch table),
//! redirects (scheme/port rules), mirrors, CORS, weights, invalid backends, unresolved filters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

mod support;

use engine::{Action, HeaderEdit, LocalReason, Request, SplitMix64};
use serde_json::json;
use support::*;

fn one_rule(rule: serde_json::Value) -> engine::RouteTable {
    table(json!([route("r", json!([rule]))]))
}

fn forward<'t>(d: engine::Decision<'t>) -> engine::Forward<'t> {
    match d.action {
        Action::Forward(f) => f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn header_modifiers_emit_set_add_remove_in_order() {
    let t = one_rule(json!({
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "X-Set", "value": "s"}], "add": [{"name": "X-Add", "value": "a"}], "remove": ["X-Gone"]}},
          {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "X-Resp", "value": "r"}]}}],
        "backendRefs": [{"backend": "b"}]}));
    let req = get("/");
    let f = forward(eval(&t, &req));
    assert_eq!(
        f.request_headers,
        [
            HeaderEdit::Set("X-Set", "s".into()),
            HeaderEdit::Add("X-Add", "a".into()),
            HeaderEdit::Remove("X-Gone")
        ]
    );
    assert_eq!(f.response_headers, [HeaderEdit::Add("X-Resp", "r".into())]);
}

/// The table of HTTPPathModifier.ReplacePrefixMatch in the Gateway API reference.
#[test]
fn replace_prefix_match_follows_the_spec_table() {
    let cases = [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "/", "/bar"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
        ("/foo/bar?x=1", "/foo", "/xyz", "/xyz/bar?x=1"),
    ];
    for (request, prefix, replacement, expected) in cases {
        let t = one_rule(json!({
            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
            "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": replacement}}}],
            "backendRefs": [{"backend": "b"}]}));
        let req = get(request);
        let f = forward(eval(&t, &req));
        assert_eq!(
            f.path.as_deref(),
            Some(expected),
            "{request} with prefix {prefix} → {replacement}"
        );
    }
}

#[test]
fn full_path_and_host_rewrites_keep_the_query() {
    let t = one_rule(json!({
        "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example", "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}}],
        "backendRefs": [{"backend": "b"}]}));
    let req = get("/old/deep?a=1");
    let f = forward(eval(&t, &req));
    assert_eq!(f.path.as_deref(), Some("/new?a=1"));
    assert_eq!(f.authority, Some("internal.example"));
}

fn redirect(filter: serde_json::Value, req: &Req, listeners: serde_json::Value) -> (u16, String) {
    let r = route(
        "r",
        json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/p"}}], "filters": [{"type": "RequestRedirect", "requestRedirect": filter}]}]),
    );
    let mut r = r;
    r["parents"] = json!([{"listener": "l80"}, {"listener": "l8080"}, {"listener": "l443"}]);
    let t = table_with(listeners, json!([r]));
    match eval(&t, req).action {
        Action::Redirect(r) => (r.status, r.location),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

#[test]
fn redirect_ports_follow_the_spec() {
    let listeners = json!([
        {"name": "l80", "port": 80, "protocol": "HTTP"},
        {"name": "l8080", "port": 8080, "protocol": "HTTP"},
        {"name": "l443", "port": 443, "protocol": "HTTPS"},
    ]);
    let on80 = get("/p/x?q=1");
    let on8080 = get("/p/x?q=1").port(8080);
    let on443 = get("/p/x?q=1").port(443);
    let l = || listeners.clone();
    assert_eq!(
        redirect(json!({}), &on80, l()),
        (302, "http://example.com/p/x?q=1".into())
    );
    assert_eq!(
        redirect(json!({}), &on8080, l()),
        (302, "http://example.com:8080/p/x?q=1".into()),
        "no scheme, no port: the listener port"
    );
    assert_eq!(
        redirect(json!({"scheme": "https"}), &on8080, l()),
        (302, "https://example.com/p/x?q=1".into()),
        "scheme set: its well-known port"
    );
    assert_eq!(
        redirect(json!({"port": 80}), &on8080, l()),
        (302, "http://example.com/p/x?q=1".into())
    );
    assert_eq!(
        redirect(json!({"scheme": "https", "port": 8443}), &on80, l()),
        (302, "https://example.com:8443/p/x?q=1".into())
    );
    assert_eq!(
        redirect(json!({"port": 443}), &on443, l()),
        (302, "https://example.com/p/x?q=1".into())
    );
    assert_eq!(
        redirect(json!({"scheme": "http"}), &on443, l()),
        (302, "http://example.com/p/x?q=1".into())
    );
    assert_eq!(
        redirect(
            json!({"hostname": "example.org", "statusCode": 301, "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}),
            &on80,
            l()
        ),
        (301, "http://example.org/new/x?q=1".into())
    );
    assert_eq!(
        redirect(
            json!({"path": {"type": "ReplaceFullPath", "replaceFullPath": "/full"}}),
            &get("/p/x").host("example.com:80"),
            l()
        ),
        (302, "http://example.com/full".into()),
        "the request's port is not carried over"
    );
}

#[test]
fn weighted_picks_follow_weights_and_zero_weight_gets_nothing() {
    let t = one_rule(json!({"backendRefs": [
        {"backend": "a", "weight": 70}, {"backend": "b", "weight": 30}, {"backend": "c", "weight": 0}]}));
    let headers: [(&str, &str); 0] = [];
    let request = Request {
        port: 80,
        sni: None,
        method: "GET",
        authority: "h",
        path: "/",
        headers: &headers,
    };
    let mut rng = SplitMix64(9);
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..10_000 {
        let f = forward(t.evaluate(&request, &mut rng));
        *counts.entry(f.upstream.to_owned()).or_insert(0) += 1;
    }
    let a = counts.get("a").copied().unwrap_or(0);
    assert!((6700..=7300).contains(&a), "{counts:?}");
    assert!(!counts.contains_key("c"), "{counts:?}");
}

#[test]
fn invalid_backends_get_their_share_of_500s() {
    let t = one_rule(json!({"backendRefs": [{"backend": "good"}, {"backend": "bad:missing"}]}));
    let headers: [(&str, &str); 0] = [];
    let request = Request {
        port: 80,
        sni: None,
        method: "GET",
        authority: "h",
        path: "/",
        headers: &headers,
    };
    let mut rng = SplitMix64(3);
    let mut errors = 0;
    for _ in 0..2000 {
        if let Action::Respond(r) = t.evaluate(&request, &mut rng).action {
            assert_eq!(r.status, 500);
            assert!(matches!(
                r.reason,
                LocalReason::InvalidBackend {
                    backend: "bad:missing",
                    reason: "BackendNotFound"
                }
            ));
            errors += 1;
        }
    }
    assert!((800..=1200).contains(&errors), "{errors} of 2000");
}

#[test]
fn rules_without_forwardable_backends_answer_500() {
    let t = table(json!([route(
        "r",
        json!([
            {"matches": [{"path": {"type": "Exact", "value": "/none"}}]},
            {"matches": [{"path": {"type": "Exact", "value": "/zero"}}], "backendRefs": [{"backend": "a", "weight": 0}]},
            {"matches": [{"path": {"type": "Exact", "value": "/ext"}}], "filters": [{"type": "Unresolved", "reason": "ExtensionRef example.com/Foo not found"}], "backendRefs": [{"backend": "a"}]},
        ])
    )]));
    assert_eq!(outcome(&t, &get("/none")), "status:500");
    assert_eq!(outcome(&t, &get("/zero")), "status:500");
    assert_eq!(outcome(&t, &get("/ext")), "status:500");
}

#[test]
fn mirrors_sample_by_fraction_and_skip_invalid_targets() {
    let t = one_rule(json!({
        "filters": [
            {"type": "RequestMirror", "requestMirror": {"backend": "always"}},
            {"type": "RequestMirror", "requestMirror": {"backend": "quarter", "fraction": {"numerator": 1, "denominator": 4}}},
            {"type": "RequestMirror", "requestMirror": {"backend": "never", "percent": 0}},
            {"type": "RequestMirror", "requestMirror": {"backend": "bad:gone"}}],
        "backendRefs": [{"backend": "main"}]}));
    let headers: [(&str, &str); 0] = [];
    let request = Request {
        port: 80,
        sni: None,
        method: "GET",
        authority: "h",
        path: "/",
        headers: &headers,
    };
    let mut rng = SplitMix64(5);
    let (mut always, mut quarter) = (0, 0);
    for _ in 0..4000 {
        let f = forward(t.evaluate(&request, &mut rng));
        for m in &f.mirrors {
            match m.upstream {
                "always" => always += 1,
                "quarter" => quarter += 1,
                other => panic!("unexpected mirror {other}"),
            }
        }
    }
    assert_eq!(always, 4000);
    assert!((800..=1200).contains(&quarter), "{quarter}");
}

#[test]
fn cors_preflights_are_answered_and_actual_requests_decorated() {
    let t = one_rule(json!({
        "filters": [{"type": "CORS", "cors": {"allowOrigins": ["https://*.example.com"], "allowMethods": ["GET", "PUT"],
            "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"], "allowCredentials": true, "maxAge": 60}}],
        "backendRefs": [{"backend": "b"}]}));
    let pre = get("/")
        .method("OPTIONS")
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "PUT");
    match eval(&t, &pre).action {
        Action::Respond(r) => {
            assert_eq!(r.status, 200);
            assert_eq!(r.reason, LocalReason::CorsPreflight);
            for expected in [
                HeaderEdit::Set(
                    "access-control-allow-origin",
                    "https://app.example.com".into(),
                ),
                HeaderEdit::Set("access-control-allow-methods", "GET, PUT".into()),
                HeaderEdit::Set("access-control-allow-headers", "x-a".into()),
                HeaderEdit::Set("access-control-allow-credentials", "true".into()),
                HeaderEdit::Set("access-control-max-age", "60".into()),
            ] {
                assert!(
                    r.headers.contains(&expected),
                    "{expected:?} missing from {:?}",
                    r.headers
                );
            }
        }
        other => panic!("expected a preflight answer, got {other:?}"),
    }
    let denied = get("/")
        .method("OPTIONS")
        .header("Origin", "https://evil.org")
        .header("Access-Control-Request-Method", "PUT");
    match eval(&t, &denied).action {
        Action::Respond(r) => assert!(r.headers.is_empty(), "{:?}", r.headers),
        other => panic!("{other:?}"),
    }
    let actual = get("/").header("origin", "https://app.example.com");
    let f = forward(eval(&t, &actual));
    assert!(f.response_headers.contains(&HeaderEdit::Set(
        "access-control-allow-origin",
        "https://app.example.com".into()
    )));
    assert!(f.response_headers.contains(&HeaderEdit::Set(
        "access-control-expose-headers",
        "x-b".into()
    )));
    let no_origin = get("/");
    assert!(forward(eval(&t, &no_origin)).response_headers.is_empty());
}

#[test]
fn backend_level_filters_apply_only_to_the_picked_backend() {
    let t = one_rule(json!({"backendRefs": [
        {"backend": "a", "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-backend", "value": "a"}]}}]},
        {"backend": "b", "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/b"}}}]}]}));
    let headers: [(&str, &str); 0] = [];
    let request = Request {
        port: 80,
        sni: None,
        method: "GET",
        authority: "h",
        path: "/x",
        headers: &headers,
    };
    let mut rng = SplitMix64(11);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let f = forward(t.evaluate(&request, &mut rng));
        match f.upstream {
            "a" => assert_eq!((f.request_headers.len(), f.path.as_deref()), (1, None)),
            "b" => assert_eq!(
                (f.request_headers.len(), f.path.as_deref()),
                (0, Some("/b"))
            ),
            other => panic!("{other}"),
        }
        seen.insert(f.upstream);
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn timeouts_and_retries_are_passed_to_the_host() {
    let t = one_rule(
        json!({"timeouts": {"request": "10s", "backendRequest": "1500ms"},
        "retry": {"attempts": 2, "codes": [502, 503], "backoff": "100ms"}, "backendRefs": [{"backend": "b"}]}),
    );
    let req = get("/");
    let f = forward(eval(&t, &req));
    assert_eq!(
        (f.request_timeout_ms, f.backend_request_timeout_ms),
        (Some(10_000), Some(1_500))
    );
    let retry = f.retry.expect("retry policy");
    assert_eq!(
        (retry.attempts, retry.codes, retry.backoff_ms),
        (2, &[502u16, 503][..], Some(100))
    );
}

#[test]
fn a_rule_with_only_timeouts_or_only_a_retry_passes_what_it_has() {
    let only_timeouts =
        one_rule(json!({"timeouts": {"backendRequest": "2s"}, "backendRefs": [{"backend": "b"}]}));
    let req = get("/");
    let f = forward(eval(&only_timeouts, &req));
    assert_eq!(
        (
            f.request_timeout_ms,
            f.backend_request_timeout_ms,
            f.retry.is_some()
        ),
        (None, Some(2_000), false)
    );
    let only_retry =
        one_rule(json!({"retry": {"codes": [503]}, "backendRefs": [{"backend": "b"}]}));
    let f = forward(eval(&only_retry, &req));
    let retry = f.retry.expect("retry policy");
    assert_eq!(
        (f.request_timeout_ms, f.backend_request_timeout_ms),
        (None, None)
    );
    assert_eq!(
        (retry.attempts, retry.codes, retry.backoff_ms),
        (0, &[503u16][..], None)
    );
    let neither = one_rule(json!({"backendRefs": [{"backend": "b"}]}));
    let f = forward(eval(&neither, &req));
    assert_eq!(
        (
            f.request_timeout_ms,
            f.backend_request_timeout_ms,
            f.retry.is_some()
        ),
        (None, None, false)
    );
}

#[test]
fn explain_narrates_the_decision() {
    let t = table(json!([route(
        "r",
        json!([
            rule(
                json!([{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "v", "value": "2"}]}]),
                "v2"
            ),
            rule(
                json!([{"path": {"type": "PathPrefix", "value": "/"}}]),
                "v1"
            ),
        ])
    )]));
    let headers = [("v", "1")];
    let request = Request {
        port: 80,
        sni: None,
        method: "GET",
        authority: "example.com",
        path: "/x",
        headers: &headers,
    };
    let (decision, trace) = t.explain(&request, &mut SplitMix64(1));
    assert!(matches!(decision.action, Action::Forward(ref f) if f.upstream == "v1"));
    let text = trace.to_string();
    assert!(text.contains("listener \"http\""), "{text}");
    assert!(
        text.contains("ns/r rules[0] matches[0]")
            && text.contains("header v = \"2\" does not hold"),
        "{text}"
    );
    // The path as written, read from the candidate (the prefix index keeps only its length).
    assert!(
        text.contains("ns/r rules[1] matches[0] [any hostname, path PathPrefix \"/\"]: matches"),
        "{text}"
    );
    assert!(text.contains("selected ns/r rules[1]"), "{text}");
    assert!(text.contains("backend v1"), "{text}");
}

//! One test per precedence and matching rule of the Gateway API spec (HTTPRouteRule.matches and
//! HTTPRoute.hostnames), including those the conformance suite does not cover: creationTimestamp
//! and name tie-breaks, rule order, regex placement, hostname specificity, element-wise prefixes.
//! Each rule forwards to a backend named `expected` or `unexpected`, whatever the order written.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

mod support;

use serde_json::json;
use support::*;

fn prefix(v: &str) -> serde_json::Value {
    json!({"path": {"type": "PathPrefix", "value": v}})
}
fn exact(v: &str) -> serde_json::Value {
    json!({"path": {"type": "Exact", "value": v}})
}

#[test]
fn exact_path_beats_any_prefix() {
    let t = table(json!([route(
        "r",
        json!([
            rule(json!([prefix("/foo/bar")]), "unexpected"),
            rule(json!([exact("/foo/bar")]), "expected"),
        ])
    )]));
    assert_eq!(outcome(&t, &get("/foo/bar")), "expected");
}

#[test]
fn longest_prefix_wins_regardless_of_order() {
    let t = table(json!([
        route(
            "a",
            json!([
                rule(json!([prefix("/")]), "unexpected"),
                rule(json!([prefix("/foo")]), "unexpected")
            ])
        ),
        route("z", json!([rule(json!([prefix("/foo/bar")]), "expected")])),
    ]));
    assert_eq!(outcome(&t, &get("/foo/bar/baz")), "expected");
}

#[test]
fn prefix_matching_is_element_wise() {
    let t = table(json!([route(
        "r",
        json!([
            rule(json!([prefix("/foo")]), "foo"),
            rule(json!([prefix("/")]), "root"),
        ])
    )]));
    assert_eq!(outcome(&t, &get("/foo")), "foo");
    assert_eq!(outcome(&t, &get("/foo/")), "foo");
    assert_eq!(outcome(&t, &get("/foo/x")), "foo");
    assert_eq!(
        outcome(&t, &get("/foobar")),
        "root",
        "/foo must not match /foobar"
    );
    assert_eq!(
        outcome(&t, &get("/foo?x=/bar")),
        "foo",
        "the query is not part of the path"
    );
}

#[test]
fn trailing_slash_in_prefix_is_ignored_but_counts_as_a_character() {
    let t = table(json!([route(
        "r",
        json!([
            rule(json!([prefix("/foo")]), "unexpected"),
            rule(json!([prefix("/foo/")]), "expected"),
        ])
    )]));
    assert_eq!(
        outcome(&t, &get("/foo")),
        "expected",
        "/foo/ also matches /foo and has more characters"
    );
    assert_eq!(outcome(&t, &get("/foo/x")), "expected");
}

#[test]
fn method_match_beats_header_and_query_matches() {
    let t = table(json!([route(
        "r",
        json!([
            rule(
                json!([{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}], "queryParams": [{"name": "q", "value": "1"}]}]),
                "unexpected"
            ),
            rule(
                json!([{"path": {"type": "PathPrefix", "value": "/"}, "method": "POST"}]),
                "expected"
            ),
        ])
    )]));
    assert_eq!(
        outcome(
            &t,
            &get("/?q=1")
                .method("POST")
                .header("a", "1")
                .header("b", "2")
        ),
        "expected"
    );
    assert_eq!(
        outcome(&t, &get("/?q=1").header("a", "1").header("b", "2")),
        "unexpected"
    );
}

#[test]
fn more_header_matches_win() {
    let t = table(json!([route(
        "r",
        json!([
            rule(
                json!([{"headers": [{"name": "a", "value": "1"}]}]),
                "unexpected"
            ),
            rule(
                json!([{"headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}]),
                "expected"
            ),
        ])
    )]));
    assert_eq!(
        outcome(&t, &get("/").header("a", "1").header("b", "2")),
        "expected"
    );
    assert_eq!(outcome(&t, &get("/").header("a", "1")), "unexpected");
}

#[test]
fn header_matches_beat_query_matches() {
    let t = table(json!([route(
        "r",
        json!([
            rule(
                json!([{"queryParams": [{"name": "x", "value": "1"}, {"name": "y", "value": "2"}]}]),
                "unexpected"
            ),
            rule(
                json!([{"headers": [{"name": "a", "value": "1"}]}]),
                "expected"
            ),
        ])
    )]));
    assert_eq!(outcome(&t, &get("/?x=1&y=2").header("a", "1")), "expected");
}

#[test]
fn more_query_matches_win() {
    let t = table(json!([route(
        "r",
        json!([
            rule(
                json!([{"queryParams": [{"name": "x", "value": "1"}]}]),
                "unexpected"
            ),
            rule(
                json!([{"queryParams": [{"name": "x", "value": "1"}, {"name": "y", "value": "2"}]}]),
                "expected"
            ),
        ])
    )]));
    assert_eq!(outcome(&t, &get("/?y=2&x=1")), "expected");
}

#[test]
fn oldest_route_wins_a_tie() {
    let mut newer = route("a-newer", json!([rule(json!([prefix("/")]), "unexpected")]));
    newer["creationTimestamp"] = json!("2024-05-02T00:00:00Z");
    let mut older = route("z-older", json!([rule(json!([prefix("/")]), "expected")]));
    older["creationTimestamp"] = json!("2024-05-01T23:59:59.5+00:00");
    let t = table(json!([newer, older]));
    assert_eq!(outcome(&t, &get("/x")), "expected");
}

#[test]
fn routes_with_a_timestamp_beat_routes_without() {
    let untimed = route("a", json!([rule(json!([prefix("/")]), "unexpected")]));
    let mut timed = route("b", json!([rule(json!([prefix("/")]), "expected")]));
    timed["creationTimestamp"] = json!("2030-01-01T00:00:00Z");
    assert_eq!(
        outcome(&table(json!([untimed, timed])), &get("/")),
        "expected"
    );
}

#[test]
fn namespace_then_name_alphabetical_breaks_remaining_ties() {
    let mut in_b = route("a", json!([rule(json!([prefix("/")]), "unexpected")]));
    in_b["namespace"] = json!("b");
    let mut in_a = route("z", json!([rule(json!([prefix("/")]), "expected")]));
    in_a["namespace"] = json!("a");
    assert_eq!(
        outcome(&table(json!([in_b, in_a])), &get("/")),
        "expected",
        "a/z sorts before b/a"
    );
    let t = table(json!([
        route("beta", json!([rule(json!([prefix("/")]), "unexpected")])),
        route("alpha", json!([rule(json!([prefix("/")]), "expected")])),
    ]));
    assert_eq!(outcome(&t, &get("/")), "expected");
}

#[test]
fn first_rule_in_list_order_wins_within_a_route() {
    let t = table(json!([route(
        "r",
        json!([
            rule(json!([prefix("/")]), "expected"),
            rule(json!([prefix("/")]), "unexpected"),
        ])
    )]));
    assert_eq!(outcome(&t, &get("/")), "expected");
}

#[test]
fn matches_within_a_rule_are_ored() {
    let t = table(json!([route(
        "r",
        json!([rule(
            json!([exact("/a"), {"path": {"type": "Exact", "value": "/b"}, "method": "PUT"}]),
            "expected"
        ),])
    )]));
    assert_eq!(outcome(&t, &get("/a")), "expected");
    assert_eq!(outcome(&t, &get("/b").method("PUT")), "expected");
    assert_eq!(outcome(&t, &get("/b")), "status:404");
}

#[test]
fn a_rule_without_matches_matches_everything() {
    let t = table(json!([route(
        "r",
        json!([{"backendRefs": [{"backend": "expected"}]}])
    )]));
    assert_eq!(outcome(&t, &get("/any/path?x")), "expected");
    assert_eq!(
        outcome(&t, &get("*").method("OPTIONS")),
        "status:404",
        "not an origin-form path"
    );
}

#[test]
fn regex_paths_match_the_whole_path_and_sit_between_exact_and_prefix() {
    let t = table(json!([route(
        "r",
        json!([
            rule(json!([prefix("/api/v1")]), "prefix"),
            rule(
                json!([{"path": {"type": "RegularExpression", "value": "/api/v[0-9]+/users"}}]),
                "regex"
            ),
            rule(json!([exact("/api/v1/users")]), "exact"),
        ])
    )]));
    assert_eq!(outcome(&t, &get("/api/v1/users")), "exact");
    assert_eq!(outcome(&t, &get("/api/v2/users")), "regex");
    assert_eq!(
        outcome(&t, &get("/api/v1/users/7")),
        "prefix",
        "regex must match the whole path"
    );
    let t2 = table(json!([route(
        "r",
        json!([
            rule(json!([prefix("/api/v1/users")]), "prefix"),
            rule(
                json!([{"path": {"type": "RegularExpression", "value": "/api/v1/u.*"}}]),
                "regex"
            ),
        ])
    )]));
    assert_eq!(
        outcome(&t2, &get("/api/v1/users")),
        "regex",
        "regex ranks above every prefix"
    );
}

#[test]
fn header_names_are_case_insensitive_and_values_case_sensitive() {
    let t = table(json!([route(
        "r",
        json!([rule(
            json!([{"headers": [{"name": "Version", "value": "Two"}]}]),
            "expected"
        ),])
    )]));
    assert_eq!(outcome(&t, &get("/").header("vERSION", "Two")), "expected");
    assert_eq!(
        outcome(&t, &get("/").header("version", "two")),
        "status:404"
    );
}

#[test]
fn only_the_first_of_duplicate_header_conditions_counts() {
    let t = table(json!([route(
        "r",
        json!([rule(
            json!([{"headers": [{"name": "a", "value": "1"}, {"name": "A", "value": "2"}]}]),
            "expected"
        ),])
    )]));
    assert_eq!(outcome(&t, &get("/").header("a", "1")), "expected");
}

#[test]
fn regex_header_and_query_values_match_whole_values() {
    let t = table(json!([route(
        "r",
        json!([rule(
            json!([{"headers": [{"type": "RegularExpression", "name": "v", "value": "v[0-9]"}],
                     "queryParams": [{"type": "RegularExpression", "name": "id", "value": "[a-f]+"}]}]),
            "expected"
        ),])
    )]));
    assert_eq!(outcome(&t, &get("/?id=beef").header("v", "v1")), "expected");
    assert_eq!(
        outcome(&t, &get("/?id=beef").header("v", "v10")),
        "status:404"
    );
    assert_eq!(
        outcome(&t, &get("/?id=beefy").header("v", "v1")),
        "status:404"
    );
}

fn host_routes() -> serde_json::Value {
    let mut none = route("none", json!([rule(json!([prefix("/")]), "any-host")]));
    none["parents"] = json!([{"listener": "http"}]);
    let mut short = route("short", json!([rule(json!([prefix("/")]), "wild-com")]));
    short["parents"] = json!([{"listener": "http", "hostnames": ["*.com"]}]);
    let mut wild = route("wild", json!([rule(json!([prefix("/")]), "wild-example")]));
    wild["parents"] = json!([{"listener": "http", "hostnames": ["*.example.com"]}]);
    let mut exact_host = route(
        "exact",
        json!([rule(json!([prefix("/only")]), "exact-host")]),
    );
    exact_host["parents"] = json!([{"listener": "http", "hostnames": ["foo.example.com"]}]);
    json!([none, short, wild, exact_host])
}

#[test]
fn hostname_specificity_orders_exact_then_longer_wildcards_then_none() {
    let t = table(json!(host_routes()));
    assert_eq!(
        outcome(&t, &get("/only").host("foo.example.com")),
        "exact-host"
    );
    assert_eq!(
        outcome(&t, &get("/only").host("FOO.Example.com:8080")),
        "exact-host",
        "host is case-insensitive, port ignored"
    );
    assert_eq!(
        outcome(&t, &get("/only").host("bar.example.com")),
        "wild-example"
    );
    assert_eq!(
        outcome(&t, &get("/x").host("a.b.example.com")),
        "wild-example",
        "wildcards span several labels"
    );
    assert_eq!(
        outcome(&t, &get("/x").host("example.com")),
        "wild-com",
        "*.example.com does not match example.com"
    );
    assert_eq!(outcome(&t, &get("/x").host("example.org")), "any-host");
}

#[test]
fn a_less_specific_hostname_still_serves_paths_the_specific_one_lacks() {
    // Precedence orders the *matching* rules; rules of foo.example.com that do not match the path
    // do not hide the wildcard route's rules.
    let t = table(json!(host_routes()));
    assert_eq!(
        outcome(&t, &get("/other").host("foo.example.com")),
        "wild-example"
    );
}

#[test]
fn hostname_precedence_comes_before_path_precedence() {
    let mut specific = route("specific", json!([rule(json!([prefix("/")]), "expected")]));
    specific["parents"] = json!([{"listener": "http", "hostnames": ["a.example.com"]}]);
    let mut general = route("general", json!([rule(json!([exact("/x")]), "unexpected")]));
    general["parents"] = json!([{"listener": "http", "hostnames": ["*.example.com"]}]);
    assert_eq!(
        outcome(
            &table(json!([specific, general])),
            &get("/x").host("a.example.com")
        ),
        "expected"
    );
}

fn isolation_listeners() -> serde_json::Value {
    json!([
        {"name": "empty", "port": 80, "protocol": "HTTP"},
        {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
        {"name": "exact", "port": 80, "protocol": "HTTP", "hostname": "foo.example.com"},
        {"name": "other-port", "port": 8080, "protocol": "HTTP"},
    ])
}

#[test]
fn requests_only_see_routes_of_the_most_specific_listener() {
    let mut on_empty = route("on-empty", json!([rule(json!([prefix("/")]), "empty")]));
    on_empty["parents"] = json!([{"listener": "empty"}]);
    let mut on_wild = route("on-wild", json!([rule(json!([prefix("/wild")]), "wild")]));
    on_wild["parents"] = json!([{"listener": "wild"}]);
    let mut on_port = route("on-port", json!([rule(json!([prefix("/")]), "port8080")]));
    on_port["parents"] = json!([{"listener": "other-port"}]);
    let t = table_with(isolation_listeners(), json!([on_empty, on_wild, on_port]));
    assert_eq!(outcome(&t, &get("/wild").host("bar.example.com")), "wild");
    assert_eq!(
        outcome(&t, &get("/x").host("bar.example.com")),
        "status:404",
        "isolation: no fallback to the empty listener"
    );
    assert_eq!(
        outcome(&t, &get("/wild").host("foo.example.com")),
        "status:404",
        "the exact listener has no routes"
    );
    assert_eq!(outcome(&t, &get("/x").host("example.org")), "empty");
    assert_eq!(
        outcome(&t, &get("/x").host("bar.example.com").port(8080)),
        "port8080"
    );
    assert_eq!(
        outcome(&t, &get("/x").port(9999)),
        "status:404",
        "no listener on that port"
    );
}

#[test]
fn tls_server_name_and_host_must_select_the_same_listener() {
    let listeners = json!([
        {"name": "https", "port": 443, "protocol": "HTTPS"},
        {"name": "second", "port": 443, "protocol": "HTTPS", "hostname": "second.example.org"},
    ]);
    let mut a = route("a", json!([rule(json!([prefix("/")]), "catch-all")]));
    a["parents"] = json!([{"listener": "https", "hostnames": ["example.org"]}]);
    let mut b = route("b", json!([rule(json!([prefix("/")]), "second")]));
    b["parents"] = json!([{"listener": "second"}]);
    let t = table_with(listeners, json!([a, b]));
    let req = |host: &str, sni: &str| get("/").port(443).host(host).sni(sni);
    assert_eq!(outcome(&t, &req("example.org", "example.org")), "catch-all");
    assert_eq!(
        outcome(&t, &req("second.example.org", "second.example.org")),
        "second"
    );
    assert_eq!(
        outcome(&t, &req("second.example.org", "example.org")),
        "status:421"
    );
    assert_eq!(
        outcome(&t, &req("unknown.org", "second.example.org")),
        "status:421"
    );
    assert_eq!(
        outcome(&t, &req("unknown.org", "example.org")),
        "status:404",
        "same listener, no route"
    );
    assert_eq!(outcome(&t, &req("example.org", "unknown.org")), "catch-all");
}

//! Rules and filters: defaults, conversions, invalid rules.

use engine::config::{Filter, PathMatchType, PathModifier};
use serde_json::json;

use super::*;

const GW: &str = "infra/gw";

fn one_route(spec: serde_json::Value) -> Resolution {
    let mut s = infra_gateway(json!([http("web", 80)]));
    let mut spec = spec;
    spec["parentRefs"] = json!([{"name": "gw"}]);
    s.http_routes.push(route("infra", "r", spec));
    run(&s)
}

fn accepted(r: &Resolution) -> (String, String) {
    let (status, reason, _) = condition_parts(&parents(r, "infra/r")[0].conditions, "Accepted");
    (status, reason)
}

/// The API server's defaults (rules: one PathPrefix "/" match; match path PathPrefix "/"; header
/// and query matches Exact; weight 1) applied by the resolver, so a route as written and its
/// defaulted form give the same config.
#[test]
fn written_and_defaulted_routes_resolve_alike() {
    let written = one_route(json!({"rules": [
        {"matches": [{"headers": [{"name": "x", "value": "1"}]}, {"path": {"value": "/a"}}],
         "backendRefs": [{"name": "svc", "port": 8080}]},
        {"backendRefs": [{"name": "svc", "port": 8080}]}
    ]}));
    let defaulted = one_route(json!({"rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "Exact", "name": "x", "value": "1"}]},
                     {"path": {"type": "PathPrefix", "value": "/a"}}],
         "backendRefs": [{"group": "", "kind": "Service", "name": "svc", "port": 8080, "weight": 1}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [{"group": "", "kind": "Service", "name": "svc", "port": 8080, "weight": 1}]}
    ]}));
    assert_eq!(config(&written, GW).routes, config(&defaulted, GW).routes);
    let absent = one_route(json!({}));
    let rule = &config(&absent, GW).routes[0].rules[0];
    assert_eq!(
        rule.matches[0].path.as_ref().unwrap().kind,
        PathMatchType::PathPrefix
    );
    assert!(rule.backend_refs.is_empty());
}

/// Redirect "StatusCode ... +kubebuilder:default=302"; CORS maxAge defaults to 5 seconds.
#[test]
fn filter_defaults_are_filled() {
    let r = one_route(json!({"rules": [{"filters": [
        {"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}},
        {"type": "CORS", "cors": {"allowOrigins": ["https://a.com"]}}
    ]}]}));
    let filters = &config(&r, GW).routes[0].rules[0].filters;
    let Filter::RequestRedirect { request_redirect } = &filters[0] else {
        panic!("{filters:?}")
    };
    assert_eq!(request_redirect.status_code, Some(302));
    assert_eq!(request_redirect.scheme.as_deref(), Some("https"));
    let Filter::Cors { cors } = &filters[1] else {
        panic!("{filters:?}")
    };
    assert_eq!(cors.max_age, Some(5));
    assert!(!cors.allow_credentials);
}

/// "ReplacePrefixMatch is only compatible with a `PathPrefix` HTTPRouteMatch." The rule is
/// dropped; with other valid rules the route stays Accepted and is marked PartiallyInvalid, alone
/// it is not Accepted.
#[test]
fn replace_prefix_match_needs_prefix_matches() {
    let bad = json!({"matches": [{"path": {"type": "Exact", "value": "/x"}}],
                     "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/y"}}}],
                     "backendRefs": [{"name": "svc", "port": 8080}]});
    let good = json!({"matches": [{"path": {"type": "PathPrefix", "value": "/p"}}],
                      "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/q"}}}],
                      "backendRefs": [{"name": "svc", "port": 8080}]});
    let r = one_route(json!({"rules": [bad.clone(), good]}));
    assert_eq!(accepted(&r), ("True".into(), "Accepted".into()));
    let p = &parents(&r, "infra/r")[0];
    let partial = condition(&p.conditions, "PartiallyInvalid");
    assert_eq!(
        (partial.status.as_str(), partial.reason.as_str()),
        ("True", "UnsupportedValue")
    );
    assert!(
        partial.message.starts_with("Dropped Rule") && partial.message.contains("rules[0]"),
        "{}",
        partial.message
    );
    let rules = &config(&r, GW).routes[0].rules;
    assert_eq!(rules.len(), 1);
    let Filter::UrlRewrite { url_rewrite } = &rules[0].filters[0] else {
        panic!()
    };
    assert_eq!(
        url_rewrite.path,
        Some(PathModifier::ReplacePrefixMatch {
            replace_prefix_match: "/q".into()
        })
    );

    let r = one_route(json!({"rules": [bad]}));
    assert_eq!(accepted(&r), ("False".into(), "UnsupportedValue".into()));
    assert!(config(&r, GW).routes.is_empty());
}

/// "If a reference to a custom filter type cannot be resolved, the filter MUST NOT be skipped.
/// Instead, requests that would have been processed by that filter MUST receive a HTTP error
/// response."
#[test]
fn unresolvable_extension_ref() {
    let r = one_route(json!({"rules": [{"filters": [
        {"type": "ExtensionRef", "extensionRef": {"group": "example.com", "kind": "Magic", "name": "m"}}
    ], "backendRefs": [{"name": "svc", "port": 8080}]}]}));
    assert_eq!(accepted(&r), ("True".into(), "Accepted".into()));
    assert_route_condition(&r, "infra/r", "ResolvedRefs", "False", "InvalidKind");
    let filters = &config(&r, GW).routes[0].rules[0].filters;
    assert!(matches!(&filters[0], Filter::Unresolved { reason } if reason.contains("Magic")));
}

/// "All filters are expected to be compatible with each other except for the URLRewrite and
/// RequestRedirect filters, which may not be combined ... implementations may use the
/// `IncompatibleFilters` reason".
#[test]
fn redirect_and_rewrite_together() {
    let r = one_route(json!({"rules": [{"filters": [
        {"type": "RequestRedirect", "requestRedirect": {"hostname": "a.com"}},
        {"type": "URLRewrite", "urlRewrite": {"hostname": "b.com"}}
    ]}]}));
    assert_eq!(accepted(&r), ("False".into(), "IncompatibleFilters".into()));
}

/// A rule the engine cannot compile (here a regular expression) is dropped with the engine's
/// message pointing at the rule, instead of the whole Gateway config being rejected.
#[test]
fn invalid_regex_drops_only_its_rule() {
    let r = one_route(json!({"rules": [
        {"matches": [{"path": {"type": "RegularExpression", "value": "(("}}]},
        {"matches": [{"path": {"type": "Exact", "value": "/ok"}}]}
    ]}));
    let partial = condition(&parents(&r, "infra/r")[0].conditions, "PartiallyInvalid");
    assert!(
        partial.message.contains("rules[0].matches[0]"),
        "{}",
        partial.message
    );
    assert_eq!(config(&r, GW).routes[0].rules.len(), 1);
}

/// "If multiple entries specify equivalent header names, the first entry with an equivalent name
/// MUST be considered for a match. Subsequent entries with an equivalent header name MUST be
/// ignored." Query parameter names are case-sensitive.
#[test]
fn repeated_match_names_keep_the_first() {
    let r = one_route(json!({"rules": [{"matches": [{
        "headers": [{"name": "Version", "value": "1"}, {"name": "version", "value": "2"}],
        "queryParams": [{"name": "q", "value": "1"}, {"name": "Q", "value": "2"}, {"name": "q", "value": "3"}]
    }]}]}));
    let m = &config(&r, GW).routes[0].rules[0].matches[0];
    assert_eq!(m.headers.len(), 1);
    assert_eq!(m.headers[0].value, "1");
    let q: Vec<(&str, &str)> = m
        .query_params
        .iter()
        .map(|q| (q.name.as_str(), q.value.as_str()))
        .collect();
    assert_eq!(q, [("q", "1"), ("Q", "2")]);
}

/// Rule name, timeouts, retry and the route's creationTimestamp reach the config.
#[test]
fn rule_fields_are_carried() {
    let mut s = infra_gateway(json!([http("web", 80)]));
    let mut r = route(
        "infra",
        "r",
        json!({"parentRefs": [{"name": "gw"}], "rules": [{
        "name": "main", "timeouts": {"request": "10s", "backendRequest": "2s"},
        "retry": {"attempts": 3, "codes": [500, 503], "backoff": "100ms"},
        "backendRefs": [{"name": "svc", "port": 8080}]}]}),
    );
    r.metadata.creation_timestamp = Some(crate::api::meta::Time(
        "2020-09-08T01:02:03Z".parse().unwrap(),
    ));
    s.http_routes.push(r);
    let r = run(&s);
    let route = &config(&r, GW).routes[0];
    assert_eq!(
        route.creation_timestamp.as_deref(),
        Some("2020-09-08T01:02:03Z")
    );
    let rule = &route.rules[0];
    assert_eq!(rule.name.as_deref(), Some("main"));
    let timeouts = rule.timeouts.as_ref().unwrap();
    assert_eq!(
        (
            timeouts.request.as_deref(),
            timeouts.backend_request.as_deref()
        ),
        (Some("10s"), Some("2s"))
    );
    let retry = rule.retry.as_ref().unwrap();
    assert_eq!(
        (
            retry.attempts,
            retry.codes.as_slice(),
            retry.backoff.as_deref()
        ),
        (Some(3), &[500, 503][..], Some("100ms"))
    );
}

/// Hostnames "Valid values ... RFC 1123 ... IPs are not allowed": a route with an invalid one is
/// not accepted rather than silently widened.
#[test]
fn invalid_route_hostnames() {
    let r = one_route(json!({"hostnames": ["10.1.2.3"], "rules": [{}]}));
    assert_eq!(accepted(&r), ("False".into(), "UnsupportedValue".into()));
    let c = condition(&parents(&r, "infra/r")[0].conditions, "Accepted");
    assert!(c.message.contains("IP address"), "{}", c.message);
}

/// The resolver and the engine use one hostname validator (`engine::hostname`): a redirect to an
/// IP address ("PreciseHostname ... numeric IP addresses are not allowed") drops that rule with
/// the engine's own reason, and the rest of the route is served.
#[test]
fn redirect_to_an_ip_address_drops_the_rule() {
    let r = one_route(json!({"rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/ip"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {"hostname": "10.0.0.1"}}]},
        {"backendRefs": [{"name": "svc", "port": 8080}]}]}));
    let c = condition(&parents(&r, "infra/r")[0].conditions, "PartiallyInvalid");
    assert!(
        c.message
            .contains("rules[0].filters[0].requestRedirect.hostname")
            && c.message.contains("IP address"),
        "{}",
        c.message
    );
    assert_eq!(config(&r, GW).routes[0].rules.len(), 1);
}

/// A filter type the data plane does not implement fails closed (500) and says so.
#[test]
fn external_auth_fails_closed() {
    let r = one_route(
        json!({"rules": [{"filters": [{"type": "ExternalAuth", "externalAuth": {
        "protocol": "HTTP", "backendRef": {"name": "auth", "port": 80}}}]}]}),
    );
    let c = condition(&parents(&r, "infra/r")[0].conditions, "Accepted");
    assert!(c.message.contains("ExternalAuth"), "{}", c.message);
    let filters = &config(&r, GW).routes[0].rules[0].filters;
    assert!(matches!(filters[0], Filter::Unresolved { .. }));
}

//! GRPCRoute: attachment, allowed kinds, backends, ReferenceGrants, rule validation, status.

use engine::config::{Filter, GrpcMethodMatch, GrpcRule, ValueMatchType};
use serde_json::{Value, json};

use super::*;

const GW: &str = "infra/gw";

/// Our class, Services `svc` (8080, no appProtocol) and `h2` (8080 h2c, 8081 http, 8082 ws) in
/// `infra`, and a Gateway `gw` with `listeners`.
fn with_listeners(listeners: Value) -> Snapshot {
    let mut s = infra_gateway(listeners);
    s.services.push(service(
        "infra",
        "h2",
        json!([
            {"name": "grpc", "port": 8080, "appProtocol": "kubernetes.io/h2c"},
            {"name": "web", "port": 8081, "appProtocol": "http"},
            {"name": "ws", "port": 8082, "appProtocol": "kubernetes.io/ws"}
        ]),
    ));
    s
}

fn one_http_listener() -> Snapshot {
    with_listeners(json!([http("http", 80)]))
}

/// A GRPCRoute `infra/g` to `gw` with these rules.
fn with_rules(rules: Value) -> Snapshot {
    let mut s = one_http_listener();
    s.grpc_routes.push(grpc_route(
        "infra",
        "g",
        json!({"parentRefs": [{"name": "gw"}], "rules": rules}),
    ));
    s
}

fn grpc_rules(r: &Resolution) -> &[GrpcRule] {
    &config(r, GW).grpc_routes[0].rules
}

fn status(r: &Resolution, condition_type: &str) -> (String, String, String) {
    condition_parts(&grpc_parents(r, "infra/g")[0].conditions, condition_type)
}

#[test]
fn a_grpc_route_attaches_and_is_emitted_in_grpc_routes() {
    let mut s = one_http_listener();
    s.grpc_routes.push(created(
        grpc_route(
            "infra",
            "g",
            json!({"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"],
                   "rules": [{"matches": [{"method": {"service": "pkg.Svc", "method": "Get"}}],
                              "backendRefs": [{"name": "svc", "port": 8080}]}]}),
        ),
        "2026-01-02T03:04:05Z",
    ));
    let r = run(&s);
    let parent = &grpc_parents(&r, "infra/g")[0];
    assert_condition(&parent.conditions, "Accepted", "True", "Accepted");
    assert_condition(&parent.conditions, "ResolvedRefs", "True", "ResolvedRefs");
    assert_eq!(parent.parent_ref.kind.as_deref(), Some("Gateway"));
    assert_eq!(
        parent.conditions[0].observed_generation,
        Some(5),
        "the GRPCRoute's own generation"
    );
    let config = config(&r, GW);
    assert!(config.routes.is_empty(), "not an HTTPRoute");
    let route = &config.grpc_routes[0];
    assert_eq!(
        route.creation_timestamp.as_deref(),
        Some("2026-01-02T03:04:05Z")
    );
    assert_eq!(
        grpc_attached(&r, GW, "infra/g"),
        [("http".to_owned(), vec!["grpc.example.com".to_owned()])]
    );
    assert_eq!(
        route.rules[0].matches[0].method,
        Some(GrpcMethodMatch {
            kind: ValueMatchType::Exact,
            service: Some("pkg.Svc".into()),
            method: Some("Get".into()),
        }),
        "type defaults to Exact"
    );
    assert_eq!(
        route.rules[0].backend_refs[0].backend,
        "grpc:infra/svc:8080"
    );
    assert_eq!(route.rules[0].backend_refs[0].weight, 1);
    assert_eq!(listener(&r, GW, "http").attached_routes, 1);
}

/// GRPCRouteRule matches: "If no matches are specified, the implementation MUST match every gRPC
/// request." — an empty `matches` in the document.
#[test]
fn a_rule_without_matches_matches_every_call() {
    let r = run(&with_rules(
        json!([{"backendRefs": [{"name": "svc", "port": 8080}]}]),
    ));
    assert!(grpc_rules(&r)[0].matches.is_empty());
}

/// Gateway API ParentReference sectionName and port select listeners for GRPCRoutes as for
/// HTTPRoutes.
#[test]
fn section_name_and_port_select_listeners() {
    let mut s = with_listeners(json!([http("a", 80), http_host("b", 81, "b.example.com")]));
    s.grpc_routes.push(grpc_route(
        "infra",
        "by-section",
        json!({"parentRefs": [{"name": "gw", "sectionName": "b"}], "rules": [{}]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "by-port",
        json!({"parentRefs": [{"name": "gw", "port": 80}], "rules": [{}]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "nowhere",
        json!({"parentRefs": [{"name": "gw", "sectionName": "b", "port": 80}], "rules": [{}]}),
    ));
    let r = run(&s);
    assert_eq!(
        grpc_attached(&r, GW, "infra/by-section"),
        [("b".to_owned(), vec![])]
    );
    assert_eq!(
        grpc_attached(&r, GW, "infra/by-port"),
        [("a".to_owned(), vec![])]
    );
    assert_condition(
        &grpc_parents(&r, "infra/nowhere")[0].conditions,
        "Accepted",
        "False",
        "NoMatchingParent",
    );
    let echo = &grpc_parents(&r, "infra/by-section")[0].parent_ref;
    assert_eq!(echo.section_name.as_deref(), Some("b"));
    assert_eq!(echo.namespace.as_deref(), Some("infra"));
}

/// "When unspecified or empty, the kinds of Routes selected are determined using the Listener
/// protocol": HTTP and HTTPS listeners take HTTPRoutes and GRPCRoutes, and `supportedKinds` says so.
#[test]
fn http_and_https_listeners_support_both_route_kinds() {
    let mut s = with_listeners(json!([
        http("http", 80),
        {"name": "https", "port": 443, "protocol": "HTTPS",
         "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}
    ]));
    s.secrets.push(tls_secret("infra", "cert"));
    let r = run(&s);
    for name in ["http", "https"] {
        let kinds: Vec<(Option<String>, String)> = listener(&r, GW, name)
            .supported_kinds
            .iter()
            .flatten()
            .map(|k| (k.group.clone(), k.kind.clone()))
            .collect();
        let group = Some("gateway.networking.k8s.io".to_owned());
        assert_eq!(
            kinds,
            [
                (group.clone(), "HTTPRoute".to_owned()),
                (group, "GRPCRoute".to_owned())
            ],
            "{name}"
        );
    }
}

/// A listener whose `allowedRoutes.kinds` lists only HTTPRoute does not take GRPCRoutes:
/// NotAllowedByListeners.
#[test]
fn a_listener_for_httproutes_only_rejects_grpc_routes() {
    let mut s = with_listeners(json!([
        {"name": "http", "port": 80, "protocol": "HTTP",
         "allowedRoutes": {"kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]}}
    ]));
    s.grpc_routes.push(simple_grpc_route("infra", "g", "gw"));
    let r = run(&s);
    let (accepted, reason, message) = status(&r, "Accepted");
    assert_eq!(
        (accepted.as_str(), reason.as_str()),
        ("False", "NotAllowedByListeners")
    );
    assert!(
        message.contains(
            r#"listener "http" does not allow kind GRPCRoute (allowedRoutes.kinds: HTTPRoute)"#
        ),
        "{message}"
    );
    assert!(config(&r, GW).grpc_routes.is_empty());
    assert_eq!(listener(&r, GW, "http").attached_routes, 0);
}

/// "The AttachedRoutes number represents the number of Routes with the Accepted condition set to
/// "True" that have been attached to this Listener": both kinds count.
#[test]
fn attached_routes_count_both_kinds() {
    let mut s = one_http_listener();
    s.http_routes.push(route(
        "infra",
        "web",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["web.example.com"], "rules": [{}]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "g",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"], "rules": [{}]}),
    ));
    // Same namespace/name as the GRPCRoute, another kind: a different route.
    s.http_routes.push(route(
        "infra",
        "g",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["other.example.com"], "rules": [{}]}),
    ));
    let r = run(&s);
    assert_eq!(listener(&r, GW, "http").attached_routes, 3);
    assert_route_condition(&r, "infra/g", "Accepted", "True", "Accepted");
    assert_condition(
        &grpc_parents(&r, "infra/g")[0].conditions,
        "Accepted",
        "True",
        "Accepted",
    );
}

/// GRPCRouteSpec.hostnames: "If both the Listener and GRPCRoute have specified hostnames, any
/// GRPCRoute hostnames that do not match the Listener hostname MUST be ignored." and "... none
/// match ... the GRPCRoute MUST NOT be accepted".
#[test]
fn hostnames_intersect_with_the_listener() {
    let mut s = with_listeners(json!([http_host("wild", 80, "*.example.com")]));
    s.grpc_routes.push(grpc_route(
        "infra",
        "some",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["a.example.com", "a.example.net"], "rules": [{}]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "none",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["example.com"], "rules": [{}]}),
    ));
    let r = run(&s);
    assert_eq!(
        grpc_attached(&r, GW, "infra/some"),
        [("wild".to_owned(), vec!["a.example.com".to_owned()])]
    );
    assert_condition(
        &grpc_parents(&r, "infra/none")[0].conditions,
        "Accepted",
        "False",
        "NoMatchingListenerHostname",
    );
}

/// An HTTPS listener serves GRPCRoutes (gRPC over TLS with ALPN h2).
#[test]
fn https_listener_with_a_grpc_route() {
    let mut s = with_listeners(json!([
        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "grpc.example.com",
         "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}
    ]));
    s.secrets.push(tls_secret("infra", "cert"));
    s.grpc_routes.push(simple_grpc_route("infra", "g", "gw"));
    let r = run(&s);
    assert_eq!(status(&r, "Accepted").0, "True");
    assert_eq!(
        grpc_attached(&r, GW, "infra/g"),
        [("https".to_owned(), vec![])]
    );
    assert_eq!(listener(&r, GW, "https").attached_routes, 1);
}

/// "A grant must name kind GRPCRoute in "from" to permit a GRPCRoute backendRef": a grant from
/// HTTPRoutes does not admit GRPCRoutes (RefNotPermitted), one from GRPCRoutes does.
#[test]
fn reference_grants_must_name_grpc_route() {
    let cross = |grant_kind: &str| {
        let mut s = with_listeners(json!([
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}
        ]));
        s.services.push(service_8080("backends", "svc"));
        s.grpc_routes.push(grpc_route(
            "apps",
            "g",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
                   "rules": [{"backendRefs": [{"name": "svc", "namespace": "backends", "port": 8080}]}]}),
        ));
        s.reference_grants.push(grant(
            "backends",
            json!([{"group": "gateway.networking.k8s.io", "kind": grant_kind, "namespace": "apps"}]),
            json!([{"group": "", "kind": "Service"}]),
        ));
        run(&s)
    };
    let denied = cross("HTTPRoute");
    let c = condition(
        &grpc_parents(&denied, "apps/g")[0].conditions,
        "ResolvedRefs",
    );
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "RefNotPermitted")
    );
    assert!(c.message.contains("GRPCRoutes from apps"), "{}", c.message);
    let backend = &config(&denied, GW).grpc_routes[0].rules[0].backend_refs[0].backend;
    assert!(
        config(&denied, GW).backends[backend].invalid.is_some(),
        "requests picking it get UNAVAILABLE"
    );

    let allowed = cross("GRPCRoute");
    let c = condition(
        &grpc_parents(&allowed, "apps/g")[0].conditions,
        "ResolvedRefs",
    );
    assert_eq!(c.status, "True", "{}", c.message);
    let rule = &config(&allowed, GW).grpc_routes[0].rules[0];
    assert_eq!(rule.backend_refs[0].backend, "grpc:backends/svc:8080");
}

/// GRPCBackendRef: InvalidKind, BackendNotFound, and "If a Route is not able to send traffic to the
/// backend using the specified protocol then the backend is considered invalid. Implementations
/// MUST set the "ResolvedRefs" condition to "False" with the "UnsupportedProtocol" reason." A
/// GRPCRoute needs HTTP/2: a port that declares HTTP/1.1 or WebSocket cannot carry it.
#[test]
fn invalid_backends_and_their_reasons() {
    for (backend_ref, reason) in [
        (json!({"name": "missing", "port": 8080}), "BackendNotFound"),
        (json!({"name": "svc", "port": 9999}), "BackendNotFound"),
        (json!({"name": "svc"}), "BackendNotFound"),
        (
            json!({"group": "example.com", "kind": "Thing", "name": "svc", "port": 8080}),
            "InvalidKind",
        ),
        (json!({"name": "h2", "port": 8081}), "UnsupportedProtocol"),
        (json!({"name": "h2", "port": 8082}), "UnsupportedProtocol"),
    ] {
        let r = run(&with_rules(json!([{"backendRefs": [backend_ref.clone()]}])));
        let (status, got, message) = status(&r, "ResolvedRefs");
        assert_eq!(
            (status.as_str(), got.as_str()),
            ("False", reason),
            "{backend_ref}: {message}"
        );
        // The route is still accepted; the invalid backend answers UNAVAILABLE.
        assert_eq!(status_accepted(&r), "True", "{backend_ref}");
        let key = &grpc_rules(&r)[0].backend_refs[0].backend;
        assert!(key.starts_with("invalid:"), "{key}");
    }
}

fn status_accepted(r: &Resolution) -> String {
    status(r, "Accepted").0
}

/// GRPCRoute backends speak HTTP/2 (h2c) even when the Service port has no `appProtocol`
/// ("Implementations MAY infer the protocol from the Route type"), and an HTTPRoute and a
/// GRPCRoute to the same port get two backends: HTTP/1.1 for one, h2c for the other.
#[test]
fn grpc_backends_are_h2c_and_separate_from_http_backends() {
    let mut s = one_http_listener();
    s.http_routes.push(route(
        "infra",
        "web",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["web.example.com"],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "g",
        json!({"parentRefs": [{"name": "gw"}], "hostnames": ["grpc.example.com"],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}, {"name": "h2", "port": 8080}]}]}),
    ));
    let r = run(&s);
    let targets = &r.gateways[0].backends;
    assert_eq!(targets["infra/svc:8080"].app_protocol, None);
    assert_eq!(
        targets["grpc:infra/svc:8080"].app_protocol.as_deref(),
        Some("kubernetes.io/h2c"),
        "inferred from the route kind"
    );
    assert_eq!(
        targets["grpc:infra/h2:8080"].app_protocol.as_deref(),
        Some("kubernetes.io/h2c")
    );
    assert_eq!(targets["grpc:infra/svc:8080"].service, "svc");
    let backends = &config(&r, GW).backends;
    assert_eq!(
        backends["grpc:infra/svc:8080"].upstream.as_deref(),
        Some("grpc:infra/svc:8080")
    );
}

/// GRPCMethodMatch: "One or both of 'service' or 'method' must be specified" (the CRD's CEL rule).
/// The rule is dropped like an invalid HTTPRoute rule: PartiallyInvalid when others remain,
/// Accepted=False when none does.
#[test]
fn a_method_match_needs_service_or_method() {
    let r = run(&with_rules(json!([
        {"matches": [{"method": {"type": "Exact"}}], "backendRefs": [{"name": "svc", "port": 8080}]},
        {"matches": [{"method": {"service": "pkg.Svc"}}], "backendRefs": [{"name": "svc", "port": 8080}]}
    ])));
    let (partially, reason, message) = status(&r, "PartiallyInvalid");
    assert_eq!(
        (partially.as_str(), reason.as_str()),
        ("True", "UnsupportedValue")
    );
    assert!(
        message.contains("rules[0].matches[0].method: needs service or method"),
        "{message}"
    );
    assert_eq!(grpc_rules(&r).len(), 1);
    assert_eq!(
        grpc_rules(&r)[0].matches[0]
            .method
            .as_ref()
            .unwrap()
            .service
            .as_deref(),
        Some("pkg.Svc")
    );

    let r = run(&with_rules(json!([
        {"matches": [{"method": {"service": "", "method": ""}}], "backendRefs": [{"name": "svc", "port": 8080}]}
    ])));
    let (accepted, reason, _) = status(&r, "Accepted");
    assert_eq!(
        (accepted.as_str(), reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert!(config(&r, GW).grpc_routes.is_empty());
}

/// "If left empty or omitted, will match all services": an empty service next to a method is the
/// same as no service.
#[test]
fn an_empty_service_or_method_matches_any() {
    let r = run(&with_rules(json!([
        {"matches": [{"method": {"type": "RegularExpression", "service": "", "method": "Get.*"}}]}
    ])));
    let method = grpc_rules(&r)[0].matches[0].method.clone().unwrap();
    assert_eq!(method.service, None);
    assert_eq!(method.method.as_deref(), Some("Get.*"));
    assert_eq!(method.kind, ValueMatchType::RegularExpression);
}

/// Exact service and method names follow the CRD: "service must only contain valid characters
/// (matching ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$)", "method must only contain valid
/// characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)".
#[test]
fn exact_names_must_be_grpc_names() {
    for (method, field) in [
        (json!({"service": "/pkg.Svc/Get"}), "service"),
        (json!({"service": "pkg.Svc", "method": "Get/All"}), "method"),
        (json!({"type": "Exact", "method": "1st"}), "method"),
    ] {
        let r = run(&with_rules(
            json!([{"matches": [{"method": method.clone()}]}]),
        ));
        let (accepted, reason, message) = status(&r, "Accepted");
        assert_eq!(
            (accepted.as_str(), reason.as_str()),
            ("False", "UnsupportedValue"),
            "{method}"
        );
        assert!(
            message.contains(&format!("rules[0].matches[0].method.{field}:")),
            "{method}: {message}"
        );
    }
}

/// RegularExpression method matches are compiled with the engine's bounds; one that does not
/// compile drops its rule.
#[test]
fn regular_expression_method_matches_must_compile() {
    let r = run(&with_rules(json!([
        {"matches": [{"method": {"type": "RegularExpression", "service": "pkg\\.(v1|v2)\\.Svc"}}],
         "backendRefs": [{"name": "svc", "port": 8080}]},
        {"matches": [{"method": {"type": "RegularExpression", "method": "(Get"}}],
         "backendRefs": [{"name": "svc", "port": 8080}]}
    ])));
    let (_, _, message) = status(&r, "PartiallyInvalid");
    assert!(
        message.contains(
            "rules[1].matches[0].method.method: \"(Get\" is not a valid regular expression"
        ),
        "{message}"
    );
    assert_eq!(grpc_rules(&r).len(), 1);
}

/// GRPCHeaderMatch: "If multiple entries specify equivalent header names, only the first entry with
/// an equivalent name MUST be considered for a match." Type defaults to Exact; an invalid header
/// name or regex drops the rule.
#[test]
fn header_matches() {
    let r = run(&with_rules(json!([{"matches": [{"headers": [
        {"name": "Version", "value": "one"},
        {"name": "version", "value": "two"},
        {"type": "RegularExpression", "name": "color", "value": "bl.e"}
    ]}]}])));
    let headers = &grpc_rules(&r)[0].matches[0].headers;
    assert_eq!(headers.len(), 2);
    assert_eq!(
        (headers[0].name.as_str(), headers[0].value.as_str()),
        ("Version", "one")
    );
    assert_eq!(headers[0].kind, ValueMatchType::Exact);
    assert_eq!(headers[1].kind, ValueMatchType::RegularExpression);

    for bad in [
        json!({"name": "bad name", "value": "x"}),
        json!({"type": "RegularExpression", "name": "x", "value": "(x"}),
    ] {
        let r = run(&with_rules(
            json!([{"matches": [{"headers": [bad.clone()]}]}]),
        ));
        let (accepted, reason, message) = status(&r, "Accepted");
        assert_eq!(
            (accepted.as_str(), reason.as_str()),
            ("False", "UnsupportedValue"),
            "{bad}"
        );
        assert!(
            message.contains("rules[0].matches[0].headers[0]"),
            "{message}"
        );
    }
}

/// GRPCRouteFilter types: RequestHeaderModifier, ResponseHeaderModifier, RequestMirror (to an h2c
/// backend, like the route's own) and ExtensionRef, which cannot be resolved: "the filter MUST NOT
/// be skipped" — it becomes `Unresolved` (UNAVAILABLE at request time) and ResolvedRefs says why.
#[test]
fn filters_convert_with_their_restrictions() {
    let r = run(&with_rules(json!([{
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}},
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["y"]}},
            {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "svc", "port": 8080}, "percent": 50}}
        ],
        "backendRefs": [{"name": "svc", "port": 8080, "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "z", "value": "2"}]}}
        ]}]
    }, {
        "matches": [{"method": {"service": "pkg.Auth"}}],
        "filters": [{"type": "ExtensionRef", "extensionRef": {"group": "example.com", "kind": "Auth", "name": "a"}}],
        "backendRefs": [{"name": "svc", "port": 8080}]
    }])));
    let rules = grpc_rules(&r);
    let kinds: Vec<&str> = rules[0]
        .filters
        .iter()
        .map(|f| match f {
            Filter::RequestHeaderModifier { .. } => "RequestHeaderModifier",
            Filter::ResponseHeaderModifier { .. } => "ResponseHeaderModifier",
            Filter::RequestMirror { .. } => "RequestMirror",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "RequestHeaderModifier",
            "ResponseHeaderModifier",
            "RequestMirror"
        ]
    );
    let Filter::RequestMirror { request_mirror } = &rules[0].filters[2] else {
        panic!("not a mirror")
    };
    assert_eq!(request_mirror.backend, "grpc:infra/svc:8080");
    assert_eq!(request_mirror.percent, Some(50));
    assert_eq!(rules[0].backend_refs[0].filters.len(), 1);
    assert!(matches!(rules[1].filters[0], Filter::Unresolved { .. }));
    let (resolved, reason, message) = status(&r, "ResolvedRefs");
    assert_eq!(
        (resolved.as_str(), reason.as_str()),
        ("False", "InvalidKind")
    );
    assert!(
        message.contains("ExtensionRef example.com/Auth a"),
        "{message}"
    );
    assert_eq!(status_accepted(&r), "True");
}

/// GRPCRouteFilterType is "Enum=ResponseHeaderModifier;RequestHeaderModifier;RequestMirror;
/// ExtensionRef": the API server refuses other types, and so does reading the object here.
#[test]
fn other_filter_types_are_refused_when_read() {
    let object = json!({"metadata": {"namespace": "infra", "name": "g"}, "spec": {"rules": [
        {"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}]}
    ]}});
    let error = serde_json::from_value::<GrpcRoute>(object)
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown variant `URLRewrite`"), "{error}");
}

/// A negative weight drops the rule ("weight" is 0 to 1,000,000 in the CRD).
#[test]
fn a_negative_weight_drops_the_rule() {
    let r = run(&with_rules(json!([
        {"backendRefs": [{"name": "svc", "port": 8080, "weight": -1}]}
    ])));
    let (accepted, _, message) = status(&r, "Accepted");
    assert_eq!(accepted, "False");
    assert!(
        message.contains("rules[0].backendRefs[0].weight is negative"),
        "{message}"
    );
}

/// A GRPCRoute without rules has nothing for the Gateway to implement: not accepted (as an
/// HTTPRoute with `rules: []`), so it claims no hostname either.
#[test]
fn a_route_without_rules_is_not_accepted() {
    let r = run(&with_rules(json!([])));
    let (accepted, reason, message) = status(&r, "Accepted");
    assert_eq!(
        (accepted.as_str(), reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert_eq!(message, "the route has no rules");
}

/// Named rules reach the data plane ("Name is the name of the route rule").
#[test]
fn rule_names_are_kept() {
    let r = run(&with_rules(
        json!([{"name": "named-rule", "backendRefs": [{"name": "svc", "port": 8080}]}]),
    ));
    assert_eq!(grpc_rules(&r)[0].name.as_deref(), Some("named-rule"));
}

/// "Controllers should ensure that entries to status populated with their ControllerName are
/// cleaned up when they are no longer necessary": a GRPCRoute that left our Gateway gets its
/// entries removed, and only the GRPCRoute (not an HTTPRoute of the same name).
#[test]
fn a_grpc_route_that_left_gets_its_status_cleared() {
    let mut s = one_http_listener();
    let mut left = grpc_route(
        "infra",
        "g",
        json!({"parentRefs": [{"name": "elsewhere"}], "rules": [{}]}),
    );
    left.status = Some(object(json!({"parents": [{
        "controllerName": CONTROLLER,
        "parentRef": {"name": "gw"},
        "conditions": []
    }]})));
    s.grpc_routes.push(left);
    let r = run(&s);
    let update = r
        .routes
        .iter()
        .find(|u| u.kind == Kind::GrpcRoute)
        .expect("an update for the GRPCRoute");
    assert_eq!(update.route.to_string(), "infra/g");
    assert!(update.status.parents.is_empty());
    assert!(!has_status(&r, "infra/g"), "no HTTPRoute update");
}

/// A ListenerSet's listener takes GRPCRoutes like a Gateway's own.
#[test]
fn listener_set_listeners_take_grpc_routes() {
    let mut s = gateway_taking_listener_sets(json!([http("http", 80)]), "Same");
    s.listener_sets.push(listener_set(
        "infra",
        "set",
        json!({"parentRef": {"name": "gw"}, "listeners": [http_host("extra", 81, "grpc.example.com")]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "g",
        json!({"parentRefs": [{"kind": "ListenerSet", "name": "set"}],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    let r = run(&s);
    assert_eq!(status_accepted(&r), "True");
    assert_eq!(
        grpc_attached(&r, GW, "infra/g"),
        [("infra/set/extra".to_owned(), vec![])]
    );
}

//! backendRefs: kinds, Services and ports, ReferenceGrants, EndpointSlices, mirrors.

use engine::config::Filter;
use serde_json::json;

use super::*;

const GW: &str = "infra/gw";

fn with_backends(backend_refs: serde_json::Value) -> Snapshot {
    let mut s = infra_gateway(
        json!([{"name": "web", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]),
    );
    s.http_routes.push(route(
        "infra",
        "r",
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backend_refs}]}),
    ));
    s
}

fn resolved_refs(r: &Resolution) -> (String, String) {
    let c = condition(&parents(r, "infra/r")[0].conditions, "ResolvedRefs");
    (c.status.clone(), c.reason.clone())
}

fn backend_keys(r: &Resolution) -> Vec<String> {
    config(r, GW).routes[0].rules[0]
        .backend_refs
        .iter()
        .map(|b| b.backend.clone())
        .collect()
}

/// Kind "Defaults to "Service" when not specified"; group "When unspecified or empty string, core
/// API group is inferred." Weight "If unspecified, weight defaults to 1."
#[test]
fn service_defaults_and_weights() {
    let r = run(&with_backends(json!([
        {"name": "svc", "port": 8080},
        {"name": "svc", "port": 8080, "group": "", "kind": "Service", "weight": 0}
    ])));
    assert_eq!(resolved_refs(&r), ("True".into(), "ResolvedRefs".into()));
    let refs = &config(&r, GW).routes[0].rules[0].backend_refs;
    assert_eq!(refs[0].backend, "infra/svc:8080");
    assert_eq!(refs[0].weight, 1);
    assert_eq!(refs[1].backend, "infra/svc:8080");
    assert_eq!(refs[1].weight, 0);
    let backend = &config(&r, GW).backends["infra/svc:8080"];
    assert_eq!(backend.upstream.as_deref(), Some("infra/svc:8080"));
}

/// "If the referent cannot be found ... ResolvedRefs ... False" with BackendNotFound; requests to it
/// get a 500 (the backend is recorded as invalid).
#[test]
fn missing_service_or_port() {
    for (refs, what) in [
        (json!([{"name": "nope", "port": 8080}]), "missing Service"),
        (
            json!([{"name": "svc", "port": 9999}]),
            "missing port number",
        ),
        (json!([{"name": "svc"}]), "no port"),
    ] {
        let r = run(&with_backends(refs));
        assert_eq!(
            resolved_refs(&r),
            ("False".into(), "BackendNotFound".into()),
            "{what}"
        );
        assert_route_condition(&r, "infra/r", "Accepted", "True", "Accepted");
        let key = &backend_keys(&r)[0];
        let invalid = config(&r, GW).backends[key].invalid.as_ref().unwrap();
        assert_eq!(invalid.reason, "BackendNotFound", "{what}");
    }
}

#[test]
fn unknown_kind_is_invalid_kind() {
    let r = run(&with_backends(
        json!([{"name": "x", "port": 80, "group": "example.com", "kind": "Bucket"}]),
    ));
    assert_eq!(resolved_refs(&r), ("False".into(), "InvalidKind".into()));
    assert!(backend_keys(&r)[0].starts_with("invalid:InvalidKind:"));
}

/// "when a namespace different than the local namespace is specified, a ReferenceGrant object is
/// required in the referent namespace".
#[test]
fn reference_grants_allow_and_deny() {
    let refs = json!([{"name": "svc", "namespace": "apps", "port": 8080}]);
    let mut s = with_backends(refs.clone());
    s.services.push(service_8080("apps", "svc"));
    let r = run(&s);
    assert_eq!(
        resolved_refs(&r),
        ("False".into(), "RefNotPermitted".into())
    );

    let from =
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "infra"}]);
    s.reference_grants.push(grant(
        "apps",
        from.clone(),
        json!([{"group": "", "kind": "Service", "name": "other"}]),
    ));
    let r = run(&s);
    assert_eq!(
        resolved_refs(&r),
        ("False".into(), "RefNotPermitted".into()),
        "grant for another name"
    );

    s.reference_grants.push(grant(
        "apps",
        from,
        json!([{"group": "", "kind": "Service"}]),
    ));
    let r = run(&s);
    assert_eq!(resolved_refs(&r), ("True".into(), "ResolvedRefs".into()));
    assert_eq!(backend_keys(&r), ["apps/svc:8080"]);
}

/// The same Service is permitted for one route namespace and not another; both routes share a
/// Gateway config without their backends colliding.
#[test]
fn grants_depend_on_the_route_namespace() {
    let mut s = with_backends(json!([{"name": "svc", "namespace": "apps", "port": 8080}]));
    s.services.push(service_8080("apps", "svc"));
    s.reference_grants.push(grant(
        "apps",
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "team"}]),
        json!([{"group": "", "kind": "Service"}]),
    ));
    s.http_routes.push(route(
        "team",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "hostnames": ["team.com"],
               "rules": [{"backendRefs": [{"name": "svc", "namespace": "apps", "port": 8080}]}]}),
    ));
    let r = run(&s);
    let cfg = config(&r, GW);
    assert!(cfg.backends["apps/svc:8080"].upstream.is_some());
    assert!(
        cfg.backends["invalid:RefNotPermitted:apps/svc:8080"]
            .invalid
            .is_some()
    );
}

/// Endpoints come from EndpointSlices labelled with the Service name, matched to the Service port
/// by port name; "ready ... nil should be interpreted as "true"".
#[test]
fn endpoints_from_slices() {
    let mut s = with_backends(json!([{"name": "web", "port": 80}]));
    s.services.push(service(
        "infra",
        "web",
        json!([
            {"name": "http", "port": 80, "targetPort": 9090},
            {"name": "admin", "port": 81}
        ]),
    ));
    s.endpoint_slices.push(endpoint_slice(
        "infra",
        "web",
        "web-1",
        json!([{"name": "http", "port": 9090}, {"name": "admin", "port": 9191}]),
        json!([
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
            {"addresses": ["10.0.0.3"]}
        ]),
    ));
    s.endpoint_slices.push(endpoint_slice(
        "infra",
        "web",
        "web-2",
        json!([{"name": "admin", "port": 9191}]),
        json!([{"addresses": ["10.0.0.9"]}]),
    ));
    s.endpoint_slices.push(endpoint_slice(
        "infra",
        "other",
        "other-1",
        json!([{"name": "http", "port": 9090}]),
        json!([{"addresses": ["10.0.0.8"]}]),
    ));
    let r = run(&s);
    let target = &r.gateways[0].backends["infra/web:80"];
    assert_eq!(target.port, 80);
    let endpoints: Vec<(&str, u16)> = target
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.port))
        .collect();
    assert_eq!(endpoints, [("10.0.0.1", 9090), ("10.0.0.3", 9090)]);
}

/// Headless Services (no cluster IP) and Services without a selector (slices written by hand)
/// resolve through the same EndpointSlices.
#[test]
fn headless_and_selector_less_services() {
    let mut s = with_backends(
        json!([{"name": "headless", "port": 8080}, {"name": "manual", "port": 8080}]),
    );
    let mut headless = service(
        "infra",
        "headless",
        json!([{"name": "first-port", "port": 8080}]),
    );
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let mut manual = service(
        "infra",
        "manual",
        json!([{"name": "first-port", "port": 8080}]),
    );
    manual.spec.as_mut().unwrap().selector = None;
    s.services.extend([headless, manual]);
    for svc in ["headless", "manual"] {
        s.endpoint_slices.push(endpoint_slice(
            "infra",
            svc,
            &format!("{svc}-abc"),
            json!([{"name": "first-port", "port": 3000}]),
            json!([{"addresses": ["10.1.0.1"], "conditions": {"ready": true}}]),
        ));
    }
    let r = run(&s);
    assert_eq!(resolved_refs(&r), ("True".into(), "ResolvedRefs".into()));
    for key in ["infra/headless:8080", "infra/manual:8080"] {
        let target = &r.gateways[0].backends[key];
        assert_eq!(target.endpoints.len(), 1, "{key}");
        assert_eq!(target.endpoints[0].port, 3000, "{key}");
    }
}

/// "If a Route is not able to send traffic to the backend using the specified protocol then the
/// backend is considered invalid ... "UnsupportedProtocol" reason."
#[test]
fn protocols() {
    let mut s = with_backends(json!([{"name": "h2c", "port": 8080}]));
    s.services.push(service(
        "infra",
        "h2c",
        json!([{"port": 8080, "appProtocol": "kubernetes.io/h2c"}]),
    ));
    let r = run(&s);
    assert_eq!(resolved_refs(&r), ("True".into(), "ResolvedRefs".into()));
    assert_eq!(
        r.gateways[0].backends["infra/h2c:8080"]
            .app_protocol
            .as_deref(),
        Some("kubernetes.io/h2c")
    );

    let mut s = with_backends(json!([{"name": "odd", "port": 8080}]));
    s.services.push(service(
        "infra",
        "odd",
        json!([{"port": 8080, "appProtocol": "example.com/carrier-pigeon"}]),
    ));
    assert_eq!(
        resolved_refs(&run(&s)),
        ("False".into(), "UnsupportedProtocol".into())
    );

    let mut s = with_backends(json!([{"name": "dns", "port": 53}]));
    s.services.push(service(
        "infra",
        "dns",
        json!([{"port": 53, "protocol": "UDP"}]),
    ));
    assert_eq!(
        resolved_refs(&run(&s)),
        ("False".into(), "UnsupportedProtocol".into())
    );
}

/// RequestMirror: "If the referent cannot be found, this BackendRef is invalid and must be dropped
/// ... ResolvedRefs ... False" — the route keeps routing.
#[test]
fn invalid_mirror_target() {
    let mut s = infra_gateway(json!([http("web", 80)]));
    s.http_routes.push(route(
        "infra",
        "r",
        json!({"parentRefs": [{"name": "gw"}], "rules": [{
            "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "gone", "port": 80}}}],
            "backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    let r = run(&s);
    let p = &parents(&r, "infra/r")[0];
    assert_condition(&p.conditions, "Accepted", "True", "Accepted");
    assert_condition(&p.conditions, "ResolvedRefs", "False", "BackendNotFound");
    let rule = &config(&r, GW).routes[0].rules[0];
    let Filter::RequestMirror { request_mirror } = &rule.filters[0] else {
        panic!("expected a mirror filter, got {:?}", rule.filters)
    };
    assert!(
        config(&r, GW).backends[&request_mirror.backend]
            .invalid
            .is_some()
    );
    assert_eq!(rule.backend_refs[0].backend, "infra/svc:8080");
    assert!(!r.gateways[0].backends.contains_key(&request_mirror.backend));
}

//! ParentRef matching, allowedRoutes, hostname intersection, multiple Gateways, ListenerSets.

use serde_json::json;

use super::*;

const GW: &str = "infra/gw";

/// "Group ... When unspecified, "gateway.networking.k8s.io" is inferred." Kind defaults to Gateway,
/// namespace to the route's. Status echoes the reference with those defaults made explicit.
#[test]
fn parent_ref_defaults() {
    let mut s = infra_gateway(json!([http("web", 80)]));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    let p = parents(&r, "infra/r");
    assert_eq!(p.len(), 1);
    let parent = &p[0];
    assert_eq!(parent.controller_name, CONTROLLER);
    assert_eq!(
        parent.parent_ref.group.as_deref(),
        Some("gateway.networking.k8s.io")
    );
    assert_eq!(parent.parent_ref.kind.as_deref(), Some("Gateway"));
    assert_eq!(parent.parent_ref.namespace.as_deref(), Some("infra"));
    assert_eq!(parent.parent_ref.name, "gw");
    assert_eq!(parent.parent_ref.section_name, None);
    assert_condition(&parent.conditions, "Accepted", "True", "Accepted");
    assert_condition(&parent.conditions, "ResolvedRefs", "True", "ResolvedRefs");
    assert!(
        parent
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(7))
    );
    assert_eq!(
        attached(&r, GW, "infra/r"),
        vec![("web".to_owned(), vec![])]
    );
    assert_eq!(listener(&r, GW, "web").attached_routes, 1);
}

/// "To set the core API group (such as for a "Service" kind referent), Group must be explicitly
/// set to "" (empty string)." Such parents, and other kinds, belong to someone else.
#[test]
fn parents_that_are_not_our_gateways_get_no_status() {
    let mut s = infra_gateway(json!([http("web", 80)]));
    s.gateways.push(gateway_spec(
        "infra",
        "theirs",
        json!({"gatewayClassName": "other", "listeners": [http("web", 80)]}),
    ));
    s.gateway_classes
        .push(class("other", "example.com/another-controller"));
    s.http_routes.push(route(
        "infra",
        "core-group",
        json!({"parentRefs": [{"name": "gw", "group": ""}], "rules": [{}]}),
    ));
    s.http_routes.push(route(
        "infra",
        "service-parent",
        json!({"parentRefs": [{"name": "svc", "group": "", "kind": "Service"}], "rules": [{}]}),
    ));
    s.http_routes
        .push(simple_route("infra", "their-gateway", "theirs"));
    // The namespace defaults to the route's own: `apps/gw` does not exist.
    s.http_routes
        .push(simple_route("apps", "other-namespace", "gw"));
    let r = run(&s);
    for route in [
        "infra/core-group",
        "infra/service-parent",
        "infra/their-gateway",
        "apps/other-namespace",
    ] {
        assert!(!has_status(&r, route), "{route}");
    }
    assert_eq!(
        r.gateways.len(),
        1,
        "only Gateways of our classes get a result"
    );
}

/// SectionName: "Gateway: Listener name." Port: "this targets all listeners listening on the
/// specified port". "When both Port (experimental) and SectionName are specified, the name and port
/// of the selected listener must match both specified values."
#[test]
fn section_name_and_port_select_listeners() {
    let mut s = infra_gateway(json!([
        http_host("a", 80, "a.com"),
        http_host("b", 8080, "b.com"),
        http_host("c", 8080, "c.com")
    ]));
    let parent = |p: serde_json::Value| json!({"parentRefs": [p], "rules": [{}]});
    s.http_routes.push(route(
        "infra",
        "section",
        parent(json!({"name": "gw", "sectionName": "b"})),
    ));
    s.http_routes.push(route(
        "infra",
        "port",
        parent(json!({"name": "gw", "port": 8080})),
    ));
    s.http_routes.push(route(
        "infra",
        "both",
        parent(json!({"name": "gw", "sectionName": "c", "port": 8080})),
    ));
    s.http_routes.push(route(
        "infra",
        "no-section",
        parent(json!({"name": "gw", "sectionName": "z"})),
    ));
    s.http_routes.push(route(
        "infra",
        "no-port",
        parent(json!({"name": "gw", "port": 9999})),
    ));
    s.http_routes.push(route(
        "infra",
        "mismatch",
        parent(json!({"name": "gw", "sectionName": "a", "port": 8080})),
    ));
    let r = run(&s);
    let names = |route: &str| attached_listeners(&r, GW, route);
    assert_eq!(names("infra/section"), ["b"]);
    assert_eq!(names("infra/port"), ["b", "c"]);
    assert_eq!(names("infra/both"), ["c"]);
    for route in ["infra/no-section", "infra/no-port", "infra/mismatch"] {
        let p = parents(&r, route);
        assert_condition(&p[0].conditions, "Accepted", "False", "NoMatchingParent");
        assert!(names(route).is_empty());
    }
    assert_eq!(
        parents(&r, "infra/section")[0]
            .parent_ref
            .section_name
            .as_deref(),
        Some("b")
    );
    assert_eq!(parents(&r, "infra/port")[0].parent_ref.port, Some(8080));
    assert_eq!(listener(&r, GW, "a").attached_routes, 0);
    assert_eq!(listener(&r, GW, "b").attached_routes, 2);
    assert_eq!(listener(&r, GW, "c").attached_routes, 2);
}

/// "Namespaces indicates namespaces from which Routes may be attached to this Listener. This is
/// restricted to the namespace of this Gateway by default."
#[test]
fn allowed_routes_same_is_the_default() {
    let mut s = base("infra");
    s.services.push(service_8080("apps", "svc"));
    s.gateways
        .push(gateway("infra", "gw", json!([http("web", 80)])));
    s.http_routes.push(route(
        "apps",
        "r",
        json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    let r = run(&s);
    let p = parents(&r, "apps/r");
    assert_condition(
        &p[0].conditions,
        "Accepted",
        "False",
        "NotAllowedByListeners",
    );
    assert_condition(&p[0].conditions, "ResolvedRefs", "True", "ResolvedRefs");
    assert!(config(&r, GW).routes.is_empty());
    assert_eq!(listener(&r, GW, "web").attached_routes, 0);
}

#[test]
fn allowed_routes_all_and_selector() {
    let listener = |name: &str, port: u16, namespaces: serde_json::Value| json!({"name": name, "port": port, "protocol": "HTTP", "allowedRoutes": {"namespaces": namespaces}});
    let mut s = infra_gateway(json!([
        listener("all", 80, json!({"from": "All"})),
        listener(
            "labels",
            81,
            json!({"from": "Selector", "selector": {"matchLabels": {"team": "a"}}})
        ),
        listener(
            "exprs",
            82,
            json!({"from": "Selector", "selector": {"matchExpressions": [
                {"key": "team", "operator": "In", "values": ["a", "b"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]}]}})
        ),
        listener(
            "by-name",
            83,
            json!({"from": "Selector", "selector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}})
        ),
        listener("no-selector", 84, json!({"from": "Selector"})),
    ]));
    s.namespaces.push(namespace("team-a", json!({"team": "a"})));
    s.namespaces
        .push(namespace("team-b", json!({"team": "b", "env": "prod"})));
    for ns in ["team-a", "team-b", "nobody"] {
        s.http_routes.push(route(
            ns,
            "r",
            json!({"parentRefs": [{"name": "gw", "namespace": "infra"}], "rules": [{}]}),
        ));
    }
    let r = run(&s);
    let names = |route: &str| attached_listeners(&r, GW, route);
    assert_eq!(names("team-a/r"), ["all", "labels", "exprs"]);
    assert_eq!(names("team-b/r"), ["all", "by-name"]);
    assert_eq!(names("nobody/r"), ["all"]);
}

/// "Kinds specifies the groups and kinds of Routes that are allowed to bind to this Gateway
/// Listener.": a listener that lists only GRPCRoute turns HTTPRoutes away.
#[test]
fn allowed_routes_kinds() {
    let mut s = infra_gateway(json!([
        {"name": "grpc-only", "port": 80, "protocol": "HTTP", "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}},
        {"name": "http-only", "port": 81, "protocol": "HTTP", "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}]}},
    ]));
    s.http_routes.push(route(
        "infra",
        "r",
        json!({"parentRefs": [{"name": "gw", "sectionName": "grpc-only"}], "rules": [{}]}),
    ));
    s.http_routes.push(route(
        "infra",
        "ok",
        json!({"parentRefs": [{"name": "gw", "sectionName": "http-only"}], "rules": [{}]}),
    ));
    let r = run(&s);
    assert_route_condition(&r, "infra/r", "Accepted", "False", "NotAllowedByListeners");
    assert_route_condition(&r, "infra/ok", "Accepted", "True", "Accepted");
    for (name, kind) in [("grpc-only", "GRPCRoute"), ("http-only", "HTTPRoute")] {
        let l = listener(&r, GW, name);
        assert_condition(&l.conditions, "ResolvedRefs", "True", "ResolvedRefs");
        let kinds = l.supported_kinds.as_ref().unwrap();
        assert_eq!(kinds.len(), 1, "{name}");
        assert_eq!(kinds[0].group.as_deref(), Some("gateway.networking.k8s.io"));
        assert_eq!(kinds[0].kind, kind);
    }
}

/// "If kinds are specified in Spec that are not supported, they MUST NOT appear in this list and
/// an implementation MUST set the "ResolvedRefs" condition to "False" with the
/// "InvalidRouteKinds" reason."
#[test]
fn unsupported_allowed_route_kinds() {
    let mut s = infra_gateway(json!([
        {"name": "tcp", "port": 80, "protocol": "HTTP", "allowedRoutes": {"kinds": [{"kind": "TCPRoute"}]}},
    ]));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    let l = listener(&r, GW, "tcp");
    assert_condition(&l.conditions, "ResolvedRefs", "False", "InvalidRouteKinds");
    assert_eq!(l.supported_kinds.as_deref().map(<[_]>::len), Some(0));
    assert_route_condition(&r, "infra/r", "Accepted", "False", "NotAllowedByListeners");
}

/// Route hostnames ∩ listener hostname, wildcards on either side; "If both the Listener and
/// HTTPRoute have specified hostnames, and none match ... the HTTPRoute is not accepted".
#[test]
fn hostname_intersection_both_wildcard_directions() {
    let mut s = infra_gateway(json!([
        http_host("exact", 80, "foo.example.com"),
        http_host("wild", 81, "*.example.com"),
        http("any", 82)
    ]));
    let with_hosts = |name: &str, hosts: serde_json::Value| {
        route(
            "infra",
            name,
            json!({"parentRefs": [{"name": "gw"}], "hostnames": hosts, "rules": [{}]}),
        )
    };
    s.http_routes.push(with_hosts(
        "route-wild",
        json!(["*.example.com", "other.net"]),
    ));
    s.http_routes
        .push(with_hosts("route-exact", json!(["bar.example.com"])));
    s.http_routes.push(with_hosts("route-none", json!([])));
    s.http_routes
        .push(with_hosts("route-disjoint", json!(["example.org"])));
    let r = run(&s);
    let host = |pairs: Vec<(String, Vec<String>)>| -> Vec<(String, Vec<String>)> { pairs };
    assert_eq!(
        host(attached(&r, GW, "infra/route-wild")),
        vec![
            // The listener's exact name is the intersection with the route's wildcard.
            ("exact".to_owned(), vec!["foo.example.com".to_owned()]),
            ("wild".to_owned(), vec!["*.example.com".to_owned()]),
            (
                "any".to_owned(),
                vec!["*.example.com".to_owned(), "other.net".to_owned()]
            ),
        ]
    );
    assert_eq!(
        attached(&r, GW, "infra/route-exact"),
        vec![
            ("wild".to_owned(), vec!["bar.example.com".to_owned()]),
            ("any".to_owned(), vec!["bar.example.com".to_owned()]),
        ]
    );
    assert_eq!(attached(&r, GW, "infra/route-none").len(), 3);
    // Only the listener without hostname takes example.org: one listener is enough.
    assert_route_condition(&r, "infra/route-disjoint", "Accepted", "True", "Accepted");

    let mut s = infra_gateway(json!([http_host("wild", 80, "*.example.com")]));
    s.http_routes.push(with_hosts(
        "disjoint",
        json!(["example.com", "a.example.net"]),
    ));
    let r = run(&s);
    assert_route_condition(
        &r,
        "infra/disjoint",
        "Accepted",
        "False",
        "NoMatchingListenerHostname",
    );
    assert_eq!(listener(&r, GW, "wild").attached_routes, 0);
}

/// A route with two parentRefs to two Gateways gets one status entry per Gateway and is in both
/// configs; each Gateway counts it on its own listeners.
#[test]
fn multiple_gateways() {
    let mut s = base("infra");
    s.gateways
        .push(gateway("infra", "one", json!([http("web", 80)])));
    s.gateways
        .push(gateway("infra", "two", json!([http("web", 80)])));
    s.http_routes.push(route(
        "infra",
        "shared",
        json!({"parentRefs": [{"name": "one"}, {"name": "two"}, {"name": "missing"}],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    s.http_routes.push(simple_route("infra", "only-two", "two"));
    let r = run(&s);
    let p = parents(&r, "infra/shared");
    assert_eq!(
        p.iter()
            .map(|p| p.parent_ref.name.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(config(&r, "infra/one").routes.len(), 1);
    assert_eq!(config(&r, "infra/two").routes.len(), 2);
    assert_eq!(listener(&r, "infra/one", "web").attached_routes, 1);
    assert_eq!(listener(&r, "infra/two", "web").attached_routes, 2);
    assert!(
        config(&r, "infra/one")
            .backends
            .contains_key("infra/svc:8080")
    );
}

/// Two parentRefs selecting the same listener attach the route there once.
#[test]
fn a_route_counts_once_per_listener() {
    let mut s = infra_gateway(json!([http("web", 80)]));
    s.http_routes.push(route(
        "infra",
        "r",
        json!({"parentRefs": [{"name": "gw"}, {"name": "gw", "sectionName": "web"}], "rules": [{}]}),
    ));
    let r = run(&s);
    assert_eq!(parents(&r, "infra/r").len(), 2);
    assert_eq!(listener(&r, GW, "web").attached_routes, 1);
    assert_eq!(attached(&r, GW, "infra/r").len(), 1);
}

/// ListenerSet listeners join the Gateway when `allowedListeners` selects the set; routes attach to
/// them with a ListenerSet parentRef, and a Gateway parentRef does not reach them.
#[test]
fn listener_set_listeners() {
    let mut s = gateway_taking_listener_sets(json!([http_host("main", 80, "main.com")]), "Same");
    s.listener_sets.push(listener_set(
        "infra",
        "extra",
        json!({"parentRef": {"name": "gw"},
               "listeners": [http_host("one", 80, "one.com"), http_host("two", 80, "two.com")]}),
    ));
    s.listener_sets.push(listener_set(
        "elsewhere",
        "denied",
        json!({"parentRef": {"name": "gw", "namespace": "infra"}, "listeners": [http_host("x", 80, "x.com")]}),
    ));
    s.http_routes.push(route(
        "infra",
        "to-set",
        json!({"parentRefs": [{"kind": "ListenerSet", "group": "gateway.networking.k8s.io", "name": "extra", "sectionName": "two"}],
               "rules": [{}]}),
    ));
    s.http_routes
        .push(simple_route("infra", "to-gateway", "gw"));
    s.http_routes.push(route(
        "elsewhere",
        "to-denied",
        json!({"parentRefs": [{"kind": "ListenerSet", "name": "denied"}], "rules": [{}]}),
    ));
    let r = run(&s);
    let cfg = config(&r, GW);
    let names: Vec<&str> = cfg.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["main", "infra/extra/one", "infra/extra/two"]);
    assert_eq!(attached(&r, GW, "infra/to-set")[0].0, "infra/extra/two");
    assert_eq!(attached(&r, GW, "infra/to-gateway")[0].0, "main");
    assert_eq!(attached(&r, GW, "infra/to-gateway").len(), 1);
    let p = &parents(&r, "infra/to-set")[0];
    assert_eq!(p.parent_ref.kind.as_deref(), Some("ListenerSet"));
    assert_condition(&p.conditions, "Accepted", "True", "Accepted");
    assert_route_condition(
        &r,
        "elsewhere/to-denied",
        "Accepted",
        "False",
        "NoMatchingParent",
    );

    let gw = r
        .gateways
        .iter()
        .find(|g| g.gateway.to_string() == GW)
        .unwrap();
    assert_eq!(gw.status.attached_listener_sets, Some(1));
    assert_eq!(
        gw.status.listeners.as_ref().unwrap().len(),
        1,
        "set listeners are reported on the set"
    );
    let extra = r
        .listener_sets
        .iter()
        .find(|x| x.listener_set.to_string() == "infra/extra")
        .unwrap();
    assert_condition(
        extra.status.conditions.as_ref().unwrap(),
        "Accepted",
        "True",
        "Accepted",
    );
    let ls: Vec<(&str, i32)> = extra
        .status
        .listeners
        .iter()
        .flatten()
        .map(|l| (l.name.as_str(), l.attached_routes))
        .collect();
    assert_eq!(ls, [("one", 0), ("two", 1)]);
    assert!(
        extra
            .status
            .conditions
            .iter()
            .flatten()
            .all(|c| c.observed_generation == Some(3))
    );
    let denied = r
        .listener_sets
        .iter()
        .find(|x| x.listener_set.to_string() == "elsewhere/denied")
        .unwrap();
    assert_condition(
        denied.status.conditions.as_ref().unwrap(),
        "Accepted",
        "False",
        "NotAllowed",
    );
}

/// "Controllers should ensure that entries to status populated with their ControllerName are
/// cleaned up when they are no longer necessary."
#[test]
fn stale_route_status_is_cleared() {
    let mut s = infra_gateway(json!([http("web", 80)]));
    let mut r = route(
        "infra",
        "moved",
        json!({"parentRefs": [{"name": "elsewhere"}], "rules": [{}]}),
    );
    r.status = Some(
        serde_json::from_value(json!({"parents": [{
        "controllerName": CONTROLLER, "parentRef": {"name": "gw"}, "conditions": []}]}))
        .unwrap(),
    );
    s.http_routes.push(r);
    let mut foreign = route(
        "infra",
        "foreign",
        json!({"parentRefs": [{"name": "elsewhere"}], "rules": [{}]}),
    );
    foreign.status = Some(
        serde_json::from_value(json!({"parents": [{
        "controllerName": "example.com/other", "parentRef": {"name": "x"}, "conditions": []}]}))
        .unwrap(),
    );
    s.http_routes.push(foreign);
    let r = run(&s);
    assert!(parents(&r, "infra/moved").is_empty());
    assert!(!has_status(&r, "infra/foreign"));
}

/// lastTransitionTime: "the last time the condition transitioned from one status to another".
#[test]
fn transition_times_survive_unchanged_status() {
    use crate::api::meta::Time;
    let mut s = infra_gateway(json!([http("web", 80)]));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let first = run(&s);
    let then = Time(crate::api::jiff::Timestamp::from_second(1_000).unwrap());
    let later = Time(crate::api::jiff::Timestamp::from_second(2_000).unwrap());

    let mut status = first.routes[0].status.clone();
    for c in status
        .parents
        .iter_mut()
        .flat_map(|p| p.conditions.iter_mut())
    {
        c.last_transition_time = then.clone();
    }
    s.http_routes[0].status = Some(status);
    s.services.clear(); // ResolvedRefs flips to False, Accepted stays True.
    let second = crate::resolve(
        &s,
        &Settings {
            now: later.clone(),
            ..settings()
        },
    );
    let conditions = &parents(&second, "infra/r")[0].conditions;
    assert_eq!(condition(conditions, "Accepted").last_transition_time, then);
    assert_eq!(
        condition(conditions, "ResolvedRefs").last_transition_time,
        later
    );
}

/// NotAllowedByListeners: "the route has not been accepted by a Gateway because the Gateway has no
/// Listener whose allowedRoutes criteria permit the route". The message names the criterion that
/// refused it on each listener: the kind (allowedRoutes.kinds), the namespace
/// (allowedRoutes.namespaces), or both; never the namespace when only the kind is at fault.
#[test]
fn not_allowed_by_listeners_names_the_rule_that_refuses() {
    let mut s = infra_gateway(json!([
        {"name": "grpc-only", "port": 80, "protocol": "HTTP",
         "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}], "namespaces": {"from": "All"}}},
        {"name": "same", "port": 81, "protocol": "HTTP"},
        {"name": "neither", "port": 82, "protocol": "HTTP",
         "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}},
        {"name": "no-selector", "port": 83, "protocol": "HTTP",
         "allowedRoutes": {"namespaces": {"from": "Selector"}}},
    ]));
    for section in ["grpc-only", "same", "neither", "no-selector"] {
        s.http_routes.push(route(
            "apps",
            section,
            json!({"parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": section}],
                   "rules": [{}]}),
        ));
    }
    let r = run(&s);
    let refused = |route: &str| {
        assert_route_condition(&r, route, "Accepted", "False", "NotAllowedByListeners")
    };
    let kind =
        r#"listener "grpc-only" does not allow kind HTTPRoute (allowedRoutes.kinds: GRPCRoute)"#;
    let message = refused("apps/grpc-only");
    assert!(message.contains(kind), "{message}");
    assert!(!message.contains("namespace"), "{message}");

    let namespace = r#"listener "same" does not allow routes from namespace apps (allowedRoutes.namespaces.from: Same, only namespace infra)"#;
    let message = refused("apps/same");
    assert!(message.contains(namespace), "{message}");
    assert!(!message.contains("kind"), "{message}");

    let message = refused("apps/neither");
    assert!(
        message.contains(
            r#"listener "neither" does not allow kind HTTPRoute (allowedRoutes.kinds: GRPCRoute) and does not allow routes from namespace apps (allowedRoutes.namespaces.from: Same, only namespace infra)"#
        ),
        "{message}"
    );

    let message = refused("apps/no-selector");
    assert!(
        message.contains("Selector without a selector, which selects no namespace"),
        "{message}"
    );
}

//! GRPCRouteSpec.hostnames: "If a Route (A) of type HTTPRoute or GRPCRoute is attached to a
//! Listener and that listener already has another Route (B) of the other type attached and the
//! intersection of the hostnames of A and B is non-empty, then the implementation MUST accept
//! exactly one of these two routes, determined by the following criteria, in order: * The oldest
//! Route based on creation timestamp. * The Route appearing first in alphabetical order by
//! "{namespace}/{name}". The rejected Route MUST raise an 'Accepted' condition with a status of
//! 'False' in the corresponding RouteParentStatus."

use serde_json::{Value, json};

use super::*;

const GW: &str = "infra/gw";
const OLD: &str = "2025-01-01T00:00:00Z";
const NEW: &str = "2026-01-01T00:00:00Z";

fn spec(hostnames: Value) -> Value {
    json!({"parentRefs": [{"name": "gw"}], "hostnames": hostnames,
           "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]})
}

fn http_route(name: &str, at: Option<&str>, hostnames: Value) -> HttpRoute {
    let r = route("infra", name, spec(hostnames));
    match at {
        Some(at) => created(r, at),
        None => r,
    }
}

fn grpc(name: &str, at: Option<&str>, hostnames: Value) -> GrpcRoute {
    let r = grpc_route("infra", name, spec(hostnames));
    match at {
        Some(at) => created(r, at),
        None => r,
    }
}

fn accepted(conditions: &[Condition]) -> (String, String, String) {
    condition_parts(conditions, "Accepted")
}

/// One HTTP listener `http` on port 80 with one HTTPRoute and one GRPCRoute.
fn one_of_each(http_route: HttpRoute, grpc_route: GrpcRoute) -> Snapshot {
    let mut s = infra_gateway(json!([http("http", 80)]));
    s.http_routes.push(http_route);
    s.grpc_routes.push(grpc_route);
    s
}

/// `(HTTPRoute accepted, GRPCRoute accepted)` for one HTTPRoute `web` and one GRPCRoute `g`.
fn verdict(r: &Resolution, http: &str, grpc: &str) -> (String, String) {
    (
        accepted(&parents(r, http)[0].conditions).0,
        accepted(&grpc_parents(r, grpc)[0].conditions).0,
    )
}

fn t() -> String {
    "True".to_owned()
}

fn f() -> String {
    "False".to_owned()
}

#[test]
fn the_older_http_route_wins() {
    let s = one_of_each(
        http_route("web", Some(OLD), json!(["a.example.com"])),
        grpc("g", Some(NEW), json!(["a.example.com"])),
    );
    let r = run(&s);
    assert_eq!(verdict(&r, "infra/web", "infra/g"), (t(), f()));
    let (_, reason, message) = accepted(&grpc_parents(&r, "infra/g")[0].conditions);
    assert_eq!(reason, "HostnameConflict");
    assert!(
        message.contains("HTTPRoute infra/web is kept on listener \"http\" (it is older)"),
        "{message}"
    );
    assert!(
        config(&r, GW).grpc_routes.is_empty(),
        "the loser is not in the config"
    );
    assert_eq!(listener(&r, GW, "http").attached_routes, 1);
}

#[test]
fn the_older_grpc_route_wins() {
    let s = one_of_each(
        http_route("web", Some(NEW), json!(["a.example.com"])),
        grpc("g", Some(OLD), json!(["a.example.com"])),
    );
    let r = run(&s);
    assert_eq!(verdict(&r, "infra/web", "infra/g"), (f(), t()));
    assert_eq!(
        accepted(&parents(&r, "infra/web")[0].conditions).1,
        "HostnameConflict"
    );
    assert!(config(&r, GW).routes.is_empty());
    assert_eq!(config(&r, GW).grpc_routes.len(), 1);
}

/// Same creation time: "The Route appearing first in alphabetical order by {namespace}/{name}".
#[test]
fn a_tie_in_age_goes_to_namespace_and_name() {
    for (http_name, grpc_name, want) in [
        ("a-web", "b-grpc", (t(), f())),
        ("b-web", "a-grpc", (f(), t())),
    ] {
        let s = one_of_each(
            http_route(http_name, Some(OLD), json!([])),
            grpc(grpc_name, Some(OLD), json!([])),
        );
        let r = run(&s);
        assert_eq!(
            verdict(
                &r,
                &format!("infra/{http_name}"),
                &format!("infra/{grpc_name}")
            ),
            want,
            "{http_name} vs {grpc_name}"
        );
    }
}

/// The namespace comes first in `{namespace}/{name}`.
#[test]
fn namespace_sorts_before_name() {
    let mut s = infra_gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP",
                           "allowedRoutes": {"namespaces": {"from": "All"}}}]));
    s.services.push(service_8080("a", "svc"));
    s.services.push(service_8080("b", "svc"));
    let both = json!({"parentRefs": [{"name": "gw", "namespace": "infra"}],
                      "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]});
    s.http_routes.push(route("b", "a", both.clone()));
    s.grpc_routes.push(grpc_route("a", "z", both));
    let r = run(&s);
    assert_eq!(verdict(&r, "b/a", "a/z"), (f(), t()));
}

/// Directory mode often has no creation timestamps. A present timestamp sorts before an absent one
/// (as for ListenerSets); two absent ones tie and the name decides.
#[test]
fn missing_timestamps() {
    let s = one_of_each(
        http_route("a", None, json!([])),
        grpc("z", Some(NEW), json!([])),
    );
    let r = run(&s);
    assert_eq!(
        verdict(&r, "infra/a", "infra/z"),
        (f(), t()),
        "timestamped wins"
    );

    let s = one_of_each(http_route("z", None, json!([])), grpc("a", None, json!([])));
    let r = run(&s);
    assert_eq!(verdict(&r, "infra/z", "infra/a"), (f(), t()), "by name");
}

/// The one tie the spec leaves open: an HTTPRoute and a GRPCRoute with the same age and the same
/// `namespace/name`. The HTTPRoute is kept.
#[test]
fn same_age_and_name_keeps_the_http_route() {
    let s = one_of_each(
        http_route("echo", None, json!(["a.example.com"])),
        grpc("echo", None, json!(["a.example.com"])),
    );
    let r = run(&s);
    assert_eq!(verdict(&r, "infra/echo", "infra/echo"), (t(), f()));
    let (_, _, message) = accepted(&grpc_parents(&r, "infra/echo")[0].conditions);
    assert!(
        message.contains("same age and name; the HTTPRoute is kept"),
        "{message}"
    );
}

/// Only an intersection conflicts: disjoint hostnames, both accepted; a wildcard covering an exact
/// host, or a route without hostnames (every host of the listener), conflicts.
#[test]
fn only_intersecting_hostnames_conflict() {
    for (http_hosts, grpc_hosts, conflict) in [
        (json!(["a.example.com"]), json!(["b.example.com"]), false),
        (json!(["*.example.com"]), json!(["example.com"]), false),
        (json!(["*.example.com"]), json!(["b.example.com"]), true),
        (json!(["b.example.com"]), json!(["*.example.com"]), true),
        (json!([]), json!(["b.example.com"]), true),
        (
            json!(["a.example.com", "b.example.com"]),
            json!(["b.example.com"]),
            true,
        ),
    ] {
        let s = one_of_each(
            http_route("web", Some(OLD), http_hosts.clone()),
            grpc("g", Some(NEW), grpc_hosts.clone()),
        );
        let r = run(&s);
        let want = if conflict { (t(), f()) } else { (t(), t()) };
        assert_eq!(
            verdict(&r, "infra/web", "infra/g"),
            want,
            "{http_hosts} vs {grpc_hosts}"
        );
        assert_eq!(
            listener(&r, GW, "http").attached_routes,
            if conflict { 1 } else { 2 }
        );
    }
}

/// The rule is per listener: the effective hostnames there decide. On a listener whose hostname
/// leaves no overlap, both routes attach.
#[test]
fn effective_hostnames_decide_per_listener() {
    let mut s = infra_gateway(json!([
        http_host("a", 80, "a.example.com"),
        http_host("b", 81, "b.example.com")
    ]));
    s.http_routes.push(route(
        "infra",
        "web",
        json!({"parentRefs": [{"name": "gw", "sectionName": "a"}],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    s.grpc_routes.push(grpc_route(
        "infra",
        "g",
        json!({"parentRefs": [{"name": "gw", "sectionName": "b"}],
               "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    ));
    let r = run(&s);
    assert_eq!(verdict(&r, "infra/web", "infra/g"), (t(), t()));
}

/// Listeners `one` (80) and `two` (81), and an old HTTPRoute `web` attached to `one` only.
fn two_listeners_old_http_route_on_one() -> Snapshot {
    let mut s = infra_gateway(json!([http("one", 80), http("two", 81)]));
    s.http_routes.push(created(
        route(
            "infra",
            "web",
            json!({"parentRefs": [{"name": "gw", "sectionName": "one"}],
                   "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
        ),
        OLD,
    ));
    s
}

/// A route may lose on one listener and not on another: through a parentRef covering both it stays
/// Accepted ("If 1 of 2 Gateway listeners accept attachment from the referencing Route, the Route
/// MUST be considered successfully attached"), and it is left out of the data plane and of
/// `attachedRoutes` only where it lost.
#[test]
fn losing_on_one_listener_keeps_the_others() {
    let mut s = two_listeners_old_http_route_on_one();
    s.grpc_routes.push(grpc("g", Some(NEW), json!([])));
    let r = run(&s);
    assert_eq!(verdict(&r, "infra/web", "infra/g"), (t(), t()));
    let (_, _, message) = accepted(&grpc_parents(&r, "infra/g")[0].conditions);
    assert!(
        message.contains("HTTPRoute infra/web is kept on listener \"one\""),
        "the Accepted message says what was lost: {message}"
    );
    assert_eq!(
        grpc_attached(&r, GW, "infra/g"),
        [("two".to_owned(), vec![])]
    );
    assert_eq!(listener(&r, GW, "one").attached_routes, 1);
    assert_eq!(listener(&r, GW, "two").attached_routes, 1);
}

/// Status is per parentRef: with one parentRef per listener, the route is Accepted=False through
/// the one it lost and True through the other.
#[test]
fn status_is_per_parent_ref() {
    let mut s = two_listeners_old_http_route_on_one();
    s.grpc_routes.push(created(
        grpc_route(
            "infra",
            "g",
            json!({"parentRefs": [{"name": "gw", "sectionName": "one"}, {"name": "gw", "sectionName": "two"}],
                   "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
        ),
        NEW,
    ));
    let r = run(&s);
    let statuses: Vec<(Option<String>, String)> = grpc_parents(&r, "infra/g")
        .iter()
        .map(|p| (p.parent_ref.section_name.clone(), accepted(&p.conditions).1))
        .collect();
    assert_eq!(
        statuses,
        [
            (Some("one".to_owned()), "HostnameConflict".to_owned()),
            (Some("two".to_owned()), "Accepted".to_owned())
        ]
    );
}

/// A rejected route is not attached, so it rejects nothing in turn: HTTPRoute `a` (oldest) beats
/// GRPCRoute `b`, and HTTPRoute `c`, which overlaps only `b`, stays accepted.
#[test]
fn a_rejected_route_rejects_nothing() {
    let mut s = one_of_each(
        http_route("a", Some("2024-01-01T00:00:00Z"), json!(["a.example.com"])),
        grpc(
            "b",
            Some("2025-01-01T00:00:00Z"),
            json!(["a.example.com", "c.example.com"]),
        ),
    );
    s.http_routes.push(http_route(
        "c",
        Some("2026-01-01T00:00:00Z"),
        json!(["c.example.com"]),
    ));
    let r = run(&s);
    assert_eq!(accepted(&parents(&r, "infra/a")[0].conditions).0, "True");
    assert_eq!(
        accepted(&grpc_parents(&r, "infra/b")[0].conditions).0,
        "False"
    );
    assert_eq!(accepted(&parents(&r, "infra/c")[0].conditions).0, "True");
    assert_eq!(listener(&r, GW, "http").attached_routes, 2);
}

/// Routes of one kind never conflict with each other: the rule is between the two kinds (HTTPRoute
/// precedence settles overlapping HTTPRoutes at request time).
#[test]
fn routes_of_one_kind_do_not_conflict() {
    let mut s = infra_gateway(json!([http("http", 80)]));
    s.grpc_routes
        .push(grpc("a", Some(OLD), json!(["a.example.com"])));
    s.grpc_routes
        .push(grpc("b", Some(NEW), json!(["a.example.com"])));
    let r = run(&s);
    for name in ["infra/a", "infra/b"] {
        assert_eq!(
            accepted(&grpc_parents(&r, name)[0].conditions).0,
            "True",
            "{name}"
        );
    }
    assert_eq!(config(&r, GW).grpc_routes.len(), 2);
}

/// A route that is not accepted for another reason takes no part: an HTTPRoute refused by the
/// listener's kinds does not push out a GRPCRoute.
#[test]
fn routes_not_attached_take_no_part() {
    let mut s = infra_gateway(json!([{"name": "http", "port": 80, "protocol": "HTTP",
                           "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}}]));
    s.http_routes.push(http_route("web", Some(OLD), json!([])));
    s.grpc_routes.push(grpc("g", Some(NEW), json!([])));
    let r = run(&s);
    let (status, reason, _) = accepted(&parents(&r, "infra/web")[0].conditions);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NotAllowedByListeners")
    );
    assert_eq!(
        accepted(&grpc_parents(&r, "infra/g")[0].conditions).0,
        "True"
    );
}

//! Listener validation: TLS certificateRefs, conflicts, protocols, GatewayClass ownership.

use serde_json::json;

use super::*;

const GW: &str = "infra/gw";

fn https(name: &str, hostname: Option<&str>, refs: serde_json::Value) -> serde_json::Value {
    let mut l = json!({"name": name, "port": 443, "protocol": "HTTPS",
                       "tls": {"mode": "Terminate", "certificateRefs": refs}});
    if let Some(h) = hostname {
        l["hostname"] = json!(h);
    }
    l
}

#[test]
fn https_listener_with_its_certificate() {
    let mut s = base("infra");
    s.secrets.push(tls_secret("infra", "cert"));
    s.gateways.push(gateway(
        "infra",
        "gw",
        json!([https("tls", None, json!([{"name": "cert"}]))]),
    ));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    let l = listener(&r, GW, "tls");
    for kind in ["Accepted", "ResolvedRefs", "Programmed"] {
        assert_eq!(condition(&l.conditions, kind).status, "True", "{kind}");
    }
    assert_condition(&l.conditions, "Conflicted", "False", "NoConflicts");
    let result = &r.gateways[0];
    assert_eq!(result.tls["tls"][0].secret.to_string(), "infra/cert");
    assert!(
        result.tls["tls"][0]
            .certificate_pem
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(
        config(&r, GW).listeners[0].protocol,
        engine::config::Protocol::Https
    );
}

/// "If a ReferenceGrant does not allow this reference, the "ResolvedRefs" condition MUST be set to
/// False for this listener with the "RefNotPermitted" reason." A missing Secret is an
/// InvalidCertificateRef. Routes still attach: "Listener or Route status does not impact successful
/// attachment".
#[test]
fn certificate_ref_problems() {
    let mut s = base("infra");
    s.secrets.push(tls_secret("certs", "shared"));
    s.gateways.push(gateway(
        "infra",
        "gw",
        json!([
            https("missing", Some("a.com"), json!([{"name": "nope"}])),
            https(
                "cross",
                Some("b.com"),
                json!([{"name": "shared", "namespace": "certs"}])
            ),
            https(
                "kind",
                Some("c.com"),
                json!([{"name": "x", "group": "example.com", "kind": "Vault"}])
            ),
            https("none", Some("d.com"), json!([])),
        ]),
    ));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    for (name, reason) in [
        ("missing", "InvalidCertificateRef"),
        ("cross", "RefNotPermitted"),
        ("kind", "InvalidCertificateRef"),
        ("none", "InvalidCertificateRef"),
    ] {
        let l = listener(&r, GW, name);
        assert_condition(&l.conditions, "ResolvedRefs", "False", reason);
        assert_condition(&l.conditions, "Programmed", "False", "Invalid");
        assert_eq!(l.attached_routes, 1, "{name}");
    }
    assert!(config(&r, GW).listeners.is_empty());
    assert!(config(&r, GW).routes.is_empty());
    assert_route_condition(&r, "infra/r", "Accepted", "True", "Accepted");
    assert_condition(
        gateway_conditions(&r, GW),
        "Accepted",
        "True",
        "ListenersNotValid",
    );
    assert_condition(gateway_conditions(&r, GW), "Programmed", "False", "Invalid");

    s.reference_grants.push(grant(
        "certs",
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}]),
        json!([{"group": "", "kind": "Secret", "name": "shared"}]),
    ));
    let r = run(&s);
    assert_condition(
        &listener(&r, GW, "cross").conditions,
        "ResolvedRefs",
        "True",
        "ResolvedRefs",
    );
    assert_eq!(config(&r, GW).listeners.len(), 1);
}

/// "If a set of Listeners contains Listeners that are not distinct, then those Listeners are
/// _Conflicted_" and "ALL indistinct Listeners must not be accepted for processing"; "The
/// implementation MUST set a "ListenersNotValid" condition on the Gateway Status".
#[test]
fn conflicting_listeners() {
    let mut s = base("infra");
    s.secrets.push(tls_secret("infra", "cert"));
    s.gateways.push(gateway(
        "infra",
        "gw",
        json!([
            http_host("a", 80, "same.com"),
            http_host("b", 80, "same.com"),
            http_host("c", 80, "other.com"),
            {"name": "d", "port": 8443, "protocol": "HTTP"},
            {"name": "e", "port": 8443, "protocol": "HTTPS", "hostname": "e.com",
             "tls": {"certificateRefs": [{"name": "cert"}]}},
        ]),
    ));
    let r = run(&s);
    for (name, reason) in [
        ("a", "HostnameConflict"),
        ("b", "HostnameConflict"),
        ("d", "ProtocolConflict"),
        ("e", "ProtocolConflict"),
    ] {
        let l = listener(&r, GW, name);
        assert_condition(&l.conditions, "Conflicted", "True", reason);
        assert_condition(&l.conditions, "Accepted", "False", reason);
    }
    assert_condition(
        &listener(&r, GW, "c").conditions,
        "Conflicted",
        "False",
        "NoConflicts",
    );
    assert_eq!(config_listener_names(&r, GW), ["c"]);
    assert_condition(
        gateway_conditions(&r, GW),
        "Accepted",
        "True",
        "ListenersNotValid",
    );
}

/// A ListenerSet listener that conflicts with the Gateway's loses: the Gateway comes first in the
/// merged list's precedence.
#[test]
fn listener_set_conflicts_lose_to_the_gateway() {
    let mut s = gateway_taking_listener_sets(json!([http_host("main", 80, "x.com")]), "All");
    s.listener_sets.push(listener_set(
        "infra",
        "set",
        json!({"parentRef": {"name": "gw"}, "listeners": [http_host("dup", 80, "x.com"), http_host("ok", 80, "y.com")]}),
    ));
    let r = run(&s);
    assert_condition(
        &listener(&r, GW, "main").conditions,
        "Conflicted",
        "False",
        "NoConflicts",
    );
    let set = &r.listener_sets[0];
    let dup = set
        .status
        .listeners
        .iter()
        .flatten()
        .find(|l| l.name == "dup")
        .unwrap();
    assert_condition(&dup.conditions, "Conflicted", "True", "HostnameConflict");
    assert_condition(
        set.status.conditions.as_ref().unwrap(),
        "Accepted",
        "True",
        "ListenersNotValid",
    );
    assert_eq!(config_listener_names(&r, GW), ["main", "infra/set/ok"]);
}

/// Protocols this data plane does not serve are not accepted ("UnsupportedProtocol") and support
/// no route kinds; a Gateway with nothing else is not accepted.
#[test]
fn unsupported_protocols() {
    let mut s = infra_gateway(json!([{"name": "tcp", "port": 9000, "protocol": "TCP"},
               {"name": "tls", "port": 443, "protocol": "TLS", "tls": {"mode": "Passthrough"}}]));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    for name in ["tcp", "tls"] {
        let l = listener(&r, GW, name);
        assert_condition(&l.conditions, "Accepted", "False", "UnsupportedProtocol");
        assert_eq!(l.supported_kinds.as_deref().map(<[_]>::len), Some(0));
    }
    assert_route_condition(&r, "infra/r", "Accepted", "False", "NotAllowedByListeners");
    assert_condition(
        gateway_conditions(&r, GW),
        "Accepted",
        "False",
        "ListenersNotValid",
    );
}

/// "Implementations MUST populate status on all GatewayClass resources which specify their
/// controller name"; a parametersRef this controller cannot use rejects the class.
#[test]
fn gateway_class_ownership() {
    let mut s = base("infra");
    let mut with_params = class("with-params", CONTROLLER);
    with_params.spec.parameters_ref = Some(
        serde_json::from_value(json!({"group": "example.com", "kind": "Config", "name": "c"}))
            .unwrap(),
    );
    s.gateway_classes.push(with_params);
    s.gateway_classes.push(class("theirs", "example.com/other"));
    s.gateways.push(gateway_spec(
        "infra",
        "gw",
        json!({"gatewayClassName": "with-params", "listeners": [http("web", 80)]}),
    ));
    s.gateways.push(gateway_spec(
        "infra",
        "other",
        json!({"gatewayClassName": "theirs", "listeners": [http("web", 80)]}),
    ));
    s.gateways.push(gateway_spec(
        "infra",
        "orphan",
        json!({"gatewayClassName": "missing", "listeners": [http("web", 80)]}),
    ));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    let classes: Vec<&str> = r.gateway_classes.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(classes, ["ours", "with-params"]);
    let ours = &r.gateway_classes[0].status;
    assert_condition(
        ours.conditions.as_ref().unwrap(),
        "Accepted",
        "True",
        "Accepted",
    );
    let params = &r.gateway_classes[1].status;
    assert_condition(
        params.conditions.as_ref().unwrap(),
        "Accepted",
        "False",
        "InvalidParameters",
    );
    assert_eq!(r.gateways.len(), 1);
    assert_condition(
        gateway_conditions(&r, GW),
        "Accepted",
        "False",
        "InvalidParameters",
    );
    assert!(config(&r, GW).listeners.is_empty());
    assert_route_condition(&r, "infra/r", "Accepted", "False", "NoMatchingParent");
}

/// Garbage in, statuses out: nothing the API server could hold makes the resolver panic, and the
/// engine still accepts what comes out.
#[test]
fn odd_inputs_do_not_panic() {
    let mut s = infra_gateway(json!([
        {"name": "", "port": 0, "protocol": "HTTP"},
        {"name": "neg", "port": -5, "protocol": "HTTP"},
        {"name": "big", "port": 70000, "protocol": "HTTP"},
        {"name": "caps", "port": 80, "protocol": "HTTP", "hostname": "UPPER.example.com"},
        {"name": "dup", "port": 81, "protocol": "HTTP"},
        {"name": "dup", "port": 82, "protocol": "HTTP"},
        {"name": "weird", "port": 83, "protocol": "QUIC"},
    ]));
    s.gateways.push(Default::default());
    s.http_routes.push(Default::default());
    s.http_routes.push(route(
        "infra",
        "r",
        json!({"parentRefs": [{"name": "gw"}, {"name": "gw", "port": -1}],
               "hostnames": ["", "10.0.0.1", "*"],
               "rules": [{"backendRefs": [{"name": "svc", "port": -1, "weight": -3},
                                          {"name": "svc", "port": 8080, "weight": 2000000000}],
                          "matches": [{"path": {"type": "RegularExpression", "value": "(("}}],
                          "filters": [{"type": "RequestRedirect", "requestRedirect": {"port": 0, "statusCode": 999}}]}]}),
    ));
    s.services.push(Default::default());
    s.endpoint_slices.push(Default::default());
    s.namespaces.push(Default::default());
    s.listener_sets.push(Default::default());
    s.reference_grants.push(Default::default());
    s.secrets.push(Default::default());
    let r = run(&s);
    assert!(!r.gateways.is_empty());
    assert_condition(
        &listener(&r, GW, "caps").conditions,
        "Accepted",
        "False",
        "Invalid",
    );
    assert_condition(
        &listener(&r, GW, "big").conditions,
        "Accepted",
        "False",
        "PortUnavailable",
    );
}

/// Listener hostnames: "IPs are not allowed" — the same answer the engine gives (one validator).
#[test]
fn a_listener_hostname_that_is_an_ip_address_is_invalid() {
    let s = infra_gateway(json!([
        http_host("ip", 80, "192.168.1.1"),
        http_host("dns", 81, "a.example.com")
    ]));
    let r = run(&s);
    let ip = &listener(&r, GW, "ip").conditions;
    assert_condition(ip, "Accepted", "False", "Invalid");
    let message = &condition(ip, "Accepted").message;
    assert!(message.contains("IP address"), "{message}");
    assert_condition(
        &listener(&r, GW, "dns").conditions,
        "Accepted",
        "True",
        "Accepted",
    );
    assert!(engine::check_hostname("192.168.1.1").is_err());
}

/// "Name is the name of the Listener. This name MUST be unique within a Gateway." A Gateway read
/// from a manifest directory with a repeated name is refused as a whole (Accepted=False, reason
/// Invalid, naming the name and both fields), and `status.listeners`, a map keyed by name, gets
/// one entry per name so the API server can store it.
#[test]
fn a_repeated_listener_name_rejects_the_gateway() {
    let mut s = infra_gateway(json!([http("twin", 80), http("web", 81), http("twin", 82)]));
    s.http_routes.push(simple_route("infra", "r", "gw"));
    let r = run(&s);
    let conditions = gateway_conditions(&r, GW);
    assert_condition(conditions, "Accepted", "False", "Invalid");
    assert_condition(conditions, "Programmed", "False", "Invalid");
    let message = &condition(conditions, "Accepted").message;
    assert_eq!(&condition(conditions, "Programmed").message, message);
    assert!(
        message.contains(r#"repeated: "twin" at spec.listeners[0] and spec.listeners[2]"#),
        "{message}"
    );
    assert!(message.contains("unique within a Gateway"), "{message}");

    let names: Vec<&str> = r.gateways[0]
        .status
        .listeners
        .iter()
        .flatten()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["twin", "web"]);
    assert_condition(
        &listener(&r, GW, "twin").conditions,
        "Accepted",
        "False",
        "Invalid",
    );
    assert!(config(&r, GW).listeners.is_empty());
    assert_route_condition(&r, "infra/r", "Accepted", "False", "NoMatchingParent");
}

/// "This name MUST be unique within a ListenerSet": such a ListenerSet is refused (Accepted=False,
/// Invalid) and none of its listeners join the Gateway, which keeps its own.
#[test]
fn a_repeated_listener_name_rejects_the_listener_set() {
    let mut s = gateway_taking_listener_sets(json!([http("main", 80)]), "Same");
    s.listener_sets.push(listener_set(
        "infra",
        "set",
        json!({"parentRef": {"name": "gw"},
               "listeners": [http_host("dup", 80, "a.com"), http_host("dup", 80, "b.com")]}),
    ));
    let r = run(&s);
    let set = &r.listener_sets[0].status;
    assert_condition(
        set.conditions.as_ref().unwrap(),
        "Accepted",
        "False",
        "Invalid",
    );
    let message = &condition(set.conditions.as_ref().unwrap(), "Accepted").message;
    assert!(
        message.contains(
            r#"unique within a ListenerSet; repeated: "dup" at spec.listeners[0] and spec.listeners[1]"#
        ),
        "{message}"
    );
    assert_eq!(config_listener_names(&r, GW), ["main"]);
    assert_condition(gateway_conditions(&r, GW), "Accepted", "True", "Accepted");
}

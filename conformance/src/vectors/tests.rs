//! Tests of loading a vectors file: unknown fields, port spellings, a null selector.

use super::*;

#[test]
fn unknown_fields_and_port_spellings_load() {
    let file = parse(
        br#"{
              "brandNew": {"x": 1},
              "namespaces": {"ns": {"a": "b"}},
              "cases": [{
                "id": "T/0", "test": "T", "scope": "routing", "feature": "Core",
                "gateway": {"namespace": "ns", "name": "gw", "listeners": [
                   {"name": "http", "port": 80, "protocol": "HTTP", "futureField": true}]},
                "routes": [{"namespace": "ns", "name": "r", "parentRefs": [{"name": "gw"}],
                            "creationTimestamp": "2020-09-08T01:02:03Z", "rules": []}],
                "request": {"method": "GET", "scheme": "http", "port": 80, "host": null,
                            "path": "/", "newRequestField": 1,
                            "backendBehavior": {"failFirst": 1, "failWith": "tcp-reset"}},
                "expect": {"status": 302, "redirect": {"scheme": "http", "port": 8080, "path": "/"},
                           "somethingNew": [1]}
              }],
              "statusCases": [{"id": "S/0", "gateway": {"namespace": "ns", "name": "gw"},
                               "expect": {"route": "ns/r", "futureCheck": 1}}]
            }"#,
    )
    .unwrap();
    let case = &file.cases[0];
    assert_eq!(case.request.host, None);
    assert_eq!(
        case.expect.redirect.as_ref().unwrap().port_number(),
        Some(8080)
    );
    assert!(case.expect.extra.contains_key("somethingNew"));
    assert_eq!(
        case.gateway.listeners[0].extra["futureField"],
        Value::Bool(true)
    );
    assert_eq!(
        case.routes[0].creation_timestamp.as_deref(),
        Some("2020-09-08T01:02:03Z")
    );
    assert!(case.routes[0].spec.contains_key("parentRefs"));
    assert!(!case.routes[0].spec.contains_key("creationTimestamp"));
    assert_eq!(
        case.request
            .backend_behavior
            .as_ref()
            .unwrap()
            .fail_with_status(),
        None
    );
    assert!(
        file.status_cases[0]
            .expect
            .extra
            .contains_key("futureCheck")
    );
}

#[test]
fn selector_null_is_not_absent() {
    let s: ServiceSpec =
        serde_json::from_str(r#"{"namespace":"n","name":"s","selector":null,"ports":[]}"#).unwrap();
    assert!(s.selector_less());
    let s: ServiceSpec =
        serde_json::from_str(r#"{"namespace":"n","name":"s","ports":[]}"#).unwrap();
    assert!(!s.selector_less());
}

#[test]
fn grpc_fields_load_and_the_route_kind_stays_out_of_the_spec() {
    let file = parse(
        br#"{
              "grpcStatusFromHttp": {"404": 12},
              "services": [{"namespace": "ns", "name": "g", "ports": [{"port": 8080, "appProtocol": "kubernetes.io/h2c"}],
                            "grpcEcho": true}],
              "cases": [{
                "id": "G/0", "needsTLS": true,
                "gateway": {"namespace": "ns", "name": "gw"},
                "routes": [{"kind": "GRPCRoute", "namespace": "ns", "name": "g", "rules": []},
                           {"namespace": "ns", "name": "h", "rules": []}],
                "request": {"method": "POST", "scheme": "https", "port": 443, "host": "a.example",
                            "path": "/pkg.Svc/Do", "protocol": "h2", "grpc": {"service": "pkg.Svc", "method": "Do"}},
                "expect": {"grpcStatus": 12, "grpcStatusName": "UNIMPLEMENTED", "httpStatusOneOf": [200, 404],
                           "headersAssertedBySuite": false}
              }]
            }"#,
    )
    .unwrap();
    assert_eq!(file.grpc_status_from_http["404"], Value::from(12));
    assert!(file.services[0].grpc_echo);
    let case = &file.cases[0];
    assert_eq!(case.needs_tls, Some(true));
    assert_eq!(case.routes[0].kind(), "GRPCRoute");
    assert!(!case.routes[0].spec.contains_key("kind"));
    assert_eq!(case.routes[1].kind(), DEFAULT_ROUTE_KIND);
    let grpc = case.request.grpc.as_ref().unwrap();
    assert_eq!(grpc.path(), case.request.path);
    assert_eq!(case.expect.grpc_status, Some(12));
    assert_eq!(case.expect.http_status_one_of, vec![200, 404]);
    assert_eq!(case.expect.headers_asserted_by_suite, Some(false));
    assert!(case.expect.extra.is_empty() && case.request.extra.is_empty());
    assert!(case.is_grpc());
}

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

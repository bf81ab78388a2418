//! Bad configs are rejected with the JSON path and the offending value, never with a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

mod support;

use engine::RouteTable;
use serde_json::{Value, json};
use support::*;

fn error_for(config: Value) -> String {
    match RouteTable::from_json(config.to_string().as_bytes()) {
        Ok(_) => panic!("config was accepted: {config:#}"),
        Err(e) => e.to_string(),
    }
}

fn base() -> Value {
    config_json(
        json!([{"name": "http", "port": 80, "protocol": "HTTP"}]),
        json!([route(
            "r",
            json!([rule(
                json!([{"path": {"type": "PathPrefix", "value": "/"}}]),
                "b"
            )])
        )]),
    )
}

fn with(pointer: &str, value: Value) -> Value {
    let mut config = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match config
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"))
    {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        other => panic!("{parent} is {other}"),
    }
    config
}

#[test]
fn the_base_config_is_valid() {
    assert!(RouteTable::from_json(base().to_string().as_bytes()).is_ok());
}

#[test]
fn errors_name_the_path_and_the_value() {
    let cases = [
        (
            "/routes/0/rules/0/matches/0/path/value",
            json!("/a//b"),
            r#"routes[0].rules[0].matches[0].path.value: "/a//b" is not a valid path: it must not contain //"#,
        ),
        (
            "/routes/0/rules/0/matches/0/path/value",
            json!("relative"),
            r#"routes[0].rules[0].matches[0].path.value: "relative" is not a valid path: it must start with /"#,
        ),
        (
            "/routes/0/rules/0/matches/0/path",
            json!({"type": "RegularExpression", "value": "(unclosed"}),
            r#"routes[0].rules[0].matches[0].path.value: "(unclosed" is not a valid regular expression"#,
        ),
        (
            "/routes/0/rules/0/backendRefs/0/backend",
            json!("nope"),
            r#"routes[0].rules[0].backendRefs[0].backend: "nope" is not a key of backends"#,
        ),
        (
            "/routes/0/parents/0/listener",
            json!("https"),
            r#"routes[0].parents[0].listener: "https" is not a listener of this config"#,
        ),
        (
            "/listeners/0/hostname",
            json!("Bad_Host"),
            r#"listeners[0].hostname: "Bad_Host" is not a valid hostname"#,
        ),
        (
            "/listeners/0/hostname",
            json!("10.0.0.1"),
            r#"listeners[0].hostname: "10.0.0.1" is not a valid hostname: it is an IP address"#,
        ),
        (
            "/schemaVersion",
            json!(2),
            "schemaVersion: 2 is not supported",
        ),
        (
            "/routes/0/creationTimestamp",
            json!("yesterday"),
            r#"routes[0].creationTimestamp: "yesterday" is not an RFC 3339 timestamp"#,
        ),
        (
            "/routes/0/rules/0/timeouts",
            json!({"request": "1.5s"}),
            r#"routes[0].rules[0].timeouts.request: "1.5s" is not a GEP-2257 duration"#,
        ),
        (
            "/routes/0/rules/0/timeouts",
            json!({"request": "1s", "backendRequest": "2s"}),
            r#"routes[0].rules[0].timeouts.backendRequest: "2s" must not exceed request ("1s")"#,
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "a\r\nInjected: 1"}]}}]),
            r#"routes[0].rules[0].filters[0].requestHeaderModifier.set[0].value: "a\r\nInjected: 1" contains CR, LF or NUL"#,
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["bad name"]}}]),
            r#"routes[0].rules[0].filters[0].requestHeaderModifier.remove[0]: "bad name" is not a valid header name"#,
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "RequestRedirect", "requestRedirect": {"statusCode": 304}}]),
            "routes[0].rules[0].filters[0].requestRedirect.statusCode: 304 is not one of 301, 302, 303, 307, 308",
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "RequestRedirect", "requestRedirect": {"scheme": "ftp"}}]),
            r#"routes[0].rules[0].filters[0].requestRedirect.scheme: "ftp" is not http or https"#,
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "CORS", "cors": {"allowOrigins": ["example.com"]}}]),
            r#"routes[0].rules[0].filters[0].cors.allowOrigins[0]: "example.com" is not an origin"#,
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "RequestMirror", "requestMirror": {"backend": "b", "percent": 150}}]),
            "routes[0].rules[0].filters[0].requestMirror.percent: 150 is above 100",
        ),
        (
            "/routes/0/rules/0/filters",
            json!([{"type": "URLRewrite", "urlRewrite": {}}, {"type": "URLRewrite", "urlRewrite": {}}]),
            "routes[0].rules[0].filters[1].type: URLRewrite appears twice",
        ),
        (
            "/routes/0/rules/0/filters",
            json!([
                {"type": "RequestMirror", "requestMirror": {"backend": "b"}},
                {"type": "RequestMirror", "requestMirror": {"backend": "nope"}},
            ]),
            r#"routes[0].rules[0].filters[1].requestMirror.backend: "nope" is not a key of backends"#,
        ),
        (
            "/routes/0/rules/0/filters",
            json!([
                {"type": "URLRewrite", "urlRewrite": {}},
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {}},
                {"type": "RequestRedirect", "requestRedirect": {}},
            ]),
            "routes[0].rules[0].filters: RequestRedirect and URLRewrite cannot be used together",
        ),
        (
            "/routes",
            json!([
                {"namespace": "ns", "name": "r", "parents": [{"listener": "http"}], "rules": []},
                {"namespace": "ns", "name": "r", "parents": [{"listener": "http"}], "rules": []},
            ]),
            "routes[1]: route ns/r appears twice",
        ),
        (
            "/routes/0/rules/0/matches/0/headers",
            json!([{"name": "x", "type": "RegularExpression", "value": "[a-z]{1000}{1000}"}]),
            "routes[0].rules[0].matches[0].headers[0].value",
        ),
        (
            "/backends/b",
            json!({}),
            r#"backends["b"]: has neither upstream nor invalid"#,
        ),
        (
            "/backends/b",
            json!({"upstream": "has space"}),
            r#"backends["b"].upstream: "has space" is not a usable upstream name"#,
        ),
    ];
    for (pointer, value, expected) in cases {
        let message = error_for(with(pointer, value.clone()));
        assert!(
            message.starts_with(expected),
            "setting {pointer} to {value}:\n  got      {message}\n  expected {expected}…"
        );
    }
}

/// Compiling leaves backend keys to the compiler, which resolves them anyway; `validate` alone
/// looks them up. Both must refuse a missing key with the same path and message, wherever the key
/// is named.
#[test]
fn a_missing_backend_key_is_refused_alike_by_validate_and_by_compile() {
    let mirror =
        |backend: &str| json!([{"type": "RequestMirror", "requestMirror": {"backend": backend}}]);
    let cases = [
        (
            "/routes/0/rules/0/backendRefs/0/backend",
            json!("nope"),
            r#"routes[0].rules[0].backendRefs[0].backend: "nope" is not a key of backends"#,
        ),
        (
            "/routes/0/rules/0/filters",
            mirror("nope"),
            r#"routes[0].rules[0].filters[0].requestMirror.backend: "nope" is not a key of backends"#,
        ),
        (
            "/routes/0/rules/0/backendRefs/0/filters",
            mirror("nope"),
            r#"routes[0].rules[0].backendRefs[0].filters[0].requestMirror.backend: "nope" is not a key of backends"#,
        ),
    ];
    for (pointer, value, expected) in cases {
        let config = with(pointer, value);
        let parsed = engine::parse(config.to_string().as_bytes()).unwrap();
        let alone = engine::validate(&parsed).expect_err("validate accepted a missing key");
        let compiled = RouteTable::compile(&parsed).expect_err("compile accepted a missing key");
        assert_eq!(alone.to_string(), expected);
        assert_eq!(compiled.to_string(), expected);
    }
    let valid = engine::parse(
        with("/routes/0/rules/0/filters", mirror("b"))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    engine::validate(&valid).unwrap();
    RouteTable::compile(&valid).unwrap();
}

#[test]
fn replace_prefix_match_needs_prefix_matches() {
    let message = error_for(with(
        "/routes/0/rules/0",
        json!({"matches": [{"path": {"type": "Exact", "value": "/x"}}],
               "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/y"}}}],
               "backendRefs": [{"backend": "b"}]}),
    ));
    assert!(message.starts_with("routes[0].rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs every match"), "{message}");
}

#[test]
fn type_errors_name_the_path() {
    let message = error_for(with(
        "/routes/0/rules/0/backendRefs/0",
        json!({"backend": "b", "weight": "heavy"}),
    ));
    assert!(
        message.starts_with(
            "routes[0].rules[0].backendRefs[0].weight: invalid type: string \"heavy\""
        ),
        "{message}"
    );
    let message = error_for(with(
        "/routes/0/rules/0/matches/0/path",
        json!({"type": "Prefix", "value": "/"}),
    ));
    assert!(
        message.starts_with("routes[0].rules[0].matches[0].path.type: unknown variant `Prefix`"),
        "{message}"
    );
    let message = error_for(with("/routes/0/rules/0/matches/0/method", json!(7)));
    assert!(
        message.starts_with("routes[0].rules[0].matches[0].method: invalid type: integer"),
        "{message}"
    );
    let message = error_for(with("/listeners/0/port", json!(70000)));
    assert!(
        message.starts_with("listeners[0].port: invalid value: integer `70000`"),
        "{message}"
    );
}

#[test]
fn unknown_fields_are_rejected_so_typos_do_not_pass_silently() {
    let message = error_for(with(
        "/routes/0/rules/0/matches/0/path",
        json!({"type": "Exact", "valeu": "/x"}),
    ));
    assert!(message.contains("unknown field `valeu`"), "{message}");
}

#[test]
fn not_json_at_all_is_a_clear_error() {
    for bad in [
        "",
        "{",
        "null",
        "[]",
        "{\"schemaVersion\": 1} trailing",
        "\u{feff}{}",
    ] {
        let err = RouteTable::from_json(bad.as_bytes())
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| !e.is_empty()),
            "{bad:?} must be rejected with a message"
        );
    }
}

#[test]
fn invalid_utf8_is_refused_with_the_path_of_the_string() {
    // The parser checks UTF-8 once for the whole document and reads from the text; a document that
    // is not UTF-8 is read byte-wise instead, so the error still names where the bad string is.
    let text = with("/routes/0/name", json!("r-PLACEHOLDER")).to_string();
    let mut bytes = text.into_bytes();
    let at = bytes.windows(11).position(|w| w == b"PLACEHOLDER").unwrap();
    bytes.splice(at..at + 11, [0xff, 0xfe]);
    let message = RouteTable::from_json(&bytes).err().unwrap().to_string();
    assert!(
        message.starts_with("routes[0].name: invalid UTF-8 (byte 0xff) at line 1 column "),
        "{message}"
    );
}

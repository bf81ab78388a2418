//! A PluginConfig as Kong 3.4–3.9 hands it to the filter: decoded into Lua tables and encoded
//! again by lua-cjson (`kong/runloop/wasm.lua`, `serialize_configuration`), so every empty list is
//! `{}`. The engine must read it exactly as the original (`docs/kong.md`, *Empty lists*).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::every_list_spelled_out;

/// What lua-cjson makes of an empty JSON array after a round trip through a Lua table.
fn as_kong_reencodes(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.is_empty() => json!({}),
        Value::Array(items) => Value::Array(items.iter().map(as_kong_reencodes).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), as_kong_reencodes(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn empty_lists_reencoded_as_objects_read_as_the_original() {
    let original = engine::parse(every_list_spelled_out().to_string().as_bytes()).unwrap();
    let reencoded = as_kong_reencodes(&every_list_spelled_out());
    assert!(
        reencoded.to_string().contains("\"headers\":{}"),
        "the fixture re-encodes: {reencoded}"
    );
    let from_kong = engine::parse(reencoded.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("Kong's re-encoding must parse: {e}"));
    assert_eq!(from_kong, original);
    engine::RouteTable::compile(&from_kong).unwrap();
}

#[test]
fn a_non_empty_object_where_a_list_belongs_names_the_field() {
    let mut doc = every_list_spelled_out();
    doc["routes"][0]["rules"][0]["matches"][0]["headers"] = json!({"name": "x"});
    let error = engine::parse(doc.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("routes[0].rules[0].matches[0].headers"),
        "{error}"
    );
}

#[test]
fn the_kong_route_selector_needs_its_kong_section_and_route_prefixes() {
    let compile = |doc: &Value| {
        engine::RouteTable::from_json(doc.to_string().as_bytes())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut doc = every_list_spelled_out();
    doc["upstreamSelector"] = json!("kongRoute");
    doc["backends"]["app/web:80"]["upstream"] = json!("/.gateway-wasm/s3cr3t/0a1b2c3d4e5f");
    assert_eq!(
        compile(&doc),
        Err("kong: is required when upstreamSelector is kongRoute".to_owned())
    );
    doc["kong"] = json!({"proxy": "127.0.0.1:8000"});
    assert_eq!(compile(&doc), Ok(()));
    doc["kong"]["ports"] = json!({"8000": 80});
    assert_eq!(compile(&doc), Ok(()));
    doc["kong"]["ports"] = json!({"8443": 443});
    let error = compile(&doc).unwrap_err();
    assert!(error.starts_with("kong.ports"), "{error}");
    doc["kong"] = json!({"proxy": "8000"});
    assert!(compile(&doc).unwrap_err().starts_with("kong.proxy"));
    doc["kong"] = json!({"proxy": "127.0.0.1:8000"});
    doc["backends"]["app/web:80"]["upstream"] = json!("web:80");
    let error = compile(&doc).unwrap_err();
    assert!(error.contains("is not a Kong route prefix"), "{error}");
    let mut envoy = every_list_spelled_out();
    envoy["kong"] = json!({"proxy": "127.0.0.1:8000"});
    assert!(compile(&envoy).unwrap_err().starts_with("kong:"));
}

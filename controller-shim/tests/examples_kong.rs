//! `examples/kong/`: Kong itself cannot be installed here, so this checks what can be checked
//! without it. `kong.yaml` parses, has the entities `controller-shim run --kong-admin` creates
//! (same names, the discard service, the catch-all route), and its filter config is the
//! PluginConfig the shim pushes for `examples/quickstart`, which the engine compiles and which
//! satisfies the draft-4 schema `packager kong-bundle` puts in `gateway_wasm.meta.json`.
//!
//! Golden: `cargo xtask bless` (or `BLESS=1`) rewrites the generated config block in kong.yaml.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/json_schema.rs"]
mod json_schema;

mod examples_common;

use controller_shim::deliver::kong::{FILTER_NAME, entity_name, kong_config};
use serde_json::Value;

use examples_common::{check_block, documents, examples, quickstart};

fn kong_yaml() -> Value {
    let mut docs = documents(&examples().join("kong/kong.yaml"));
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn filter(doc: &Value) -> &Value {
    &doc["services"][0]["routes"][0]["filter_chains"][0]["filters"][0]
}

#[test]
fn kong_yaml_filter_config_is_golden_for_the_quickstart() {
    let expected = kong_config(&quickstart(), "cluster.local");
    check_block(
        &examples().join("kong/kong.yaml"),
        "config",
        &expected,
        &filter(&kong_yaml())["config"],
    );
}

#[test]
fn kong_yaml_has_the_entities_the_shim_manages() {
    let doc = kong_yaml();
    assert_eq!(doc["_format_version"], "3.0");
    let name = entity_name(&controller_shim::resolution::ObjectKey {
        namespace: "infra".into(),
        name: "quickstart".into(),
    });
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    let service = &services[0];
    assert_eq!(service["name"], name.as_str());
    // Nothing listens on the discard port: an unrouted request cannot reach a backend.
    assert_eq!(
        (&service["host"], &service["port"]),
        (&Value::from("127.0.0.1"), &Value::from(9))
    );
    let routes = service["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1);
    let route = &routes[0];
    assert_eq!(route["name"], name.as_str());
    assert_eq!(route["paths"], serde_json::json!(["/"]));
    assert_eq!(route["preserve_host"], true);
    assert_eq!(route["strip_path"], false);
    let chains = route["filter_chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0]["name"], name.as_str());
    let filters = chains[0]["filters"].as_array().unwrap();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0]["name"], FILTER_NAME);
    assert_eq!(filters[0]["enabled"], true);
}

#[test]
fn kong_yaml_filter_config_compiles_and_fits_the_meta_json_schema() {
    let doc = kong_yaml();
    let config = &filter(&doc)["config"];
    assert_eq!(config["upstreamSelector"], "kongServiceTarget");
    let bytes = serde_json::to_vec(config).unwrap();
    let table = engine::RouteTable::from_json(&bytes)
        .unwrap_or_else(|e| panic!("the engine rejects kong.yaml's filter config: {e}"));
    // Kong forwards to host:port targets: the quickstart's echo backends.
    let mut upstreams: Vec<&str> = table.upstreams().collect();
    upstreams.sort_unstable();
    assert_eq!(
        upstreams,
        [
            "127.0.0.1:18081",
            "127.0.0.1:18082",
            "127.0.0.1:18083",
            "127.0.0.1:18084"
        ]
    );
    let schema = engine::schema::plugin_config_schema_draft4();
    let errors = json_schema::validate(&schema, config);
    assert!(errors.is_empty(), "schema violations: {errors:?}");
}

#[test]
fn kong_conf_turns_wasm_on() {
    let text = std::fs::read_to_string(examples().join("kong/kong.conf")).unwrap();
    let settings: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let get = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("wasm"), Some("on"));
    assert!(get("wasm_filters_path").is_some());
    assert_eq!(get("database"), Some("off"));
    assert_eq!(get("declarative_config"), Some("/etc/kong/kong.yaml"));
}

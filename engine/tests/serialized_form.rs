//! The PluginConfig as producers write it: empty lists and the default weight are left out, because
//! every VM inflates and parses the document on every push and at 10,000 routes those members were
//! a fifth of its bytes (`docs/benchmarks.md`, *The lean Wasm path*). What is left out must read
//! back as the same config.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests fail loudly

mod support;

use serde_json::json;
use support::every_list_spelled_out;

/// The shared document with a GRPCRoute, whose lists are written out too.
fn written() -> (engine::PluginConfig, String) {
    let mut doc = every_list_spelled_out();
    doc["grpcRoutes"] = json!([{
        "namespace": "app", "name": "rpc",
        "parents": [{"listener": "http", "hostnames": []}],
        "rules": [{"matches": [{"headers": []}], "filters": [],
                   "backendRefs": [{"backend": "app/web:80", "weight": 1, "filters": []}]}]
    }]);
    let config = engine::parse(doc.to_string().as_bytes()).unwrap();
    let text = serde_json::to_string(&config).unwrap();
    (config, text)
}

#[test]
fn empty_lists_and_the_default_weight_are_not_written() {
    let (_, text) = written();
    assert!(!text.contains("[]"), "an empty list was written: {text}");
    assert!(
        !text.contains("\"weight\":1"),
        "the default weight was written: {text}"
    );
    assert!(
        text.contains("\"weight\":3"),
        "weight 3 went missing: {text}"
    );
    assert!(
        text.contains("\"weight\":0"),
        "weight 0 went missing: {text}"
    );
    // Required lists stay, even when a producer has nothing for them.
    assert!(
        text.contains("\"listeners\":"),
        "listeners went missing: {text}"
    );
    assert!(
        text.contains("\"parents\":"),
        "parents went missing: {text}"
    );
}

#[test]
fn what_is_left_out_reads_back_as_the_same_config() {
    let (config, text) = written();
    let reread = engine::parse(text.as_bytes()).unwrap();
    assert_eq!(reread, config);
}

//! `docs/plugin-config.schema.json` is generated from the config types; this test fails when the two
//! drift. Regenerate with `cargo xtask bless` (or `BLESS=1 cargo test -p engine --features schema`).

#![cfg(feature = "schema")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn golden_plugin_config_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plugin-config.schema.json");
    let generated = format!("{:#}\n", engine::schema::plugin_config_schema());
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with engine::config; run `cargo xtask bless` and commit the result",
        path.display()
    );
}

#[test]
fn the_schema_describes_the_document() {
    let schema = engine::schema::plugin_config_schema();
    assert_eq!(schema["title"], "PluginConfig");
    let required = schema["required"].as_array().unwrap();
    for field in ["schemaVersion", "gateway", "listeners"] {
        assert!(
            required.iter().any(|r| r == field),
            "{field} must be required"
        );
    }
    assert!(
        schema["$defs"]["Filter"].is_object(),
        "filters are described"
    );
}

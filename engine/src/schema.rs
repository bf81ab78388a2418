//! JSON Schema of the PluginConfig document, generated from the Rust types so it cannot drift.

/// The JSON Schema (draft 2020-12) of [`crate::PluginConfig`]; Kong's `meta.json` embeds it and
/// `docs/plugin-config.schema.json` is this value.
pub fn plugin_config_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(crate::config::PluginConfig)).unwrap_or_default()
}

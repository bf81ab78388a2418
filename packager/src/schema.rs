//! The PluginConfig JSON Schema that goes into the Kong bundle's `config_schema`.
//!
//! TODO(engine-schema): the schema comes from the `engine` crate, which is being written. When
//! `engine::schema::plugin_config_schema() -> serde_json::Value` exists, add
//! `engine = { workspace = true, features = ["schema"] }` to `packager/Cargo.toml`, make the body
//! of [`plugin_config_schema`] `engine::schema::plugin_config_schema()` and set
//! [`SCHEMA_IS_PLACEHOLDER`] to `false`. Nothing else changes.

use serde_json::{Value, json};

/// True while [`plugin_config_schema`] returns the placeholder (commands warn about it).
pub const SCHEMA_IS_PLACEHOLDER: bool = true;

/// The PluginConfig JSON Schema.
pub fn plugin_config_schema() -> Value {
    json!({
        "title": "PluginConfig",
        "description": "gateway-wasm plugin configuration (placeholder: the full schema comes from the engine crate)",
        "type": "object"
    })
}

//! JSON Schema of the PluginConfig document, generated from the Rust types so it cannot drift.

use serde_json::{Map, Value};

/// The JSON Schema (draft 2020-12) of [`crate::PluginConfig`]; `docs/plugin-config.schema.json` is
/// this value.
pub fn plugin_config_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(crate::config::PluginConfig))
        .unwrap_or_default();
    default_empty_lists(&mut schema);
    schema
}

/// Puts `"default": []` back on every optional list. The serializer leaves empty lists out of the
/// document (`skip_serializing_if`), and schemars then omits the default it can no longer promise
/// to see written; the parser still reads an absent list as empty, which is what readers of the
/// schema need to know.
fn default_empty_lists(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for (name, property) in properties.iter_mut() {
                    if let Value::Object(property) = property
                        && property.get("type").and_then(Value::as_str) == Some("array")
                        && !required.contains(name)
                    {
                        property
                            .entry("default")
                            .or_insert_with(|| Value::Array(Vec::new()));
                    }
                }
            }
            map.values_mut().for_each(default_empty_lists);
        }
        Value::Array(items) => items.iter_mut().for_each(default_empty_lists),
        _ => {}
    }
}

/// The same schema in JSON Schema draft 4, the only dialect Kong accepts for a filter's
/// `config_schema` (Kong validates the schema document against the draft-4 metaschema with
/// lua-resty-ljsonschema and refuses any other `$schema`). Conversions: `$defs` → `definitions`
/// (and the `$ref`s into them), `const` → a one-value `enum`, the `$schema` URI, and the
/// non-standard integer `format`s schemars adds (`uint16`, `uint32`) dropped — the `minimum` and
/// `maximum` bounds that carry the same information stay.
pub fn plugin_config_schema_draft4() -> Value {
    let mut schema = to_draft4(plugin_config_schema());
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$schema".to_owned(),
            Value::String("http://json-schema.org/draft-04/schema#".to_owned()),
        );
    }
    schema
}

fn to_draft4(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                match key.as_str() {
                    "$defs" => {
                        out.insert("definitions".to_owned(), to_draft4(value));
                    }
                    "$ref" => {
                        let reference = match value {
                            Value::String(r) => {
                                Value::String(r.replacen("#/$defs/", "#/definitions/", 1))
                            }
                            other => other,
                        };
                        out.insert(key, reference);
                    }
                    "const" => {
                        out.insert("enum".to_owned(), Value::Array(vec![value]));
                    }
                    "format"
                        if value
                            .as_str()
                            .is_some_and(|f| f.starts_with("uint") || f.starts_with("int")) => {}
                    _ => {
                        out.insert(key, to_draft4(value));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(to_draft4).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    if k == "$ref" {
                        out.push(v.as_str().unwrap_or_default().to_owned());
                    }
                    all_keys(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_draft4_schema_uses_only_draft4_vocabulary() {
        let schema = plugin_config_schema_draft4();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
        let mut keys = Vec::new();
        all_keys(&schema, &mut keys);
        for forbidden in ["$defs", "const", "uint16", "uint32"] {
            assert!(
                !keys.iter().any(|k| k == forbidden),
                "{forbidden} left in the draft-4 schema"
            );
        }
        let definitions = schema["definitions"].as_object().unwrap();
        for reference in keys.iter().filter(|k| k.starts_with('#')) {
            let name = reference
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("{reference}"));
            assert!(
                definitions.contains_key(name),
                "{reference} does not resolve"
            );
        }
        assert!(
            keys.iter().any(|k| k == "enum"),
            "tags became one-value enums"
        );
    }
}

//! A small JSON Schema validator for the keywords the PluginConfig schema uses (`type`,
//! `properties`, `patternProperties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `minimum`,
//! `maximum`, `anyOf`, `oneOf`, `allOf`, `$ref` into `$defs`/`definitions`); annotations such as
//! `format`, `description` and `default` are ignored. Enough to show a pushed config satisfies
//! the schema Kong's meta.json carries, without a validator dependency.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, dead_code)]

use serde_json::Value;

/// Every violation, as `path: message`.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, value, "$", &mut errors);
    errors
}

fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    root.pointer(reference.strip_prefix('#')?)
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{path}: not allowed"));
        }
        return;
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match resolve(root, reference) {
            Some(target) => check(root, target, value, path, errors),
            None => errors.push(format!("{path}: unresolved $ref {reference}")),
        }
    }
    if let Some(kind) = schema.get("type") {
        let ok = match kind {
            Value::String(k) => type_matches(k, value),
            Value::Array(ks) => ks
                .iter()
                .any(|k| k.as_str().is_some_and(|k| type_matches(k, value))),
            _ => true,
        };
        if !ok {
            errors.push(format!("{path}: expected type {kind}, got {value}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {options:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        errors.push(format!("{path}: expected {constant}, got {value}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("{path}: {n} < minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("{path}: {n} > maximum {max}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = required.as_str()
                && !object.contains_key(name)
            {
                errors.push(format!("{path}: missing required {name}"));
            }
        }
        for (key, item) in object {
            let child = format!("{path}.{key}");
            let pattern = schema
                .get("patternProperties")
                .and_then(Value::as_object)
                .and_then(|patterns| {
                    patterns.iter().find_map(|(pattern, sub)| {
                        regex_lite::Regex::new(pattern)
                            .ok()
                            .filter(|re| re.is_match(key))
                            .map(|_| sub)
                    })
                });
            match properties.and_then(|p| p.get(key)).or(pattern) {
                Some(property) => check(root, property, item, &child, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{child}: unknown property")),
                    Some(extra @ Value::Object(_)) => check(root, extra, item, &child, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(root, items, item, &format!("{path}[{i}]"), errors);
        }
    }
    let passing = |options: &Vec<Value>| {
        options
            .iter()
            .filter(|option| {
                let mut sub = Vec::new();
                check(root, option, value, path, &mut sub);
                sub.is_empty()
            })
            .count()
    };
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array)
        && passing(options) == 0
    {
        errors.push(format!("{path}: matches none of anyOf"));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let n = passing(options);
        if n != 1 {
            errors.push(format!(
                "{path}: matches {n} of oneOf (exactly one required)"
            ));
        }
    }
    if let Some(options) = schema.get("allOf").and_then(Value::as_array) {
        for option in options {
            check(root, option, value, path, errors);
        }
    }
}

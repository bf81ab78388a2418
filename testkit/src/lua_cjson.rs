//! A JSON document as Kong hands a filter its object `config`: Kong 3.5–3.9 decode the posted
//! JSON into Lua tables (`cjson.decode`) and encode it again for the filter
//! (`serialize_configuration` in Kong's `kong/runloop/wasm.lua`: `cjson.encode(config)`). A Lua
//! table does not remember whether it was an array or an object and lua-cjson writes an empty one
//! as `{}`, so every empty array comes back as `{}`; members come out in Lua's hash order (here:
//! reversed, so nothing can depend on the order) and `/` is escaped as `\/`.
//!
//! Shared by the Admin API fixture's workers (controller-shim tests) and `kong-emulator`.

use serde_json::Value;

/// The text lua-cjson produces for `value` after a round trip through Lua tables.
pub fn reencode(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, member)) in members.iter().rev().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write(member, out);
            }
            out.push('}');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    let json = serde_json::to_string(text).unwrap_or_default();
    out.push_str(&json.replace('/', "\\/"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_arrays_come_back_as_objects() {
        let text = reencode(&json!({"a": [], "b": [1, {"c": []}], "d": "x/y"}));
        assert_eq!(text, r#"{"d":"x\/y","b":[1,{"c":{}}],"a":{}}"#);
        let back: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back["b"][1]["c"], json!({}));
    }
}

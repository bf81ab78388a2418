//! Lists that may arrive as `{}`.
//!
//! Kong 3.4–3.9 does not hand a filter the JSON it was given: it decodes a filter's `config` into
//! Lua tables and encodes it again for the filter (`serialize_configuration` in Kong's
//! `kong/runloop/wasm.lua`, `cjson.encode`). A Lua table does not know whether it was an array or
//! an object, and lua-cjson encodes an empty one as `{}`, so every empty list the producer wrote
//! (`"headers": []`) reaches the filter as `"headers": {}` (`docs/kong.md`, *Empty lists*). Every
//! list field of the PluginConfig therefore accepts an empty object as an empty list. A non-empty
//! object is still an error that names the field.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// `deserialize_with` for a `Vec<T>` field: a JSON array, or `{}` for an empty one.
pub(crate) fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(ListVisitor(PhantomData))
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list (or {} for an empty one)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // Bounded: a hostile size hint must not reserve gigabytes up front.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        // Most lists of a PluginConfig hold one or two items, and a growing vector starts with room
        // for four: trimmed, the parsed 10,000-route config takes 12.6 MB instead of 22 MB, which
        // a new Wasm VM must first fault in (on_configure 67 -> 60 ms in Envoy), and compiling
        // reads it with fewer cache misses (`docs/benchmarks.md`, *The lean Wasm path*).
        items.shrink_to_fit();
        Ok(items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(serde::de::Error::custom(
                "expected a list, got an object with members (only {} stands for an empty list)",
            ));
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Doc {
        #[serde(default, deserialize_with = "super::list")]
        items: Vec<u32>,
    }

    fn parse(json: &str) -> Result<Doc, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn arrays_and_the_empty_object_are_lists() {
        assert_eq!(parse(r#"{"items": [1, 2]}"#), Ok(Doc { items: vec![1, 2] }));
        assert_eq!(parse(r#"{"items": []}"#), Ok(Doc { items: vec![] }));
        assert_eq!(parse(r#"{"items": {}}"#), Ok(Doc { items: vec![] }));
        assert_eq!(parse(r#"{}"#), Ok(Doc { items: vec![] }));
    }

    #[test]
    fn lists_keep_no_spare_room() {
        let one = parse(r#"{"items": [7]}"#).unwrap().items;
        assert_eq!((one.len(), one.capacity()), (1, 1));
        let five = parse(r#"{"items": [1, 2, 3, 4, 5]}"#).unwrap().items;
        assert_eq!((five.len(), five.capacity()), (5, 5));
    }

    #[test]
    fn other_shapes_are_errors() {
        let object = parse(r#"{"items": {"a": 1}}"#).unwrap_err();
        assert!(
            object.contains("only {} stands for an empty list"),
            "{object}"
        );
        assert!(parse(r#"{"items": "1"}"#).is_err());
        assert!(parse(r#"{"items": null}"#).is_err());
        assert!(parse(r#"{"items": ["x"]}"#).is_err());
    }
}

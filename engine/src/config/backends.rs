//! Reading `backends` in one pass: the entries are collected in document order and the map is built
//! from them at once. Inserting 20,000 keys one by one searched the tree for each (a dozen string
//! comparisons apiece); the shim writes the keys sorted, which `BTreeMap`'s `FromIterator` detects
//! in one linear pass before building the tree bottom-up. A key written twice keeps its last value,
//! as inserting did.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Deserialize, MapAccess, Visitor};

/// `deserialize_with` for a string-keyed map.
pub(crate) fn sorted_map<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    deserializer.deserialize_map(EntriesVisitor(PhantomData))
}

struct EntriesVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
    type Value = BTreeMap<String, V>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(entry) = map.next_entry::<String, V>()? {
            entries.push(entry);
        }
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(deserialize_with = "super::sorted_map")]
        map: BTreeMap<String, u32>,
    }

    fn read(json: &str) -> Result<BTreeMap<String, u32>, String> {
        serde_json::from_str::<Doc>(json)
            .map(|d| d.map)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn any_order_reads_as_the_sorted_map() {
        let map = read(r#"{"map": {"b": 2, "c": 3, "a": 1}}"#);
        let expected: BTreeMap<String, u32> = [("a", 1), ("b", 2), ("c", 3)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
        assert_eq!(map, Ok(expected));
    }

    #[test]
    fn a_key_written_twice_keeps_its_last_value_as_inserting_did() {
        let map = read(r#"{"map": {"b": 1, "a": 7, "b": 2}}"#);
        let expected: BTreeMap<String, u32> =
            [("a", 7), ("b", 2)].map(|(k, v)| (k.to_owned(), v)).into();
        assert_eq!(map, Ok(expected));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let error = read(r#"{"map": {"a": "x"}}"#).err().unwrap_or_default();
        assert!(error.contains("invalid type"), "{error}");
        let error = read(r#"{"map": ["a"]}"#).err().unwrap_or_default();
        assert!(error.contains("expected an object"), "{error}");
    }
}

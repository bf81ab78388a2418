//! A small ordered document tree for the files we write: keys keep the order the code gives them,
//! so the YAML reads like Envoy's documentation (`name` first) and does not depend on serde_json's
//! feature flags.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    Int(i64),
    /// A protobuf `double` (overload thresholds).
    Float(f64),
    Bool(bool),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A map from `(key, value)` pairs, in this order.
    pub fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
        Node::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    /// Adds one entry to a map (no-op on other nodes).
    pub fn with(mut self, key: &str, value: impl Into<Node>) -> Node {
        if let Node::Map(entries) = &mut self {
            entries.push((key.to_owned(), value.into()));
        }
        self
    }

    /// The map without `key` (other nodes unchanged).
    pub fn without(mut self, key: &str) -> Node {
        if let Node::Map(entries) = &mut self {
            entries.retain(|(k, _)| k != key);
        }
        self
    }

    pub fn list(items: impl IntoIterator<Item = Node>) -> Node {
        Node::List(items.into_iter().collect())
    }

    /// `{"@type": type_url, ...entries}`.
    pub fn typed<const N: usize>(type_url: &str, entries: [(&str, Node); N]) -> Node {
        let mut node = Node::map([("@type", Node::from(type_url))]);
        for (k, v) in entries {
            node = node.with(k, v);
        }
        node
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Self {
        Node::Str(s.to_owned())
    }
}

impl From<String> for Node {
    fn from(s: String) -> Self {
        Node::Str(s)
    }
}

impl From<&String> for Node {
    fn from(s: &String) -> Self {
        Node::Str(s.clone())
    }
}

impl From<u16> for Node {
    fn from(n: u16) -> Self {
        Node::Int(i64::from(n))
    }
}

impl From<u32> for Node {
    fn from(n: u32) -> Self {
        Node::Int(i64::from(n))
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Self {
        Node::Bool(b)
    }
}

impl From<Vec<Node>> for Node {
    fn from(items: Vec<Node>) -> Self {
        Node::List(items)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Str(s) => serializer.serialize_str(s),
            Node::Int(n) => serializer.serialize_i64(*n),
            Node::Float(x) => serializer.serialize_f64(*x),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

//! Config errors that name the JSON path and the offending value, so an operator reading the filter's
//! log at 3 a.m. knows which field of which route to fix.

use std::fmt;

/// A rejected PluginConfig: `path` is a JSON path like `routes[2].rules[0].matches[1].path.value`
/// (empty for document-level problems), `message` says what is wrong with the value found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Builds JSON paths while walking the document; rendered only when an error is reported.
#[derive(Debug, Default, Clone)]
pub(crate) struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Field(&'static str),
    Index(usize),
    Key(String),
}

impl JsonPath {
    pub(crate) fn field(&self, name: &'static str) -> JsonPath {
        let mut next = self.clone();
        next.segments.push(Segment::Field(name));
        next
    }

    pub(crate) fn index(&self, index: usize) -> JsonPath {
        let mut next = self.clone();
        next.segments.push(Segment::Index(index));
        next
    }

    pub(crate) fn key(&self, key: &str) -> JsonPath {
        let mut next = self.clone();
        next.segments.push(Segment::Key(key.to_owned()));
        next
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.to_string(), message)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.segments {
            match segment {
                Segment::Field(name) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Key(k) => write!(f, "[{k:?}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Quotes a value for an error message, shortened so a huge bad value cannot flood the log.
pub(crate) fn quoted(value: &str) -> String {
    const MAX: usize = 120;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{:?}… ({} bytes)",
        value.get(..end).unwrap_or_default(),
        value.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_paths_like_jq() {
        let p = JsonPath::default()
            .field("routes")
            .index(2)
            .field("rules")
            .index(0)
            .field("matches");
        assert_eq!(p.to_string(), "routes[2].rules[0].matches");
        let k = JsonPath::default()
            .field("backends")
            .key("ns/svc:80")
            .field("upstream");
        assert_eq!(k.to_string(), "backends[\"ns/svc:80\"].upstream");
    }

    #[test]
    fn long_values_are_shortened_on_a_char_boundary() {
        let long = "é".repeat(200);
        let q = quoted(&long);
        assert!(q.ends_with("(400 bytes)"), "{q}");
    }
}

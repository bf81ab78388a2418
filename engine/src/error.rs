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

/// A JSON path while walking the document: each step borrows its parent on the stack, so building
/// one costs two words and no allocation; the text is produced only when an error is reported
/// (validating a 10,000-route config builds hundreds of thousands of these).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonPath<'p> {
    parent: Option<&'p JsonPath<'p>>,
    segment: Option<Segment<'p>>,
}

#[derive(Debug, Clone, Copy)]
enum Segment<'p> {
    Field(&'static str),
    Index(usize),
    Key(&'p str),
}

impl<'p> JsonPath<'p> {
    /// The document root (renders as an empty path).
    pub(crate) const ROOT: JsonPath<'static> = JsonPath {
        parent: None,
        segment: None,
    };

    fn child<'s>(&'s self, segment: Segment<'s>) -> JsonPath<'s> {
        JsonPath {
            parent: Some(self),
            segment: Some(segment),
        }
    }

    pub(crate) fn field<'s>(&'s self, name: &'static str) -> JsonPath<'s> {
        self.child(Segment::Field(name))
    }

    pub(crate) fn index<'s>(&'s self, index: usize) -> JsonPath<'s> {
        self.child(Segment::Index(index))
    }

    pub(crate) fn key<'s>(&'s self, key: &'s str) -> JsonPath<'s> {
        self.child(Segment::Key(key))
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.to_string(), message)
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            segments.extend(path.segment);
            at = path.parent;
        }
        for (i, segment) in segments.iter().rev().enumerate() {
            match segment {
                Segment::Field(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Key(k) => write!(f, "[{k:?}]")?,
            }
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
        let text = JsonPath::ROOT
            .field("routes")
            .index(2)
            .field("rules")
            .index(0)
            .field("matches")
            .to_string();
        assert_eq!(text, "routes[2].rules[0].matches");
        let key = JsonPath::ROOT
            .field("backends")
            .key("ns/svc:80")
            .field("upstream")
            .to_string();
        assert_eq!(key, "backends[\"ns/svc:80\"].upstream");
        assert_eq!(JsonPath::ROOT.to_string(), "");
    }

    #[test]
    fn long_values_are_shortened_on_a_char_boundary() {
        let long = "é".repeat(200);
        let q = quoted(&long);
        assert!(q.ends_with("(400 bytes)"), "{q}");
    }
}

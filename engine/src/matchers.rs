//! Per-candidate conditions checked after the path index has narrowed the candidates: method,
//! headers and query parameters. None of them allocate on the request path, except a regular
//! expression tested against a percent-encoded query value (decoded into a short-lived string).

use std::borrow::Cow;

use regex_lite::{Regex, RegexBuilder};

use crate::config::ValueMatchType;

/// Compiled-program budget for one regex (bytes). Patterns over it are rejected at config time.
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// Maximum nesting of groups and repetitions.
pub const REGEX_NEST_LIMIT: u32 = 64;

/// Compiles a user regex so it must match the whole value, with size and nesting bounds.
/// regex-lite searches in O(m·n) worst case, so a hostile pattern cannot stall a worker.
pub fn compile_full_match(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| format!("{pattern:?} is not a valid regular expression: {e}"))
}

#[derive(Debug, Clone)]
pub(crate) enum ValueMatcher {
    Exact(Box<str>),
    Regex(Regex),
}

impl ValueMatcher {
    pub(crate) fn new(kind: ValueMatchType, value: &str) -> Result<ValueMatcher, String> {
        Ok(match kind {
            ValueMatchType::Exact => ValueMatcher::Exact(value.into()),
            ValueMatchType::RegularExpression => ValueMatcher::Regex(compile_full_match(value)?),
        })
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatcher::Exact(expected) => **expected == *value,
            ValueMatcher::Regex(re) => re.is_match(value),
        }
    }

    /// Matches a value as it appears in a query string, percent-encoded.
    fn matches_encoded(&self, raw: &str) -> bool {
        match self {
            ValueMatcher::Exact(expected) => decoded_bytes(raw).eq(expected.bytes()),
            ValueMatcher::Regex(re) => re.is_match(&percent_decode(raw)),
        }
    }
}

/// `= "value"` or `~ "pattern"`, for explain traces.
impl std::fmt::Display for ValueMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueMatcher::Exact(v) => write!(f, "= {v:?}"),
            ValueMatcher::Regex(re) => write!(f, "~ {:?}", re.as_str()),
        }
    }
}

/// A header condition: the name is stored lowercase and compared case-insensitively.
#[derive(Debug, Clone)]
pub(crate) struct HeaderCondition {
    pub(crate) name: Box<str>,
    pub(crate) value: ValueMatcher,
}

impl HeaderCondition {
    /// True when any value of the header satisfies the condition.
    pub(crate) fn holds<H: AsRef<str>>(&self, headers: &[(H, H)]) -> bool {
        headers.iter().any(|(n, v)| {
            n.as_ref().eq_ignore_ascii_case(&self.name) && self.value.matches(v.as_ref())
        })
    }
}

/// A query condition: name case-sensitive; the first occurrence of the parameter decides, as the
/// spec recommends for repeated parameters.
#[derive(Debug, Clone)]
pub(crate) struct QueryCondition {
    pub(crate) name: Box<str>,
    pub(crate) value: ValueMatcher,
}

impl QueryCondition {
    pub(crate) fn holds(&self, query: Option<&str>) -> bool {
        match first_query_value(query, &self.name) {
            Some(raw) => self.value.matches_encoded(raw),
            None => false,
        }
    }
}

/// The value, still encoded, of the first `name=value` pair whose decoded name equals `name`.
fn first_query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        decoded_bytes(raw_name)
            .eq(name.bytes())
            .then_some(raw_value)
    })
}

/// The bytes of `s` with `%XX` escapes and `+` decoded, without building a string. Invalid escapes
/// are kept literally.
fn decoded_bytes(s: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let (byte, width) = match *bytes.get(i)? {
            b'+' => (b' ', 1),
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(hi), Some(lo)) => ((hi * 16 + lo) as u8, 3),
                    _ => (b'%', 1),
                }
            }
            other => (other, 1),
        };
        i += width;
        Some(byte)
    })
}

/// Decodes `%XX` escapes and `+` (form encoding) — borrowing when there is nothing to decode.
/// Invalid escapes are kept literally; invalid UTF-8 becomes U+FFFD.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes: Vec<u8> = decoded_bytes(s).collect();
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_match_the_whole_value() {
        let m = ValueMatcher::new(ValueMatchType::RegularExpression, "v[0-9]").unwrap();
        assert!(m.matches("v1"));
        assert!(!m.matches("v12"), "a partial match is not a match");
        assert!(!m.matches("xv1"));
        let alternation = ValueMatcher::new(ValueMatchType::RegularExpression, "a|b").unwrap();
        assert!(alternation.matches("a") && alternation.matches("b") && !alternation.matches("ab"));
    }

    #[test]
    fn oversized_and_deeply_nested_regexes_are_rejected() {
        assert!(compile_full_match(&"(".repeat(100)).is_err());
        assert!(compile_full_match(&format!("{}{}", "(?:a".repeat(80), ")".repeat(80))).is_err());
        assert!(
            compile_full_match("[a-z]{1000}{1000}").is_err(),
            "size limit"
        );
        assert!(compile_full_match("a{2,5}").is_ok());
    }

    #[test]
    fn query_lookup_decodes_and_takes_the_first_value() {
        assert_eq!(first_query_value(Some("a=1&b=2&a=3"), "a"), Some("1"));
        assert_eq!(
            first_query_value(Some("a%20b=c+d"), "a b").map(percent_decode),
            Some("c d".into())
        );
        assert_eq!(first_query_value(Some("flag&x=1"), "flag"), Some(""));
        assert_eq!(first_query_value(Some("a%2=1&a%3d=2"), "a%2"), Some("1"));
        let exact = ValueMatcher::new(ValueMatchType::Exact, "c d/é").unwrap();
        assert!(exact.matches_encoded("c+d%2F%C3%A9") && !exact.matches_encoded("c+d%2F"));
        let regex = ValueMatcher::new(ValueMatchType::RegularExpression, "c d.*").unwrap();
        assert!(regex.matches_encoded("c%20d%2Fx") && !regex.matches_encoded("cd"));
        assert_eq!(
            first_query_value(Some("ANIMAL=Whale"), "animal"),
            None,
            "names are case-sensitive"
        );
        assert_eq!(first_query_value(None, "a"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn header_conditions_ignore_name_case() {
        let c = HeaderCondition {
            name: "version".into(),
            value: ValueMatcher::Exact("two".into()),
        };
        assert!(c.holds(&[("Version", "one"), ("VERSION", "two")]));
        assert!(!c.holds(&[("Version", "TWO")]), "values are case-sensitive");
    }
}

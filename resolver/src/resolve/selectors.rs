//! Label selectors (`allowedRoutes.namespaces.selector`, `allowedListeners.namespaces.selector`)
//! evaluated against Namespace labels.

use std::collections::BTreeMap;

/// A LabelSelector, independent of which generated type it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    pub values: Vec<String>,
}

impl Selector {
    /// "matchLabels is a map of {key,value} pairs. A single {key,value} in the matchLabels map is
    /// equivalent to an element of matchExpressions, whose key field is "key", the operator is "In",
    /// and the values array contains only "value". The requirements are ANDed."
    ///
    /// An empty selector selects everything (Kubernetes LabelSelector semantics). A requirement with
    /// an unknown operator selects nothing: an invalid selector must not widen access.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    }
}

/// Builds a [`Selector`] from any of the generated selector types (they share field names).
macro_rules! selector_from {
    ($s:expr) => {{
        let s = $s;
        $crate::resolve::selectors::Selector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            match_expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| $crate::resolve::selectors::Requirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }};
}
pub(crate) use selector_from;

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn match_labels_are_anded() {
        let s = Selector {
            match_labels: labels(&[("team", "a"), ("env", "prod")]),
            ..Selector::default()
        };
        assert!(s.matches(&labels(&[("team", "a"), ("env", "prod"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("team", "a")])));
    }

    #[test]
    fn expressions_follow_kubernetes_operators() {
        let l = labels(&[("team", "a")]);
        assert!(req("team", "In", &["a", "b"]).matches(&l));
        assert!(!req("team", "In", &["b"]).matches(&l));
        assert!(req("team", "NotIn", &["b"]).matches(&l));
        assert!(req("env", "NotIn", &["prod"]).matches(&l));
        assert!(req("team", "Exists", &[]).matches(&l));
        assert!(req("env", "DoesNotExist", &[]).matches(&l));
        assert!(!req("team", "Matches", &["a"]).matches(&l));
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(Selector::default().matches(&BTreeMap::new()));
    }
}

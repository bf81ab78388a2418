//! ReferenceGrant checks for cross-namespace references (route → Service, Gateway → Secret).
//!
//! Spec (ReferenceGrantSpec): "From describes the trusted namespaces and kinds that can reference
//! the resources described in "To". Each entry in this list MUST be considered to be an additional
//! place that references can be valid from, or to put this another way, entries MUST be combined
//! using OR." — the same for `to`. A `to` entry without a name "refers to all resources of the
//! specified Group and Kind in the local namespace".

use crate::api::referencegrants::ReferenceGrant;

/// One side of a reference: `(group, kind, namespace)` of the referrer, or `(group, kind, name)` of
/// the target in the grant's namespace. Groups are `""` for the core API group.
#[derive(Debug, Clone, Copy)]
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether some ReferenceGrant in the target's namespace allows `from` to reference `to`.
/// Same-namespace references need no grant.
pub fn permitted(grants: &[ReferenceGrant], from: From<'_>, to: To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    grants
        .iter()
        .filter(|g| g.metadata.namespace.as_deref() == Some(to.namespace))
        .any(|g| {
            g.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            }) && g.spec.to.iter().any(|t| {
                t.group == to.group
                    && t.kind == to.kind
                    && t.name
                        .as_deref()
                        .is_none_or(|n| n.is_empty() || n == to.name)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::ObjectMeta;
    use crate::api::referencegrants::{ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo};

    fn grant(ns: &str, from: (&str, &str, &str), to: (&str, &str, Option<&str>)) -> ReferenceGrant {
        ReferenceGrant {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some("g".into()),
                ..ObjectMeta::default()
            },
            spec: ReferenceGrantSpec {
                from: vec![ReferenceGrantFrom {
                    group: from.0.into(),
                    kind: from.1.into(),
                    namespace: from.2.into(),
                }],
                to: vec![ReferenceGrantTo {
                    group: to.0.into(),
                    kind: to.1.into(),
                    name: to.2.map(Into::into),
                }],
            },
        }
    }

    const ROUTE: From<'static> = From {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        namespace: "apps",
    };

    fn svc(name: &str) -> To<'_> {
        To {
            group: "",
            kind: "Service",
            namespace: "backends",
            name,
        }
    }

    #[test]
    fn same_namespace_needs_no_grant() {
        let to = To {
            namespace: "apps",
            ..svc("a")
        };
        assert!(permitted(&[], ROUTE, to));
    }

    #[test]
    fn cross_namespace_needs_a_matching_grant() {
        assert!(!permitted(&[], ROUTE, svc("a")));
        let ok = grant(
            "backends",
            ("gateway.networking.k8s.io", "HTTPRoute", "apps"),
            ("", "Service", Some("a")),
        );
        assert!(permitted(std::slice::from_ref(&ok), ROUTE, svc("a")));
        assert!(!permitted(std::slice::from_ref(&ok), ROUTE, svc("b")));
        let any_name = grant(
            "backends",
            ("gateway.networking.k8s.io", "HTTPRoute", "apps"),
            ("", "Service", None),
        );
        assert!(permitted(&[any_name], ROUTE, svc("b")));
    }

    #[test]
    fn each_field_of_the_grant_must_match() {
        let wrong = [
            grant(
                "apps",
                ("gateway.networking.k8s.io", "HTTPRoute", "apps"),
                ("", "Service", Some("a")),
            ),
            grant(
                "backends",
                ("other.group", "HTTPRoute", "apps"),
                ("", "Service", Some("a")),
            ),
            grant(
                "backends",
                ("gateway.networking.k8s.io", "Gateway", "apps"),
                ("", "Service", Some("a")),
            ),
            grant(
                "backends",
                ("gateway.networking.k8s.io", "HTTPRoute", "elsewhere"),
                ("", "Service", Some("a")),
            ),
            grant(
                "backends",
                ("gateway.networking.k8s.io", "HTTPRoute", "apps"),
                ("other.group", "Service", Some("a")),
            ),
            grant(
                "backends",
                ("gateway.networking.k8s.io", "HTTPRoute", "apps"),
                ("", "Secret", Some("a")),
            ),
        ];
        assert!(!permitted(&wrong, ROUTE, svc("a")));
    }
}

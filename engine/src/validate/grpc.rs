//! Validation of `grpcRoutes[].rules[]`: the GRPCRoute CRD's own rules (so a config the shim built
//! from accepted GRPCRoutes always passes) plus bounded, compilable regular expressions.
//!
//! Regular expressions are compiled here, not only when the table is built: a gRPC method regex is
//! rare, and checking it here lets the shim ask `validate` alone whether a rule is acceptable
//! (the table compiles the same pattern with the same bounds, [`compile_full_match`]).

use crate::config::{Filter, GrpcMatch, GrpcMethodMatch, GrpcRule, ValueMatchType};
use crate::error::{ConfigError, JsonPath, quoted};
use crate::matchers::compile_full_match;

use super::{
    BackendKeys, backend_refs, bounded, filter_kind, header_matches, non_empty, validate_filters,
};

/// GRPCMethodMatch `service` and `method`: "+kubebuilder:validation:MaxLength=1024".
pub const MAX_METHOD_MATCH_LEN: usize = 1024;

/// The filter types a GRPCRoute has (GRPCRouteFilterType: "Enum=ResponseHeaderModifier;
/// RequestHeaderModifier;RequestMirror;ExtensionRef"; an ExtensionRef reaches the data plane as
/// `Unresolved`).
pub const GRPC_FILTER_TYPES: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "Unresolved",
];

pub(super) fn rule(
    path: &JsonPath<'_>,
    rule: &GrpcRule,
    backends: BackendKeys<'_, '_>,
) -> Result<(), ConfigError> {
    if let Some(name) = &rule.name {
        non_empty(&path.field("name"), name)?;
    }
    for (i, m) in rule.matches.iter().enumerate() {
        grpc_match(&path.field("matches").index(i), m)?;
    }
    let filters = |fpath: &JsonPath<'_>, filters: &[Filter], backend_level: bool| {
        grpc_filter_types(fpath, filters)?;
        validate_filters(fpath, filters, true, backends, backend_level)
    };
    filters(&path.field("filters"), &rule.filters, false)?;
    backend_refs(
        &path.field("backendRefs"),
        &rule.backend_refs,
        backends,
        |fpath, list| filters(fpath, list, true),
    )
}

fn grpc_match(path: &JsonPath<'_>, m: &GrpcMatch) -> Result<(), ConfigError> {
    if let Some(method) = &m.method {
        method_match(&path.field("method"), method)?;
    }
    let hpath = path.field("headers");
    header_matches(&hpath, &m.headers)?;
    for (i, h) in m.headers.iter().enumerate() {
        if h.kind == ValueMatchType::RegularExpression {
            compile_full_match(&h.value).map_err(|e| hpath.index(i).field("value").error(e))?;
        }
    }
    Ok(())
}

/// GRPCMethodMatch, with the CRD's validation rules:
/// - "One or both of 'service' or 'method' must be specified";
/// - Exact: "service must only contain valid characters (matching
///   ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$)" and "method must only contain valid
///   characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)";
/// - RegularExpression: the dialect is implementation-specific ("implementations can support
///   POSIX, PCRE, RE2 or any other regular expression dialect"); ours is regex-lite's (RE2-like
///   syntax, linear time), size- and nesting-bounded, matching the whole service or method.
///
/// "If left empty or omitted, will match all services": the document has one spelling for that,
/// an absent field, so an empty string is an error.
fn method_match(path: &JsonPath<'_>, m: &GrpcMethodMatch) -> Result<(), ConfigError> {
    if m.service.is_none() && m.method.is_none() {
        return Err(path.error(
            "needs service or method (or both); leave out method to match every gRPC call",
        ));
    }
    for (field, value) in [("service", &m.service), ("method", &m.method)] {
        let Some(value) = value else { continue };
        let fpath = path.field(field);
        if value.is_empty() {
            return Err(fpath.error("must not be empty; leave it out to match any"));
        }
        if value.len() > MAX_METHOD_MATCH_LEN {
            return Err(fpath.error(format!(
                "{} is longer than {MAX_METHOD_MATCH_LEN} bytes",
                quoted(value)
            )));
        }
        match m.kind {
            ValueMatchType::Exact => {
                let valid = if field == "service" {
                    is_service_name(value)
                } else {
                    is_identifier(value)
                };
                if !valid {
                    return Err(fpath.error(format!(
                        "{} is not a gRPC {field} name ({})",
                        quoted(value),
                        if field == "service" {
                            "dot-separated identifiers of letters, digits and _, e.g. pkg.v1.Service"
                        } else {
                            "letters, digits and _, not starting with a digit"
                        }
                    )));
                }
            }
            ValueMatchType::RegularExpression => {
                bounded(&fpath, value)?;
                compile_full_match(value).map_err(|e| fpath.error(e))?;
            }
        }
    }
    Ok(())
}

/// `^[A-Za-z_][A-Za-z_0-9]*$`.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`: identifiers joined by dots, one optional
/// leading dot.
fn is_service_name(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    s.split('.').all(is_identifier)
}

fn grpc_filter_types(path: &JsonPath<'_>, filters: &[Filter]) -> Result<(), ConfigError> {
    for (i, filter) in filters.iter().enumerate() {
        let kind = filter_kind(filter);
        if !GRPC_FILTER_TYPES.contains(&kind) {
            return Err(path.index(i).field("type").error(format!(
                "{} is not a GRPCRoute filter (one of {})",
                quoted(kind),
                GRPC_FILTER_TYPES.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_the_crd_pattern() {
        for good in ["a", "pkg.Svc", ".pkg.v1.Svc", "_x._y", "A1.b_2"] {
            assert!(is_service_name(good), "{good}");
        }
        for bad in ["", ".", "a.", "a..b", "1a", "pkg/Svc", "a-b", "..a", "a.1b"] {
            assert!(!is_service_name(bad), "{bad}");
        }
    }

    #[test]
    fn method_names_follow_the_crd_pattern() {
        for good in ["Get", "_x", "EchoTwo", "a1"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "1a", "Get.X", "Get/", "a-b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}

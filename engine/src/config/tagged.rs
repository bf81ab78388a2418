//! Reading the `type`-tagged unions of the PluginConfig: filters and path modifiers.
//!
//! serde's internally tagged enums (`#[serde(tag = "type")]`) buffer the whole object into an
//! intermediate tree (an allocation per key and value) because the tag may come after the payload.
//! Here a union is read in one pass as a struct of optional members, in any key order (Kong
//! re-encodes objects in an order of its own, `docs/kong.md`), and then exactly the member its
//! `type` names must be present: "filter.requestHeaderModifier must be nil if the filter.type is not
//! RequestHeaderModifier" and "filter.requestHeaderModifier must be specified for
//! RequestHeaderModifier filter.type", as the HTTPRoute CRD's validation rules say for each filter.
//! Serializing is unchanged (the derived, tag-first form).

use super::json::{Read, ReadError, Reader};
use super::read::{cors, header_modifier, request_mirror, request_redirect, url_rewrite};
use super::{Filter, PathModifier};

/// The `type` names of [`Filter`] as written in the document.
const FILTER_TYPES: &[&str] = &[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
    "RequestMirror",
    "CORS",
    "Unresolved",
];
/// The member holding each type's settings, in the order of [`FILTER_TYPES`] (an `Unresolved`
/// filter's `reason` is informative and may be left out).
const FILTER_MEMBERS: &[&str] = &[
    "requestHeaderModifier",
    "responseHeaderModifier",
    "requestRedirect",
    "urlRewrite",
    "requestMirror",
    "cors",
    "reason",
];
/// Every member a filter object may have.
const FILTER_FIELDS: &[&str] = &[
    "type",
    "requestHeaderModifier",
    "responseHeaderModifier",
    "requestRedirect",
    "urlRewrite",
    "requestMirror",
    "cors",
    "reason",
];

pub(crate) fn filter(r: &mut Reader<'_>) -> Read<Filter> {
    let mut kind = None;
    let (mut request_headers, mut response_headers, mut redirect) = (None, None, None);
    let (mut rewrite, mut mirror, mut cors_policy, mut reason) = (None, None, None, None);
    let open = r.object("struct Filter", FILTER_FIELDS, |r, field| {
        match field {
            "type" => kind = Some(r.variant(FILTER_TYPES)?),
            "requestHeaderModifier" => request_headers = r.nullable(header_modifier)?,
            "responseHeaderModifier" => response_headers = r.nullable(header_modifier)?,
            "requestRedirect" => redirect = r.nullable(request_redirect)?,
            "urlRewrite" => rewrite = r.nullable(url_rewrite)?,
            "requestMirror" => mirror = r.nullable(request_mirror)?,
            "cors" => cors_policy = r.nullable(cors)?,
            _ => reason = r.nullable(Reader::string)?,
        }
        Ok(())
    })?;
    let present = [
        request_headers.is_some(),
        response_headers.is_some(),
        redirect.is_some(),
        rewrite.is_some(),
        mirror.is_some(),
        cors_policy.is_some(),
        reason.is_some(),
    ];
    let union = Tagged::check(r, open, kind, FILTER_TYPES, FILTER_MEMBERS, &present)?;
    let (kind, missing) = (union.kind, || union.missing_own_member(r));
    Ok(match kind {
        0 => Filter::RequestHeaderModifier {
            request_header_modifier: request_headers.ok_or_else(missing)?,
        },
        1 => Filter::ResponseHeaderModifier {
            response_header_modifier: response_headers.ok_or_else(missing)?,
        },
        2 => Filter::RequestRedirect {
            request_redirect: redirect.ok_or_else(missing)?,
        },
        3 => Filter::UrlRewrite {
            url_rewrite: rewrite.ok_or_else(missing)?,
        },
        4 => Filter::RequestMirror {
            request_mirror: mirror.ok_or_else(missing)?,
        },
        5 => Filter::Cors {
            cors: cors_policy.ok_or_else(missing)?,
        },
        // The reason is informative: an Unresolved filter answers 500 with or without one.
        _ => Filter::Unresolved {
            reason: reason.unwrap_or_default(),
        },
    })
}

const PATH_MODIFIER_TYPES: &[&str] = &["ReplaceFullPath", "ReplacePrefixMatch"];
const PATH_MODIFIER_MEMBERS: &[&str] = &["replaceFullPath", "replacePrefixMatch"];

pub(crate) fn path_modifier(r: &mut Reader<'_>) -> Read<PathModifier> {
    let (mut kind, mut full, mut prefix) = (None, None, None);
    const FIELDS: &[&str] = &["type", "replaceFullPath", "replacePrefixMatch"];
    let open = r.object("struct PathModifier", FIELDS, |r, field| {
        match field {
            "type" => kind = Some(r.variant(PATH_MODIFIER_TYPES)?),
            "replaceFullPath" => full = r.nullable(Reader::string)?,
            _ => prefix = r.nullable(Reader::string)?,
        }
        Ok(())
    })?;
    let present = [full.is_some(), prefix.is_some()];
    let union = Tagged::check(
        r,
        open,
        kind,
        PATH_MODIFIER_TYPES,
        PATH_MODIFIER_MEMBERS,
        &present,
    )?;
    let (kind, missing) = (union.kind, || union.missing_own_member(r));
    Ok(match kind {
        0 => PathModifier::ReplaceFullPath {
            replace_full_path: full.ok_or_else(missing)?,
        },
        _ => PathModifier::ReplacePrefixMatch {
            replace_prefix_match: prefix.ok_or_else(missing)?,
        },
    })
}

/// A tagged union whose members have been read: the index of its `type` in the union's type table,
/// and what that type is called and which member it takes.
struct Tagged {
    open: usize,
    kind: usize,
    type_name: &'static str,
    own: &'static str,
}

impl Tagged {
    /// Requires the `type` member and refuses a member that belongs to another type; `present[i]`
    /// says whether `members[i]` was set.
    fn check(
        r: &Reader<'_>,
        open: usize,
        kind: Option<usize>,
        types: &'static [&'static str],
        members: &'static [&'static str],
        present: &[bool],
    ) -> Read<Tagged> {
        let kind = r.required(kind, open, "type")?;
        let type_name = types.get(kind).copied().unwrap_or_default();
        let own = members.get(kind).copied().unwrap_or_default();
        let other = members
            .iter()
            .zip(present)
            .find(|(member, set)| **set && **member != own);
        if let Some((other, _)) = other {
            return Err(r.error(
                open,
                format!("`{other}` is set but type is {type_name}, which takes only `{own}`"),
            ));
        }
        Ok(Tagged {
            open,
            kind,
            type_name,
            own,
        })
    }

    /// The error when the type's own member is absent (an `Unresolved` filter's `reason` may be).
    fn missing_own_member(&self, r: &Reader<'_>) -> ReadError {
        r.error(
            self.open,
            format!(
                "missing field `{}` (type {} needs it)",
                self.own, self.type_name
            ),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{Cors, HeaderModifier, RequestMirror, RequestRedirect, UrlRewrite};

    fn filter(json: &str) -> Result<Filter, String> {
        crate::config::read_value(json, super::filter)
    }

    fn path_modifier(json: &str) -> Result<PathModifier, String> {
        crate::config::read_value(json, super::path_modifier)
    }

    #[test]
    fn the_payload_may_come_before_the_type() {
        let first = filter(r#"{"type": "URLRewrite", "urlRewrite": {"hostname": "a.example"}}"#);
        let last = filter(r#"{"urlRewrite": {"hostname": "a.example"}, "type": "URLRewrite"}"#);
        assert_eq!(first, last);
        assert_eq!(
            first.unwrap(),
            Filter::UrlRewrite {
                url_rewrite: UrlRewrite {
                    hostname: Some("a.example".to_owned()),
                    path: None,
                }
            }
        );
    }

    #[test]
    fn every_filter_reads_back_what_serializing_wrote() {
        let filters = [
            Filter::RequestHeaderModifier {
                request_header_modifier: HeaderModifier::default(),
            },
            Filter::ResponseHeaderModifier {
                response_header_modifier: HeaderModifier::default(),
            },
            Filter::RequestRedirect {
                request_redirect: RequestRedirect {
                    path: Some(PathModifier::ReplacePrefixMatch {
                        replace_prefix_match: "/v2".to_owned(),
                    }),
                    ..RequestRedirect::default()
                },
            },
            Filter::UrlRewrite {
                url_rewrite: UrlRewrite {
                    hostname: None,
                    path: Some(PathModifier::ReplaceFullPath {
                        replace_full_path: "/x".to_owned(),
                    }),
                },
            },
            Filter::RequestMirror {
                request_mirror: RequestMirror {
                    backend: "ns/b:80".to_owned(),
                    percent: Some(10),
                    fraction: None,
                },
            },
            Filter::Cors {
                cors: Cors::default(),
            },
            Filter::Unresolved {
                reason: "ExtensionRef example.com/Thing x not found".to_owned(),
            },
        ];
        for original in filters {
            let json = serde_json::to_string(&original).unwrap();
            assert_eq!(filter(&json), Ok(original), "{json}");
        }
    }

    #[test]
    fn an_unresolved_filter_needs_no_reason() {
        assert_eq!(
            filter(r#"{"type": "Unresolved"}"#),
            Ok(Filter::Unresolved {
                reason: String::new()
            })
        );
    }

    #[test]
    fn the_member_of_another_type_is_refused() {
        let error = filter(
            r#"{"type": "RequestHeaderModifier", "requestHeaderModifier": {}, "urlRewrite": {}}"#,
        )
        .unwrap_err();
        assert!(
            error.starts_with(
                "`urlRewrite` is set but type is RequestHeaderModifier, which takes only `requestHeaderModifier`"
            ),
            "{error}"
        );
        let path = path_modifier(
            r#"{"type": "ReplaceFullPath", "replaceFullPath": "/a", "replacePrefixMatch": "/b"}"#,
        );
        let error = path.unwrap_err();
        assert!(
            error.starts_with("`replacePrefixMatch` is set but type is ReplaceFullPath"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_payload_unknown_type_or_unknown_member_is_an_error() {
        let missing = filter(r#"{"type": "RequestMirror"}"#).unwrap_err();
        assert!(
            missing.starts_with("missing field `requestMirror` (type RequestMirror needs it)"),
            "{missing}"
        );
        let unknown_type = filter(r#"{"type": "Teleport"}"#).unwrap_err();
        assert!(
            unknown_type.starts_with("unknown variant `Teleport`"),
            "{unknown_type}"
        );
        let no_type = filter(r#"{"cors": {}}"#).unwrap_err();
        assert!(no_type.starts_with("missing field `type`"), "{no_type}");
        let unknown_member = filter(r#"{"type": "CORS", "cors": {}, "extra": 1}"#).unwrap_err();
        assert!(
            unknown_member.starts_with("unknown field `extra`"),
            "{unknown_member}"
        );
        let path = path_modifier(r#"{"type": "ReplacePrefixMatch"}"#);
        assert!(
            path.unwrap_err().starts_with(
                "missing field `replacePrefixMatch` (type ReplacePrefixMatch needs it)"
            )
        );
    }
}

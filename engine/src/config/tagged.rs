//! Reading the `type`-tagged unions of the PluginConfig: filters and path modifiers.
//!
//! serde's internally tagged enums (`#[serde(tag = "type")]`) first buffer the whole object into an
//! intermediate tree (an allocation per key and value) because the tag may come after the payload,
//! and that buffering code is instantiated per enum (52 KB of the Wasm module, `docs/benchmarks.md`).
//! Here a union is read in one pass as a struct of optional members, in any key order (Kong
//! re-encodes objects in an order of its own, `docs/kong.md`), and then exactly the member its
//! `type` names must be present: "filter.requestHeaderModifier must be nil if the filter.type is not
//! RequestHeaderModifier" and "filter.requestHeaderModifier must be specified for
//! RequestHeaderModifier filter.type", as the HTTPRoute CRD's validation rules say for each filter.
//! Serializing is unchanged (the derived, tag-first form).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::{
    Cors, Filter, HeaderModifier, PathModifier, RequestMirror, RequestRedirect, UrlRewrite,
};

/// The `type` names of [`Filter`], as written in the document.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum FilterType {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RequestRedirect,
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    RequestMirror,
    #[serde(rename = "CORS")]
    Cors,
    Unresolved,
}

impl FilterType {
    fn name(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "RequestHeaderModifier",
            FilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
            FilterType::RequestRedirect => "RequestRedirect",
            FilterType::UrlRewrite => "URLRewrite",
            FilterType::RequestMirror => "RequestMirror",
            FilterType::Cors => "CORS",
            FilterType::Unresolved => "Unresolved",
        }
    }

    /// The member holding this type's settings.
    fn member(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "requestHeaderModifier",
            FilterType::ResponseHeaderModifier => "responseHeaderModifier",
            FilterType::RequestRedirect => "requestRedirect",
            FilterType::UrlRewrite => "urlRewrite",
            FilterType::RequestMirror => "requestMirror",
            FilterType::Cors => "cors",
            FilterType::Unresolved => "reason",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilterMembers {
    #[serde(rename = "type")]
    kind: FilterType,
    request_header_modifier: Option<HeaderModifier>,
    response_header_modifier: Option<HeaderModifier>,
    request_redirect: Option<RequestRedirect>,
    url_rewrite: Option<UrlRewrite>,
    request_mirror: Option<RequestMirror>,
    cors: Option<Cors>,
    reason: Option<String>,
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Filter, D::Error> {
        FilterMembers::deserialize(deserializer)?
            .into_filter()
            .map_err(D::Error::custom)
    }
}

impl FilterMembers {
    fn into_filter(self) -> Result<Filter, String> {
        let kind = self.kind;
        let set = [
            (
                "requestHeaderModifier",
                self.request_header_modifier.is_some(),
            ),
            (
                "responseHeaderModifier",
                self.response_header_modifier.is_some(),
            ),
            ("requestRedirect", self.request_redirect.is_some()),
            ("urlRewrite", self.url_rewrite.is_some()),
            ("requestMirror", self.request_mirror.is_some()),
            ("cors", self.cors.is_some()),
            ("reason", self.reason.is_some()),
        ];
        only_own_member(kind.name(), kind.member(), &set)?;
        let missing = || missing_member(kind.name(), kind.member());
        Ok(match kind {
            FilterType::RequestHeaderModifier => Filter::RequestHeaderModifier {
                request_header_modifier: self.request_header_modifier.ok_or_else(missing)?,
            },
            FilterType::ResponseHeaderModifier => Filter::ResponseHeaderModifier {
                response_header_modifier: self.response_header_modifier.ok_or_else(missing)?,
            },
            FilterType::RequestRedirect => Filter::RequestRedirect {
                request_redirect: self.request_redirect.ok_or_else(missing)?,
            },
            FilterType::UrlRewrite => Filter::UrlRewrite {
                url_rewrite: self.url_rewrite.ok_or_else(missing)?,
            },
            FilterType::RequestMirror => Filter::RequestMirror {
                request_mirror: self.request_mirror.ok_or_else(missing)?,
            },
            FilterType::Cors => Filter::Cors {
                cors: self.cors.ok_or_else(missing)?,
            },
            // The reason is informative: an Unresolved filter answers 500 with or without one.
            FilterType::Unresolved => Filter::Unresolved {
                reason: self.reason.unwrap_or_default(),
            },
        })
    }
}

#[derive(Deserialize, Clone, Copy)]
enum PathModifierType {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathModifierMembers {
    #[serde(rename = "type")]
    kind: PathModifierType,
    replace_full_path: Option<String>,
    replace_prefix_match: Option<String>,
}

impl<'de> Deserialize<'de> for PathModifier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PathModifier, D::Error> {
        let members = PathModifierMembers::deserialize(deserializer)?;
        let (name, member) = match members.kind {
            PathModifierType::ReplaceFullPath => ("ReplaceFullPath", "replaceFullPath"),
            PathModifierType::ReplacePrefixMatch => ("ReplacePrefixMatch", "replacePrefixMatch"),
        };
        let set = [
            ("replaceFullPath", members.replace_full_path.is_some()),
            ("replacePrefixMatch", members.replace_prefix_match.is_some()),
        ];
        only_own_member(name, member, &set).map_err(D::Error::custom)?;
        let missing = || D::Error::custom(missing_member(name, member));
        Ok(match members.kind {
            PathModifierType::ReplaceFullPath => PathModifier::ReplaceFullPath {
                replace_full_path: members.replace_full_path.ok_or_else(missing)?,
            },
            PathModifierType::ReplacePrefixMatch => PathModifier::ReplacePrefixMatch {
                replace_prefix_match: members.replace_prefix_match.ok_or_else(missing)?,
            },
        })
    }
}

/// Refuses a member that belongs to another `type`.
fn only_own_member(type_name: &str, own: &str, set: &[(&str, bool)]) -> Result<(), String> {
    match set
        .iter()
        .find(|(member, present)| *present && *member != own)
    {
        Some((other, _)) => Err(format!(
            "`{other}` is set but type is {type_name}, which takes only `{own}`"
        )),
        None => Ok(()),
    }
}

fn missing_member(type_name: &str, member: &str) -> String {
    format!("missing field `{member}` (type {type_name} needs it)")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn filter(json: &str) -> Result<Filter, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
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
        let path: Result<PathModifier, String> = serde_json::from_str(
            r#"{"type": "ReplaceFullPath", "replaceFullPath": "/a", "replacePrefixMatch": "/b"}"#,
        )
        .map_err(|e| e.to_string());
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
        let path: Result<PathModifier, String> =
            serde_json::from_str(r#"{"type": "ReplacePrefixMatch"}"#).map_err(|e| e.to_string());
        assert!(
            path.unwrap_err().starts_with(
                "missing field `replacePrefixMatch` (type ReplacePrefixMatch needs it)"
            )
        );
    }
}

//! Gateway API HTTPRoute and GRPCRoute filters → the engine's filters, with the spec's defaults
//! filled in.
//!
//! Rule-level (`HTTPRouteFilter`, `GRPCRouteFilter`) and backendRef-level filters are distinct
//! generated types with the same field names, so macros convert them all. A filter that cannot be converted makes its rule
//! invalid ([`Problem`], reason `UnsupportedValue`); a reference that cannot be resolved (an
//! ExtensionRef) becomes an `Unresolved` filter, because "If a reference to a custom filter type
//! cannot be resolved, the filter MUST NOT be skipped. Instead, requests that would have been
//! processed by that filter MUST receive a HTTP error response."

use crate::api::grpcroutes::{
    GrpcRouteRulesBackendRefsFilters, GrpcRouteRulesBackendRefsFiltersType, GrpcRouteRulesFilters,
    GrpcRouteRulesFiltersType,
};
use crate::api::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesBackendRefsFiltersRequestRedirectPathType,
    HttpRouteRulesBackendRefsFiltersRequestRedirectScheme, HttpRouteRulesBackendRefsFiltersType,
    HttpRouteRulesBackendRefsFiltersUrlRewritePathType, HttpRouteRulesFilters,
    HttpRouteRulesFiltersRequestRedirectPathType, HttpRouteRulesFiltersRequestRedirectScheme,
    HttpRouteRulesFiltersType, HttpRouteRulesFiltersUrlRewritePathType,
};
use engine::config::{
    Cors, Filter, Fraction, HeaderModifier, HeaderValue, PathModifier, RequestMirror,
    RequestRedirect, UrlRewrite,
};

use super::Lookup;
use super::backends::{self, Backends};
use super::conditions::{Problem, route as reason};

/// What converting a rule's filters needs and records.
pub struct Context<'a, 'b> {
    pub lookup: &'b Lookup<'a>,
    pub route_namespace: &'b str,
    /// Mirror targets are added here; an unresolvable ExtensionRef sets its ResolvedRefs problem.
    pub backends: &'b mut Backends,
    /// Things accepted but not implemented as written (reported in the Accepted message).
    pub notes: &'b mut Vec<String>,
    /// `rules[i].filters[j]`-style location for messages.
    pub location: String,
}

/// "RequestRedirect ... StatusCode is the HTTP status code to be used in response." Default 302
/// (`+kubebuilder:default=302`); "Unknown values here must result in the implementation setting the
/// Accepted Condition for the Route to `status: False`, with a Reason of `UnsupportedValue`."
fn status_code(code: Option<i64>, location: &str) -> Result<u16, Problem> {
    match code.unwrap_or(302) {
        c @ (301 | 302 | 303 | 307 | 308) => Ok(c as u16),
        other => Err(Problem::new(
            reason::UNSUPPORTED_VALUE,
            format!(
                "{location}: redirect statusCode {other} is not one of 301, 302, 303, 307, 308"
            ),
        )),
    }
}

fn port(port: i32, location: &str) -> Result<u16, Problem> {
    u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
        Problem::new(
            reason::UNSUPPORTED_VALUE,
            format!("{location}: {port} is not a port number"),
        )
    })
}

fn missing(location: &str, field: &str) -> Problem {
    Problem::new(
        reason::UNSUPPORTED_VALUE,
        format!("{location}: the filter's {field} field is missing"),
    )
}

/// "Only one of Fraction or Percent may be specified. If neither field is specified, 100% of
/// requests will be mirrored." Fraction's denominator defaults to 100.
fn mirror_share(
    percent: Option<i32>,
    fraction: Option<(i32, Option<i32>)>,
    location: &str,
) -> Result<(Option<u32>, Option<Fraction>), Problem> {
    let bad = |what: String| Problem::new(reason::UNSUPPORTED_VALUE, format!("{location}: {what}"));
    match (percent, fraction) {
        (Some(_), Some(_)) => Err(bad("set percent or fraction, not both".to_owned())),
        (Some(p), None) => u32::try_from(p)
            .ok()
            .filter(|p| *p <= 100)
            .map(|p| (Some(p), None))
            .ok_or_else(|| bad(format!("percent {p} is not between 0 and 100"))),
        (None, Some((numerator, denominator))) => {
            let denominator = denominator.unwrap_or(100);
            match (u32::try_from(numerator), u32::try_from(denominator)) {
                (Ok(n), Ok(d)) if d > 0 && n <= d => Ok((
                    None,
                    Some(Fraction {
                        numerator: n,
                        denominator: d,
                    }),
                )),
                _ => Err(bad(format!(
                    "fraction {numerator}/{denominator} is not between 0 and 1"
                ))),
            }
        }
        (None, None) => Ok((None, None)),
    }
}

macro_rules! header_modifier {
    ($m:expr) => {{
        let m = $m;
        HeaderModifier {
            set: m
                .set
                .iter()
                .flatten()
                .map(|h| HeaderValue {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
            add: m
                .add
                .iter()
                .flatten()
                .map(|h| HeaderValue {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
            remove: m.remove.clone().unwrap_or_default(),
        }
    }};
}

macro_rules! path_modifier {
    ($p:expr, $ty:ident, $location:expr) => {{
        let p = $p;
        match p.r#type {
            $ty::ReplaceFullPath => p
                .replace_full_path
                .clone()
                .map(|v| PathModifier::ReplaceFullPath {
                    replace_full_path: v,
                })
                .ok_or_else(|| missing($location, "path.replaceFullPath")),
            $ty::ReplacePrefixMatch => p
                .replace_prefix_match
                .clone()
                .map(|v| PathModifier::ReplacePrefixMatch {
                    replace_prefix_match: v,
                })
                .ok_or_else(|| missing($location, "path.replacePrefixMatch")),
        }
    }};
}

/// The RequestHeaderModifier arm, for every generated filter type.
macro_rules! request_header_modifier {
    ($f:expr, $loc:expr) => {
        $f.request_header_modifier
            .as_ref()
            .map(|m| Filter::RequestHeaderModifier {
                request_header_modifier: header_modifier!(m),
            })
            .ok_or_else(|| missing($loc, "requestHeaderModifier"))
    };
}

/// The ResponseHeaderModifier arm, for every generated filter type.
macro_rules! response_header_modifier {
    ($f:expr, $loc:expr) => {
        $f.response_header_modifier
            .as_ref()
            .map(|m| Filter::ResponseHeaderModifier {
                response_header_modifier: header_modifier!(m),
            })
            .ok_or_else(|| missing($loc, "responseHeaderModifier"))
    };
}

/// The RequestMirror arm, for every generated filter type (the mirror target is resolved like a
/// backendRef of the route's kind).
macro_rules! request_mirror {
    ($f:expr, $cx:expr, $loc:expr) => {{
        let f = $f;
        let cx: &mut Context<'_, '_> = $cx;
        let loc: &str = $loc;
        let m = f
            .request_mirror
            .as_ref()
            .ok_or_else(|| missing(loc, "requestMirror"))?;
        let (percent, fraction) = mirror_share(
            m.percent,
            m.fraction.as_ref().map(|f| (f.numerator, f.denominator)),
            loc,
        )?;
        let b = &m.backend_ref;
        // "If the referent cannot be found, this BackendRef is invalid and must be dropped
        // from the Gateway. The controller must ensure the "ResolvedRefs" condition on the
        // Route status is set to `status: False`". The invalid backend stays in the config
        // so the filter's trace says why nothing is mirrored; the engine never sends to it.
        let backend = cx.backends.add(
            cx.lookup,
            cx.route_namespace,
            backends::Ref {
                group: b.group.as_deref(),
                kind: b.kind.as_deref(),
                name: &b.name,
                namespace: b.namespace.as_deref(),
                port: b.port,
            },
        );
        Ok(Filter::RequestMirror {
            request_mirror: RequestMirror {
                backend,
                percent,
                fraction,
            },
        })
    }};
}

/// The ExtensionRef arm, for every generated filter type: never resolvable here.
macro_rules! extension_ref {
    ($f:expr, $cx:expr, $loc:expr) => {{
        let f = $f;
        let cx: &mut Context<'_, '_> = $cx;
        let loc: &str = $loc;
        let what = f.extension_ref.as_ref().map_or_else(
            || "an ExtensionRef filter without extensionRef".to_owned(),
            |e| format!("ExtensionRef {}/{} {}", e.group, e.kind, e.name),
        );
        let message = format!("{loc}: {what} is not supported by this controller");
        cx.backends
            .problem
            .get_or_insert_with(|| Problem::new(reason::INVALID_KIND, message.clone()));
        Filter::Unresolved { reason: message }
    }};
}

/// Converts one filter of either generated type. `$ty`, `$scheme`, `$redirect_path` and
/// `$rewrite_path` name that type's enums.
macro_rules! convert_filter {
    ($f:expr, $cx:expr, $ty:ident, $scheme:ident, $redirect_path:ident, $rewrite_path:ident) => {{
        let f = $f;
        let cx: &mut Context<'_, '_> = $cx;
        let loc = cx.location.clone();
        let loc = loc.as_str();
        match f.r#type {
            $ty::RequestHeaderModifier => request_header_modifier!(f, loc),
            $ty::ResponseHeaderModifier => response_header_modifier!(f, loc),
            $ty::RequestRedirect => {
                let r = f
                    .request_redirect
                    .as_ref()
                    .ok_or_else(|| missing(loc, "requestRedirect"))?;
                Ok(Filter::RequestRedirect {
                    request_redirect: RequestRedirect {
                        // "Scheme is the scheme to be used in the value of the `Location` header
                        // in the response. When empty, the scheme of the request is used."
                        scheme: r.scheme.as_ref().map(|s| {
                            match s {
                                $scheme::Http => "http",
                                $scheme::Https => "https",
                            }
                            .to_owned()
                        }),
                        // "When empty, the hostname in the `Host` header of the request is used."
                        hostname: r.hostname.clone().filter(|h| !h.is_empty()),
                        path: r
                            .path
                            .as_ref()
                            .map(|p| path_modifier!(p, $redirect_path, loc))
                            .transpose()?,
                        port: r.port.map(|p| port(p, loc)).transpose()?,
                        status_code: Some(status_code(r.status_code, loc)?),
                    },
                })
            }
            $ty::UrlRewrite => {
                let r = f
                    .url_rewrite
                    .as_ref()
                    .ok_or_else(|| missing(loc, "urlRewrite"))?;
                Ok(Filter::UrlRewrite {
                    url_rewrite: UrlRewrite {
                        hostname: r.hostname.clone().filter(|h| !h.is_empty()),
                        path: r
                            .path
                            .as_ref()
                            .map(|p| path_modifier!(p, $rewrite_path, loc))
                            .transpose()?,
                    },
                })
            }
            $ty::RequestMirror => request_mirror!(f, cx, loc),
            $ty::Cors => {
                let c = f.cors.as_ref().ok_or_else(|| missing(loc, "cors"))?;
                let max_age = match c.max_age {
                    // "MaxAge ... The default value ... is 5 (seconds)."
                    None => 5,
                    Some(age) => u32::try_from(age).map_err(|_| {
                        Problem::new(
                            reason::UNSUPPORTED_VALUE,
                            format!("{loc}: cors.maxAge {age} is negative"),
                        )
                    })?,
                };
                Ok(Filter::Cors {
                    cors: Cors {
                        allow_origins: c.allow_origins.clone().unwrap_or_default(),
                        allow_credentials: c.allow_credentials.unwrap_or(false),
                        allow_methods: c.allow_methods.clone().unwrap_or_default(),
                        allow_headers: c.allow_headers.clone().unwrap_or_default(),
                        expose_headers: c.expose_headers.clone().unwrap_or_default(),
                        max_age: Some(max_age),
                    },
                })
            }
            $ty::ExtensionRef => Ok(extension_ref!(f, cx, loc)),
            $ty::ExternalAuth => {
                // "If there is any problem communicating with the external service, this filter
                // MUST fail closed." Not implemented here, so it fails closed: 500.
                let message =
                    format!("{loc}: ExternalAuth is not supported; matching requests get 500");
                cx.notes.push(message.clone());
                Ok(Filter::Unresolved { reason: message })
            }
        }
    }};
}

/// Converts a rule-level filter.
pub fn rule_filter(f: &HttpRouteRulesFilters, cx: &mut Context<'_, '_>) -> Result<Filter, Problem> {
    convert_filter!(
        f,
        cx,
        HttpRouteRulesFiltersType,
        HttpRouteRulesFiltersRequestRedirectScheme,
        HttpRouteRulesFiltersRequestRedirectPathType,
        HttpRouteRulesFiltersUrlRewritePathType
    )
}

/// Converts a backendRef-level filter ("Filters defined at this level should be executed if and
/// only if the request is being forwarded to the backend defined here").
pub fn backend_filter(
    f: &HttpRouteRulesBackendRefsFilters,
    cx: &mut Context<'_, '_>,
) -> Result<Filter, Problem> {
    convert_filter!(
        f,
        cx,
        HttpRouteRulesBackendRefsFiltersType,
        HttpRouteRulesBackendRefsFiltersRequestRedirectScheme,
        HttpRouteRulesBackendRefsFiltersRequestRedirectPathType,
        HttpRouteRulesBackendRefsFiltersUrlRewritePathType
    )
}

/// Converts one GRPCRoute filter of either generated type (rule or backendRef level). The types
/// hold only what GRPCRouteFilterType allows ("Enum=ResponseHeaderModifier;
/// RequestHeaderModifier;RequestMirror;ExtensionRef"): any other `type` is refused when the object
/// is read, as the API server refuses it.
macro_rules! convert_grpc_filter {
    ($f:expr, $cx:expr, $ty:ident) => {{
        let f = $f;
        let cx: &mut Context<'_, '_> = $cx;
        let loc = cx.location.clone();
        let loc = loc.as_str();
        match f.r#type {
            $ty::RequestHeaderModifier => request_header_modifier!(f, loc),
            $ty::ResponseHeaderModifier => response_header_modifier!(f, loc),
            $ty::RequestMirror => request_mirror!(f, cx, loc),
            $ty::ExtensionRef => Ok(extension_ref!(f, cx, loc)),
        }
    }};
}

/// Converts a GRPCRoute rule-level filter.
pub fn grpc_rule_filter(
    f: &GrpcRouteRulesFilters,
    cx: &mut Context<'_, '_>,
) -> Result<Filter, Problem> {
    convert_grpc_filter!(f, cx, GrpcRouteRulesFiltersType)
}

/// Converts a GRPCRoute backendRef-level filter ("Filters defined at this level MUST be executed
/// if and only if the request is being forwarded to the backend defined here").
pub fn grpc_backend_filter(
    f: &GrpcRouteRulesBackendRefsFilters,
    cx: &mut Context<'_, '_>,
) -> Result<Filter, Problem> {
    convert_grpc_filter!(f, cx, GrpcRouteRulesBackendRefsFiltersType)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_status_defaults_to_302_and_rejects_unknown_codes() {
        assert_eq!(status_code(None, "f").unwrap(), 302);
        assert_eq!(status_code(Some(308), "f").unwrap(), 308);
        let p = status_code(Some(300), "rules[0].filters[0]").unwrap_err();
        assert_eq!(p.reason, "UnsupportedValue");
        assert!(p.message.starts_with("rules[0].filters[0]"));
    }

    #[test]
    fn mirror_share_follows_percent_or_fraction() {
        assert_eq!(mirror_share(None, None, "f").unwrap(), (None, None));
        assert_eq!(mirror_share(Some(42), None, "f").unwrap(), (Some(42), None));
        assert!(mirror_share(Some(101), None, "f").is_err());
        assert!(mirror_share(Some(-1), None, "f").is_err());
        let (_, fraction) = mirror_share(None, Some((1, None)), "f").unwrap();
        assert_eq!(
            fraction,
            Some(Fraction {
                numerator: 1,
                denominator: 100
            })
        );
        assert!(mirror_share(None, Some((3, Some(2))), "f").is_err());
        assert!(mirror_share(None, Some((0, Some(0))), "f").is_err());
        assert!(mirror_share(Some(1), Some((1, None)), "f").is_err());
    }
}

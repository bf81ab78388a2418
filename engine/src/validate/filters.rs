//! Validation of route and backend filters: each filter's own settings, which filters may appear
//! together and where (rule or backendRef level), and the backends their mirrors name.

use super::{
    BackendKeys, MAX_VALUE_LEN, exact_hostname, header_name, header_value, is_token, url_path,
};
use crate::config::*;
use crate::error::{ConfigError, JsonPath, quoted};

pub(crate) fn validate_filters(
    path: &JsonPath<'_>,
    filters: &[Filter],
    all_prefix: bool,
    backends: BackendKeys<'_, '_>,
    backend_level: bool,
) -> Result<(), ConfigError> {
    for (i, filter) in filters.iter().enumerate() {
        let fpath = path.index(i);
        let kind = filter_kind(filter);
        // A rule has a handful of filters: scanning the earlier ones beats hashing into a set.
        let repeated = || {
            filters
                .get(..i)
                .is_some_and(|earlier| earlier.iter().any(|f| filter_kind(f) == kind))
        };
        if !matches!(
            filter,
            Filter::RequestMirror { .. } | Filter::Unresolved { .. }
        ) && repeated()
        {
            return Err(fpath
                .field("type")
                .error(format!("{kind} appears twice; it may appear at most once")));
        }
        match filter {
            Filter::RequestHeaderModifier {
                request_header_modifier: m,
            } => {
                header_modifier(&fpath.field("requestHeaderModifier"), m)?;
            }
            Filter::ResponseHeaderModifier {
                response_header_modifier: m,
            } => {
                header_modifier(&fpath.field("responseHeaderModifier"), m)?;
            }
            Filter::RequestRedirect {
                request_redirect: r,
            } => {
                let rpath = fpath.field("requestRedirect");
                if let Some(scheme) = &r.scheme
                    && scheme != "http"
                    && scheme != "https"
                {
                    return Err(rpath
                        .field("scheme")
                        .error(format!("{} is not http or https", quoted(scheme))));
                }
                if let Some(hostname) = &r.hostname {
                    exact_hostname(&rpath.field("hostname"), hostname)?;
                }
                if r.port == Some(0) {
                    return Err(rpath.field("port").error("0 is not a valid port"));
                }
                if let Some(code) = r.status_code
                    && !matches!(code, 301 | 302 | 303 | 307 | 308)
                {
                    return Err(rpath
                        .field("statusCode")
                        .error(format!("{code} is not one of 301, 302, 303, 307, 308")));
                }
                if let Some(modifier) = &r.path {
                    path_modifier(&rpath.field("path"), modifier, all_prefix)?;
                }
            }
            Filter::UrlRewrite { url_rewrite: r } => {
                let rpath = fpath.field("urlRewrite");
                if let Some(hostname) = &r.hostname {
                    exact_hostname(&rpath.field("hostname"), hostname)?;
                }
                if let Some(modifier) = &r.path {
                    path_modifier(&rpath.field("path"), modifier, all_prefix)?;
                }
            }
            Filter::RequestMirror { request_mirror: m } => {
                let mpath = fpath.field("requestMirror");
                backends.check(&m.backend, &mpath.field("backend"))?;
                if m.percent.is_some() && m.fraction.is_some() {
                    return Err(mpath.error("set percent or fraction, not both"));
                }
                if let Some(percent) = m.percent
                    && percent > 100
                {
                    return Err(mpath
                        .field("percent")
                        .error(format!("{percent} is above 100")));
                }
                if let Some(fraction) = m.fraction
                    && (fraction.denominator == 0 || fraction.numerator > fraction.denominator)
                {
                    return Err(mpath.field("fraction").error(format!(
                        "{}/{} is not a fraction between 0 and 1",
                        fraction.numerator, fraction.denominator
                    )));
                }
            }
            Filter::Cors { cors } => {
                let cpath = fpath.field("cors");
                for (j, origin) in cors.allow_origins.iter().enumerate() {
                    if !crate::cors::is_valid_origin_pattern(origin) {
                        return Err(cpath.field("allowOrigins").index(j).error(format!(
                            "{} is not an origin (\"*\" or scheme://host[:port], host may start with *)",
                            quoted(origin)
                        )));
                    }
                }
                for (j, method) in cors.allow_methods.iter().enumerate() {
                    if method != "*" && !is_token(method) {
                        return Err(cpath
                            .field("allowMethods")
                            .index(j)
                            .error(format!("{} is not an HTTP method", quoted(method))));
                    }
                }
                for (field, list) in [
                    ("allowHeaders", &cors.allow_headers),
                    ("exposeHeaders", &cors.expose_headers),
                ] {
                    for (j, name) in list.iter().enumerate() {
                        if name != "*" {
                            header_name(&cpath.field(field).index(j), name)?;
                        }
                    }
                }
            }
            Filter::Unresolved { reason } => {
                if reason.len() > MAX_VALUE_LEN {
                    return Err(fpath.field("reason").error("is longer than 4096 bytes"));
                }
            }
        }
        if backend_level && matches!(filter, Filter::Cors { .. }) {
            return Err(fpath
                .field("type")
                .error("CORS is not supported on backendRefs"));
        }
    }
    let has = |wanted: &str| filters.iter().any(|f| filter_kind(f) == wanted);
    if has("RequestRedirect") && has("URLRewrite") {
        return Err(path.error("RequestRedirect and URLRewrite cannot be used together"));
    }
    Ok(())
}

/// The `type` string of a filter, as written in the document.
pub fn filter_kind(filter: &Filter) -> &'static str {
    match filter {
        Filter::RequestHeaderModifier { .. } => "RequestHeaderModifier",
        Filter::ResponseHeaderModifier { .. } => "ResponseHeaderModifier",
        Filter::RequestRedirect { .. } => "RequestRedirect",
        Filter::UrlRewrite { .. } => "URLRewrite",
        Filter::RequestMirror { .. } => "RequestMirror",
        Filter::Cors { .. } => "CORS",
        Filter::Unresolved { .. } => "Unresolved",
    }
}

fn header_modifier(path: &JsonPath<'_>, m: &HeaderModifier) -> Result<(), ConfigError> {
    for (field, list) in [("set", &m.set), ("add", &m.add)] {
        for (i, h) in list.iter().enumerate() {
            let hpath_parent = path.field(field);
            let hpath = hpath_parent.index(i);
            header_name(&hpath.field("name"), &h.name)?;
            header_value(&hpath.field("value"), &h.value)?;
        }
    }
    for (i, name) in m.remove.iter().enumerate() {
        header_name(&path.field("remove").index(i), name)?;
    }
    Ok(())
}

fn path_modifier(
    path: &JsonPath<'_>,
    modifier: &PathModifier,
    all_prefix: bool,
) -> Result<(), ConfigError> {
    match modifier {
        PathModifier::ReplaceFullPath { replace_full_path } => {
            url_path(&path.field("replaceFullPath"), replace_full_path)
        }
        PathModifier::ReplacePrefixMatch {
            replace_prefix_match,
        } => {
            if !all_prefix {
                return Err(path.field("type").error(
                    "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
                ));
            }
            url_path(&path.field("replacePrefixMatch"), replace_prefix_match)
        }
    }
}

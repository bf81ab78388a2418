//! Semantic validation of a parsed PluginConfig. Every error names the JSON path and the value.
//!
//! The rules mirror the Gateway API CRD validation (so a config the shim built from accepted objects
//! always passes) plus the data plane's own safety rules: no CR/LF in header values we would emit,
//! references to listeners and backends that exist, bounded regexes (checked when compiling).

use std::collections::{HashMap, HashSet};

use crate::config::*;
use crate::error::{ConfigError, JsonPath, quoted};
use crate::hash::WordStr;
use crate::hostname::{check_hostname, check_precise_hostname};
use crate::time::{parse_duration_ms, parse_rfc3339};

mod filters;
mod grpc;

pub use filters::filter_kind;
pub(crate) use filters::validate_filters;

/// Longest accepted path, hostname-free string values (paths, header values, regexes).
pub const MAX_VALUE_LEN: usize = 4096;

/// Validates the whole document; the first error found is returned.
pub fn validate(config: &PluginConfig) -> Result<(), ConfigError> {
    validate_with(config, BackendKeys::Check(&BackendIds::of(config)))
}

/// [`validate`], told whether to look up backend keys itself or leave them to compilation.
pub(crate) fn validate_with(
    config: &PluginConfig,
    backends: BackendKeys<'_, '_>,
) -> Result<(), ConfigError> {
    let root = JsonPath::ROOT;
    if config.schema_version != SCHEMA_VERSION {
        return Err(root.field("schemaVersion").error(format!(
            "{} is not supported: this filter understands schemaVersion {SCHEMA_VERSION}",
            config.schema_version
        )));
    }
    non_empty(
        &root.field("gateway").field("namespace"),
        &config.gateway.namespace,
    )?;
    non_empty(&root.field("gateway").field("name"), &config.gateway.name)?;

    let mut listener_names = HashSet::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let path_parent = root.field("listeners");
        let path = path_parent.index(i);
        non_empty(&path.field("name"), &listener.name)?;
        if !listener_names.insert(listener.name.as_str()) {
            return Err(path.field("name").error(format!(
                "{} is used by two listeners",
                quoted(&listener.name)
            )));
        }
        if listener.port == 0 {
            return Err(path.field("port").error("0 is not a valid port"));
        }
        if let Some(hostname) = &listener.hostname {
            hostname_pattern(&path.field("hostname"), hostname)?;
        }
    }

    for (key, backend) in &config.backends {
        let path_parent = root.field("backends");
        let path = path_parent.key(key);
        match (&backend.upstream, &backend.invalid) {
            (Some(upstream), None) => {
                if upstream.is_empty()
                    || upstream.len() > 1024
                    || !upstream.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(path.field("upstream").error(format!(
                        "{} is not a usable upstream name (printable ASCII, no spaces)",
                        quoted(upstream)
                    )));
                }
                if config.upstream_selector == UpstreamSelector::KongRoute
                    && !upstream.starts_with('/')
                {
                    return Err(path.field("upstream").error(format!(
                        "{} is not a Kong route prefix (upstreamSelector kongRoute needs a path starting with /)",
                        quoted(upstream)
                    )));
                }
            }
            (None, Some(_)) => {}
            (Some(_), Some(_)) => {
                return Err(path.error("has both upstream and invalid; set exactly one"));
            }
            (None, None) => {
                return Err(path.error("has neither upstream nor invalid; set exactly one"));
            }
        }
    }

    validate_kong(config)?;

    let mut route_ids = HashSet::with_capacity(config.routes.len());
    for (i, route) in config.routes.iter().enumerate() {
        let path_parent = root.field("routes");
        let path = path_parent.index(i);
        let head = RouteHead {
            kind: "route",
            namespace: &route.namespace,
            name: &route.name,
            creation_timestamp: route.creation_timestamp.as_deref(),
            parents: &route.parents,
        };
        validate_route_head(&path, &head, &listener_names, &mut route_ids)?;
        for (j, rule) in route.rules.iter().enumerate() {
            validate_rule(&path.field("rules").index(j), rule, backends)?;
        }
    }

    // GRPCRoutes are another kind: one may share its namespace/name with an HTTPRoute.
    let mut grpc_route_ids = HashSet::with_capacity(config.grpc_routes.len());
    for (i, route) in config.grpc_routes.iter().enumerate() {
        let path_parent = root.field("grpcRoutes");
        let path = path_parent.index(i);
        let head = RouteHead {
            kind: "GRPCRoute",
            namespace: &route.namespace,
            name: &route.name,
            creation_timestamp: route.creation_timestamp.as_deref(),
            parents: &route.parents,
        };
        validate_route_head(&path, &head, &listener_names, &mut grpc_route_ids)?;
        for (j, rule) in route.rules.iter().enumerate() {
            grpc::rule(&path.field("rules").index(j), rule, backends)?;
        }
    }
    Ok(())
}

/// The keys of `backends` and their dense ids (the keys' order, which is the order of the compiled
/// table's backends), hashed once per push: every backendRef and mirror names one, and a lookup in
/// the sorted map costs a dozen string comparisons at 10,000 routes (`cargo bench -p filter-core
/// --bench configure`). SipHash with a random key, not the index's fixed hasher: route and backend
/// names come from tenants, who could otherwise choose colliding keys to slow every push.
pub(crate) struct BackendIds<'a>(HashMap<WordStr<'a>, u32>);

impl<'a> BackendIds<'a> {
    pub(crate) fn of(config: &'a PluginConfig) -> BackendIds<'a> {
        BackendIds(
            config
                .backends
                .keys()
                .enumerate()
                .map(|(id, key)| (WordStr(key.as_str()), id as u32))
                .collect(),
        )
    }

    /// The id of a backend key.
    pub(crate) fn get(&self, key: &str) -> Option<u32> {
        self.0.get(&WordStr(key)).copied()
    }
}

/// How validation treats the backend keys that backendRefs and mirrors name.
#[derive(Clone, Copy)]
pub(crate) enum BackendKeys<'i, 'a> {
    /// Look each key up: [`validate`] on its own.
    Check(&'i BackendIds<'a>),
    /// Leave them to compilation, which resolves every key to its id right after validation and
    /// reports a missing one with the same path and message ([`missing_backend`]): one hash lookup
    /// per reference instead of two, out of the 40,000 a push of 10,000 routes makes.
    ResolvedByCompile,
}

impl BackendKeys<'_, '_> {
    fn check(self, key: &str, path: &JsonPath<'_>) -> Result<(), ConfigError> {
        match self {
            BackendKeys::Check(ids) if ids.get(key).is_none() => Err(missing_backend(path, key)),
            BackendKeys::Check(_) | BackendKeys::ResolvedByCompile => Ok(()),
        }
    }
}

/// The error for a backendRef or mirror naming a key that `backends` lacks.
pub(crate) fn missing_backend(path: &JsonPath<'_>, key: &str) -> ConfigError {
    path.error(format!("{} is not a key of backends", quoted(key)))
}

/// What HTTPRoutes and GRPCRoutes share: identity, age and attachments.
struct RouteHead<'a> {
    /// `route` or `GRPCRoute`, for the duplicate message.
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    creation_timestamp: Option<&'a str>,
    parents: &'a [Attachment],
}

fn validate_route_head<'a>(
    path: &JsonPath<'_>,
    head: &RouteHead<'a>,
    listener_names: &HashSet<&str>,
    seen: &mut HashSet<(&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    non_empty(&path.field("namespace"), head.namespace)?;
    non_empty(&path.field("name"), head.name)?;
    if !seen.insert((head.namespace, head.name)) {
        return Err(path.error(format!(
            "{} {}/{} appears twice",
            head.kind, head.namespace, head.name
        )));
    }
    if let Some(ts) = head.creation_timestamp {
        parse_rfc3339(ts).map_err(|e| path.field("creationTimestamp").error(e))?;
    }
    for (j, parent) in head.parents.iter().enumerate() {
        let ppath_parent = path.field("parents");
        let ppath = ppath_parent.index(j);
        if !listener_names.contains(parent.listener.as_str()) {
            return Err(ppath.field("listener").error(format!(
                "{} is not a listener of this config",
                quoted(&parent.listener)
            )));
        }
        for (k, hostname) in parent.hostnames.iter().enumerate() {
            hostname_pattern(&ppath.field("hostnames").index(k), hostname)?;
        }
    }
    Ok(())
}

/// `kong` is required exactly when `upstreamSelector` is `kongRoute`.
fn validate_kong(config: &PluginConfig) -> Result<(), ConfigError> {
    let path = JsonPath::ROOT.field("kong");
    let Some(kong) = &config.kong else {
        return match config.upstream_selector {
            UpstreamSelector::KongRoute => {
                Err(path.error("is required when upstreamSelector is kongRoute"))
            }
            UpstreamSelector::EnvoyClusterHeader => Ok(()),
        };
    };
    if config.upstream_selector != UpstreamSelector::KongRoute {
        return Err(path.error("is only valid with upstreamSelector kongRoute"));
    }
    let port = kong
        .proxy
        .rsplit_once(':')
        .and_then(|(host, port)| (!host.is_empty()).then_some(port))
        .and_then(|port| port.parse::<u16>().ok());
    if !matches!(port, Some(p) if p > 0) || !kong.proxy.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(path
            .field("proxy")
            .error(format!("{} is not host:port", quoted(&kong.proxy))));
    }
    for (kong_port, gateway_port) in &kong.ports {
        if *kong_port == 0 || !config.listeners.iter().any(|l| l.port == *gateway_port) {
            let key = kong_port.to_string();
            return Err(path.field("ports").key(&key).error(format!(
                "{gateway_port} is not the port of a listener of this config"
            )));
        }
    }
    Ok(())
}

fn validate_rule(
    path: &JsonPath<'_>,
    rule: &Rule,
    backends: BackendKeys<'_, '_>,
) -> Result<(), ConfigError> {
    for (i, m) in rule.matches.iter().enumerate() {
        validate_match(&path.field("matches").index(i), m)?;
    }
    let all_prefix = rule.matches.iter().all(|m| {
        m.path
            .as_ref()
            .is_none_or(|p| p.kind == PathMatchType::PathPrefix)
    });
    validate_filters(
        &path.field("filters"),
        &rule.filters,
        all_prefix,
        backends,
        false,
    )?;
    backend_refs(
        &path.field("backendRefs"),
        &rule.backend_refs,
        backends,
        |fpath, filters| validate_filters(fpath, filters, all_prefix, backends, true),
    )?;
    if let Some(timeouts) = &rule.timeouts {
        let tpath = path.field("timeouts");
        let request = timeouts
            .request
            .as_deref()
            .map(|d| parse_duration_ms(d).map_err(|e| tpath.field("request").error(e)))
            .transpose()?;
        let backend = timeouts
            .backend_request
            .as_deref()
            .map(|d| parse_duration_ms(d).map_err(|e| tpath.field("backendRequest").error(e)))
            .transpose()?;
        if let (Some(request), Some(backend)) = (request, backend)
            && request != 0
            && (backend == 0 || backend > request)
        {
            return Err(tpath.field("backendRequest").error(format!(
                "{} must not exceed request ({}) when request is set",
                quoted(timeouts.backend_request.as_deref().unwrap_or_default()),
                quoted(timeouts.request.as_deref().unwrap_or_default())
            )));
        }
    }
    if let Some(retry) = &rule.retry {
        let rpath = path.field("retry");
        for (i, code) in retry.codes.iter().enumerate() {
            if !(400..=599).contains(code) {
                return Err(rpath
                    .field("codes")
                    .index(i)
                    .error(format!("{code} is not an HTTP error status (400-599)")));
            }
        }
        if let Some(backoff) = &retry.backoff {
            parse_duration_ms(backoff).map_err(|e| rpath.field("backoff").error(e))?;
        }
        if retry.attempts.is_some_and(|a| a > 1000) {
            return Err(rpath
                .field("attempts")
                .error("more than 1000 retries is not a retry policy"));
        }
    }
    Ok(())
}

/// Backend keys and weights of a rule's backendRefs; `filters` checks each backend's filters.
pub(crate) fn backend_refs(
    path: &JsonPath<'_>,
    refs: &[BackendRef],
    backends: BackendKeys<'_, '_>,
    filters: impl Fn(&JsonPath<'_>, &[Filter]) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    for (i, backend_ref) in refs.iter().enumerate() {
        let bpath = path.index(i);
        backends.check(&backend_ref.backend, &bpath.field("backend"))?;
        if backend_ref.weight > 1_000_000 {
            return Err(bpath.field("weight").error(format!(
                "{} is above the maximum of 1000000",
                backend_ref.weight
            )));
        }
        filters(&bpath.field("filters"), &backend_ref.filters)?;
    }
    Ok(())
}

/// Header matches: a valid name and a bounded value.
pub(crate) fn header_matches(
    path: &JsonPath<'_>,
    headers: &[HeaderMatch],
) -> Result<(), ConfigError> {
    for (i, h) in headers.iter().enumerate() {
        let hpath = path.index(i);
        header_name(&hpath.field("name"), &h.name)?;
        bounded(&hpath.field("value"), &h.value)?;
    }
    Ok(())
}

fn validate_match(path: &JsonPath<'_>, m: &Match) -> Result<(), ConfigError> {
    if let Some(p) = &m.path {
        let vpath_parent = path.field("path");
        let vpath = vpath_parent.field("value");
        match p.kind {
            PathMatchType::Exact | PathMatchType::PathPrefix => url_path(&vpath, &p.value)?,
            PathMatchType::RegularExpression => bounded(&vpath, &p.value)?,
        }
    }
    header_matches(&path.field("headers"), &m.headers)?;
    for (i, q) in m.query_params.iter().enumerate() {
        let qpath_parent = path.field("queryParams");
        let qpath = qpath_parent.index(i);
        non_empty(&qpath.field("name"), &q.name)?;
        bounded(&qpath.field("name"), &q.name)?;
        bounded(&qpath.field("value"), &q.value)?;
    }
    if let Some(method) = &m.method
        && !is_token(method)
    {
        return Err(path
            .field("method")
            .error(format!("{} is not an HTTP method", quoted(method))));
    }
    Ok(())
}

pub(crate) fn non_empty(path: &JsonPath<'_>, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        Err(path.error("must not be empty"))
    } else {
        Ok(())
    }
}

pub(crate) fn bounded(path: &JsonPath<'_>, value: &str) -> Result<(), ConfigError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(path.error(format!(
            "{} is longer than {MAX_VALUE_LEN} bytes",
            quoted(value)
        )));
    }
    Ok(())
}

/// Gateway API path rules for Exact/PathPrefix values and replacement paths, checked in one pass
/// (a 10,000-route config has tens of thousands of paths).
pub(crate) fn url_path(path: &JsonPath<'_>, value: &str) -> Result<(), ConfigError> {
    bounded(path, value)?;
    let bad = |why: &str| path.error(format!("{} is not a valid path: {why}", quoted(value)));
    let bytes = value.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(bad("it must start with /"));
    }
    // What follows a byte is looked at only after `/` and `%`: every path of every match is
    // checked on each push.
    for (i, &c) in bytes.iter().enumerate() {
        let rest = || bytes.get(i + 1..).unwrap_or_default();
        match c {
            b'/' if rest().first() == Some(&b'/') => return Err(bad("it must not contain //")),
            b'/' if matches!(
                rest(),
                [b'.'] | [b'.', b'/', ..] | [b'.', b'.'] | [b'.', b'.', b'/', ..]
            ) =>
            {
                return Err(bad("it must not contain . or .. segments"));
            }
            b'#' | b'?' => return Err(bad("it must not contain # or ?")),
            b'%' if rest()
                .get(..2)
                .is_some_and(|hex| hex.eq_ignore_ascii_case(b"2f")) =>
            {
                return Err(bad("it must not contain an encoded /"));
            }
            c if !c.is_ascii_graphic() => {
                return Err(bad("it must be printable ASCII without spaces"));
            }
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn header_name(path: &JsonPath<'_>, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 256 || !is_token(name) {
        return Err(path.error(format!("{} is not a valid header name", quoted(name))));
    }
    Ok(())
}

pub(crate) fn header_value(path: &JsonPath<'_>, value: &str) -> Result<(), ConfigError> {
    bounded(path, value)?;
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(path.error(format!(
            "{} contains CR, LF or NUL, which would split the header",
            quoted(value)
        )));
    }
    Ok(())
}

/// RFC 9110 token (header names, methods).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A redirect or rewrite hostname: a Gateway API `PreciseHostname` ([`crate::hostname`]).
pub(crate) fn exact_hostname(path: &JsonPath<'_>, hostname: &str) -> Result<(), ConfigError> {
    check_precise_hostname(hostname).map_err(|why| {
        path.error(format!(
            "{} is not a valid hostname: {why}",
            quoted(hostname)
        ))
    })
}

/// A listener or route hostname: a Gateway API `Hostname` ([`crate::hostname`]).
fn hostname_pattern(path: &JsonPath<'_>, hostname: &str) -> Result<(), ConfigError> {
    check_hostname(hostname).map_err(|why| {
        path.error(format!(
            "{} is not a valid hostname: {why}",
            quoted(hostname)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_follow_the_gateway_api_rules() {
        let check =
            |value: &str| url_path(&JsonPath::ROOT.field("p"), value).map_err(|e| e.message);
        for good in [
            "/",
            "/a",
            "/a/b/",
            "/a.b",
            "/.well-known",
            "/a..b",
            "/%20",
            "/a%2",
        ] {
            assert!(check(good).is_ok(), "{good}: {:?}", check(good));
        }
        for (bad, why) in [
            ("a", "must start with /"),
            ("", "must start with /"),
            ("/a//b", "//"),
            ("/a/./b", ". or .."),
            ("/a/../b", ". or .."),
            ("/a/.", ". or .."),
            ("/a/..", ". or .."),
            ("/a#b", "# or ?"),
            ("/a?b", "# or ?"),
            ("/a%2Fb", "encoded /"),
            ("/a%2fb", "encoded /"),
            ("/a b", "printable"),
            ("/é", "printable"),
        ] {
            let message = check(bad).err().unwrap_or_default();
            assert!(message.contains(why), "{bad:?}: {message}");
        }
    }
}
